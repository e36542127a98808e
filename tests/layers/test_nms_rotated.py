"""nms_rotated / batched_nms_rotated against a brute-force greedy reference."""

import pytest
import torch

from rotated_det.layers import batched_nms_rotated, box_iou_rotated, nms_rotated


def _reference_nms(boxes, scores, thr):
    """Greedy NMS over the full IoU matrix, written as plainly as possible.

    Visits boxes by decreasing score (stable: ties by index, NaN scores last); a box is kept if
    no kept box has IoU > thr with it. The IoU matrix comes from box_iou_rotated, which
    test_box_iou_rotated checks against shapely; comparing in the boxes' dtype mirrors what the
    op promises.
    """
    n = boxes.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.int64)
    iou = box_iou_rotated(boxes, boxes)
    key = torch.nan_to_num(scores, nan=float("-inf"))
    order = sorted(range(n), key=lambda i: (-key[i].item(), i))
    thr_t = torch.tensor(thr, dtype=boxes.dtype)
    kept = []
    for i in order:
        if all(not bool(iou[k, i] > thr_t) for k in kept):
            kept.append(i)
    return torch.tensor(kept, dtype=torch.int64)


def _reference_batched(boxes, scores, idxs, thr):
    kept = []
    for c in torch.unique(idxs).tolist():
        sel = torch.nonzero(idxs == c).flatten()
        kept.append(sel[_reference_nms(boxes[sel], scores[sel], thr)])
    kept = torch.cat(kept) if kept else torch.zeros(0, dtype=torch.int64)
    key = torch.nan_to_num(scores[kept], nan=float("-inf"))
    order = sorted(range(len(kept)), key=lambda i: (-key[i].item(), kept[i].item()))
    return kept[order]


def _boxes(n, extent, gen, dtype=torch.float32, smin=10.0, smax=100.0):
    xy = torch.rand(n, 2, generator=gen) * extent
    wh = torch.rand(n, 2, generator=gen) * (smax - smin) + smin
    a = torch.rand(n, 1, generator=gen) * 360 - 180
    return torch.cat([xy, wh, a], 1).to(dtype)


@pytest.mark.parametrize("thr", [0.0, 0.1, 0.3, 0.5, 0.7, 1.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_reference(thr, dtype):
    gen = torch.Generator().manual_seed(int(thr * 10))
    boxes = _boxes(300, 150.0, gen, dtype)
    scores = torch.rand(300, generator=gen, dtype=dtype)
    got = nms_rotated(boxes, scores, thr)
    assert got.dtype == torch.int64
    assert torch.equal(got, _reference_nms(boxes, scores, thr))


def test_dense_packing_several_blocks():
    # Many more boxes than the kernel's block (128), densely packed like the benchmark, with
    # duplicated scores; the kernel's culling must not change the answer.
    gen = torch.Generator().manual_seed(7)
    boxes = _boxes(1500, 120.0, gen)
    scores = torch.randint(0, 50, (1500,), generator=gen).float()
    got = nms_rotated(boxes, scores, 0.5)
    assert len(got) > 128
    assert torch.equal(got, _reference_nms(boxes, scores, 0.5))
    # sorted by decreasing score
    assert bool((scores[got][1:] <= scores[got][:-1]).all())


def test_hand_worked_example():
    boxes = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0, 0.0],
            [1.0, 0.0, 10.0, 10.0, 0.0],  # IoU 90/110 with box 0 -> suppressed at 0.5
            [0.0, 0.0, 10.0, 10.0, 90.0],  # same square as box 0 -> suppressed
            [5.0, 0.0, 10.0, 10.0, 0.0],  # IoU 50/150 = 1/3 with box 0 -> kept
            [100.0, 100.0, 4.0, 4.0, 45.0],  # far away -> kept
        ]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.1])
    assert nms_rotated(boxes, scores, 0.5).tolist() == [0, 3, 4]
    assert nms_rotated(boxes, scores, 0.3).tolist() == [0, 4]
    # equal scores: lower index first
    assert nms_rotated(boxes, torch.ones(5), 0.5).tolist() == [0, 3, 4]
    # threshold 1: nothing is suppressed, not even identical boxes
    assert nms_rotated(boxes, scores, 1.0).tolist() == [0, 1, 2, 3, 4]


def test_nan_and_inf_boxes_never_suppress():
    boxes = torch.tensor(
        [
            [float("nan"), 0.0, 10.0, 10.0, 0.0],
            [0.0, 0.0, float("inf"), 10.0, 0.0],
            [0.0, 0.0, 10.0, 10.0, 0.0],
            [0.5, 0.0, 10.0, 10.0, 0.0],
            [0.0, 0.0, 10.0, 10.0, float("nan")],
        ]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    # invalid boxes are kept (IoU 0 with all), box 3 is suppressed by box 2
    assert nms_rotated(boxes, scores, 0.5).tolist() == [0, 1, 2, 4]


def test_nan_scores_rank_last():
    boxes = torch.tensor(
        [[0.0, 0.0, 10.0, 10.0, 0.0], [20.0, 0.0, 10.0, 10.0, 0.0], [0.2, 0.0, 10.0, 10.0, 0.0]]
    )
    scores = torch.tensor([float("nan"), 0.5, 0.1])
    # box 2 ranks before box 0 (NaN score) and suppresses it
    assert nms_rotated(boxes, scores, 0.5).tolist() == [1, 2]


def test_batched_matches_per_class_reference():
    gen = torch.Generator().manual_seed(11)
    boxes = _boxes(600, 100.0, gen)
    scores = torch.rand(600, generator=gen)
    idxs = torch.randint(0, 5, (600,), generator=gen)
    for thr in (0.1, 0.5):
        got = batched_nms_rotated(boxes, scores, idxs, thr)
        assert torch.equal(got, _reference_batched(boxes, scores, idxs, thr))
    # identical boxes of different classes never suppress each other
    same = torch.tensor([[0.0, 0.0, 5.0, 5.0, 0.0]] * 3)
    assert batched_nms_rotated(
        same, torch.tensor([0.3, 0.2, 0.1]), torch.tensor([0, 1, 0]), 0.5
    ).tolist() == [0, 1]
    # int32 categories are accepted
    got32 = batched_nms_rotated(boxes, scores, idxs.int(), 0.5)
    assert torch.equal(got32, batched_nms_rotated(boxes, scores, idxs, 0.5))


def test_empty_inputs():
    e = torch.zeros(0, 5)
    out = nms_rotated(e, torch.zeros(0), 0.5)
    assert out.shape == (0,) and out.dtype == torch.int64
    out = batched_nms_rotated(e, torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5)
    assert out.shape == (0,) and out.dtype == torch.int64


def test_bad_inputs_raise_value_error():
    b, s = torch.zeros(3, 5), torch.zeros(3)
    with pytest.raises(ValueError, match=r"\[N, 5\]"):
        nms_rotated(torch.zeros(3, 4), s, 0.5)
    with pytest.raises(ValueError, match="scores"):
        nms_rotated(b, torch.zeros(4), 0.5)
    with pytest.raises(ValueError, match="scores must be float16, .* got torch.int64"):
        nms_rotated(b, s.long(), 0.5)
    with pytest.raises(ValueError, match="boxes must be float16, .* got torch.int32"):
        nms_rotated(b.int(), s, 0.5)
    with pytest.raises(ValueError, match="iou_threshold"):
        nms_rotated(b, s, 1.5)
    with pytest.raises(ValueError, match="iou_threshold"):
        nms_rotated(b, s, float("nan"))
    with pytest.raises(ValueError, match="idxs"):
        batched_nms_rotated(b, s, torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match="idxs"):
        batched_nms_rotated(b, s, torch.zeros(2, dtype=torch.int64), 0.5)


def _exact_boxes_and_scores(n, gen):
    """Boxes and scores that float16 and bfloat16 hold exactly (integers below 256, scores
    k / 256), so that every dtype sees the same values. Scores are distinct: no ties."""
    assert n <= 256
    xy = torch.randint(0, 120, (n, 2), generator=gen)
    wh = torch.randint(8, 60, (n, 2), generator=gen)
    a = torch.randint(-180, 180, (n, 1), generator=gen)
    scores = torch.randperm(n, generator=gen).float() / 256
    return torch.cat([xy, wh, a], 1).float(), scores


HALF_AND_MIXED = [
    (torch.bfloat16, torch.bfloat16),
    (torch.float16, torch.float16),
    (torch.float32, torch.bfloat16),  # autocast: float32 boxes, bfloat16 scores
    (torch.bfloat16, torch.float32),
    (torch.float16, torch.bfloat16),
    (torch.float32, torch.float16),
]


@pytest.mark.parametrize("box_dtype,score_dtype", HALF_AND_MIXED)
def test_half_precision_and_mixed_dtypes_equal_float32(box_dtype, score_dtype):
    gen = torch.Generator().manual_seed(21)
    boxes, scores = _exact_boxes_and_scores(250, gen)
    idxs = torch.randint(0, 3, (250,), generator=gen)
    for thr in (0.1, 0.3, 0.7):
        ref = nms_rotated(boxes, scores, thr)
        assert 0 < len(ref) < 250  # some boxes are suppressed, some kept
        got = nms_rotated(boxes.to(box_dtype), scores.to(score_dtype), thr)
        assert torch.equal(got, ref)
        ref_b = batched_nms_rotated(boxes, scores, idxs, thr)
        got_b = batched_nms_rotated(boxes.to(box_dtype), scores.to(score_dtype), idxs, thr)
        assert torch.equal(got_b, ref_b)


def test_float64_with_float32_compares_in_float64():
    gen = torch.Generator().manual_seed(22)
    boxes = _boxes(200, 150.0, gen, torch.float64)
    scores = torch.rand(200, generator=gen)  # float32
    ref = nms_rotated(boxes, scores.double(), 0.4)
    assert torch.equal(nms_rotated(boxes, scores, 0.4), ref)
    assert torch.equal(
        nms_rotated(boxes.float().double(), scores, 0.4),
        nms_rotated(boxes.float().double(), scores.double(), 0.4),
    )


def test_torch_jit_script_matches_eager():
    import io

    scripted = torch.jit.script(nms_rotated)
    scripted_batched = torch.jit.script(batched_nms_rotated)
    # a saved and reloaded copy too: what deployment gets
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(batched_nms_rotated), buf)
    buf.seek(0)
    reloaded = torch.jit.load(buf)
    gen = torch.Generator().manual_seed(23)
    for dtype in (torch.float32, torch.float64):
        boxes = _boxes(300, 150.0, gen, dtype)
        scores = torch.rand(300, generator=gen, dtype=dtype)
        idxs = torch.randint(0, 4, (300,), generator=gen)
        for thr in (0.2, 0.5):
            ref = nms_rotated(boxes, scores, thr)
            assert torch.equal(scripted(boxes, scores, thr), ref)
            ref_b = batched_nms_rotated(boxes, scores, idxs, thr)
            assert torch.equal(scripted_batched(boxes, scores, idxs, thr), ref_b)
            assert torch.equal(reloaded(boxes, scores, idxs, thr), ref_b)
    boxes, scores = _exact_boxes_and_scores(100, gen)
    assert torch.equal(
        scripted(boxes.bfloat16(), scores.half(), 0.3), nms_rotated(boxes, scores, 0.3)
    )
    # the checks run in the scripted functions too, with the eager messages
    with pytest.raises(
        torch.jit.Error, match=r"iou_threshold must be a number in \[0, 1\], got 1.5"
    ):
        scripted(boxes, scores, 1.5)
    with pytest.raises(
        torch.jit.Error, match=r"scores must have shape \[N\] with N = 100.*\(99,\)"
    ):
        scripted(boxes, scores[:99], 0.5)
    with pytest.raises(torch.jit.Error, match="idxs must be an integer tensor, got torch.float32"):
        scripted_batched(boxes, scores, scores, 0.5)
