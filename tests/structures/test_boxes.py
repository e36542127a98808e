"""BoxMode.convert and Boxes against hand-worked examples and simple references."""

import math

import numpy as np
import pytest
import torch

from rotated_det.structures import (
    Boxes,
    BoxMode,
    matched_pairwise_iou,
    pairwise_ioa,
    pairwise_iou,
    pairwise_point_box_distance,
    rbox_corner_distance,
)


def test_boxmode_values_are_stable():
    assert [m.value for m in BoxMode] == [0, 1, 2, 3, 4]
    assert [m.name for m in BoxMode] == [
        "XYXY_ABS",
        "XYWH_ABS",
        "XYXY_REL",
        "XYWH_REL",
        "XYWHA_ABS",
    ]


def test_convert_xyxy_xywh_hand_and_round_trip():
    assert BoxMode.convert([10, 20, 40, 60], BoxMode.XYXY_ABS, BoxMode.XYWH_ABS) == [10, 20, 30, 40]
    assert BoxMode.convert((10, 20, 30, 40), BoxMode.XYWH_ABS, BoxMode.XYXY_ABS) == (10, 20, 40, 60)
    gen = torch.Generator().manual_seed(0)
    xyxy = torch.rand(100, 2, generator=gen) * 100
    xyxy = torch.cat([xyxy, xyxy + torch.rand(100, 2, generator=gen) * 50], dim=1)
    xywh = BoxMode.convert(xyxy, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
    assert torch.allclose(BoxMode.convert(xywh, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS), xyxy)
    assert not torch.equal(xywh, xyxy)  # converted, and the input is untouched
    assert BoxMode.convert(xyxy, BoxMode.XYXY_ABS, BoxMode.XYXY_ABS) is xyxy


def test_convert_rotated_to_enclosing_xyxy():
    # a 20 x 6 box turned 90 degrees: 6 wide and 20 tall on screen
    assert BoxMode.convert([10, 10, 20, 6, 90], BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS) == (
        pytest.approx([7.0, 0.0, 13.0, 20.0], abs=1e-9)
    )
    # 45 degrees: half extents (w + h) / 2 * cos 45 on both axes
    h = 3 * math.sqrt(0.5)
    out = BoxMode.convert(np.array([[0.0, 0, 4, 2, 45]]), BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS)
    assert isinstance(out, np.ndarray) and out.shape == (1, 4)
    assert np.allclose(out, [[-h, -h, h, h]])
    # -30 and 150 and 210 degrees give the same enclosing box
    t = torch.tensor([[5.0, 5, 10, 4, -30], [5, 5, 10, 4, 150], [5, 5, 10, 4, 210]])
    xyxy = BoxMode.convert(t, BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS)
    assert xyxy.dtype == torch.float32
    half_w = (10 * math.cos(math.radians(30)) + 4 * math.sin(math.radians(30))) / 2
    half_h = (10 * math.sin(math.radians(30)) + 4 * math.cos(math.radians(30))) / 2
    expected = torch.tensor([5 - half_w, 5 - half_h, 5 + half_w, 5 + half_h])
    assert torch.allclose(xyxy, expected.expand(3, 4), atol=1e-5)
    xywh = BoxMode.convert(t, BoxMode.XYWHA_ABS, BoxMode.XYWH_ABS)
    assert torch.allclose(xywh[:, 2:], torch.tensor([2 * half_w, 2 * half_h]).expand(3, 2))


def test_convert_horizontal_to_rotated_and_back():
    r = BoxMode.convert([10, 20, 40, 60], BoxMode.XYXY_ABS, BoxMode.XYWHA_ABS)
    assert r == [25, 40, 30, 40, 0]
    r = BoxMode.convert(torch.tensor([[10.0, 20, 30, 40]]), BoxMode.XYWH_ABS, BoxMode.XYWHA_ABS)
    assert r.tolist() == [[25, 40, 30, 40, 0]]
    # XYWHA -> XYXY -> XYWHA keeps the rectangle for multiples of 90 degrees
    boxes = torch.tensor(
        [[5.0, 6, 10, 4, 0], [5, 6, 10, 4, 90], [5, 6, 10, 4, -180], [5, 6, 10, 4, 270]],
        dtype=torch.float64,
    )
    back = BoxMode.convert(
        BoxMode.convert(boxes, BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS),
        BoxMode.XYXY_ABS,
        BoxMode.XYWHA_ABS,
    )
    assert back.dtype == torch.float64
    assert (back[:, 4] == 0).all()
    assert rbox_corner_distance(back, boxes).max() < 1e-9


def test_convert_errors():
    with pytest.raises(NotImplementedError, match="relative"):
        BoxMode.convert([0, 0, 1, 1], BoxMode.XYXY_REL, BoxMode.XYXY_ABS)
    with pytest.raises(NotImplementedError, match="relative"):
        BoxMode.convert([0, 0, 1, 1], BoxMode.XYXY_ABS, BoxMode.XYWH_REL)
    with pytest.raises(ValueError, match=r"\[N, 5\]"):
        BoxMode.convert(torch.zeros(3, 4), BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS)
    with pytest.raises(ValueError, match="4 or 5"):
        BoxMode.convert([1, 2, 3], BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
    with pytest.raises(TypeError):
        BoxMode.convert("0 0 1 1", BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)


def test_boxes_basics():
    b = Boxes([[0, 0, 10, 20], [5, 5, 5, 8], [-4, -2, 3, 30]])
    assert b.tensor.dtype == torch.float32 and len(b) == 3
    assert b.area().tolist() == [200, 0, 224]
    assert b.nonempty().tolist() == [True, False, True]
    assert b.get_centers().tolist() == [[5, 10], [5, 6.5], [-0.5, 14]]
    assert b.inside_box((25, 12)).tolist() == [True, True, False]
    assert b.inside_box((25, 12), boundary_threshold=6).tolist() == [True, True, True]
    c = b.clone()
    c.clip((25, 12))
    assert c.tensor.tolist() == [[0, 0, 10, 20], [5, 5, 5, 8], [0, 0, 3, 25]]
    assert b.tensor[2, 0] == -4  # clone is independent
    c.scale(2.0, 0.5)
    assert c.tensor[0].tolist() == [0, 0, 20, 10]
    assert isinstance(b[0], Boxes) and b[0].tensor.shape == (1, 4)
    assert b[1:].tensor.shape == (2, 4) and b[torch.tensor([True, False, True])].tensor.shape == (
        2,
        4,
    )
    assert [r.tolist() for r in b][1] == [5, 5, 5, 8]
    assert len(Boxes.cat([b, b[:1]])) == 4 and len(Boxes.cat([])) == 0
    assert Boxes(torch.zeros(0)).tensor.shape == (0, 4)
    assert repr(b).startswith("Boxes(tensor(")
    assert b.to("cpu").device.type == "cpu"
    with pytest.raises(ValueError, match="Nx4"):
        Boxes(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="NaN"):
        Boxes([[0, 0, float("nan"), 1]]).clip((5, 5))


def _ref_iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    return (inter / (area_a + area_b - inter) if inter > 0 else 0.0), (
        inter / area_b if inter > 0 else 0.0
    )


def test_pairwise_iou_ioa_against_reference():
    a = Boxes([[0, 0, 10, 10], [5, 5, 15, 15], [20, 20, 20, 30]])
    b = Boxes([[0, 0, 10, 10], [0, 0, 5, 5], [10, 10, 20, 20], [2, 2, 4, 4]])
    iou, ioa = pairwise_iou(a, b), pairwise_ioa(a, b)
    assert iou.shape == (3, 4)
    for i, ra in enumerate(a.tensor.tolist()):
        for j, rb in enumerate(b.tensor.tolist()):
            ref_iou, ref_ioa = _ref_iou(ra, rb)
            assert iou[i, j].item() == pytest.approx(ref_iou, abs=1e-6)
            assert ioa[i, j].item() == pytest.approx(ref_ioa, abs=1e-6)
    assert iou[0, 0] == 1 and iou[1, 0] == pytest.approx(25 / 175)
    b2 = Boxes([[0, 0, 10, 10], [0, 0, 10, 10], [20, 25, 30, 40]])
    assert matched_pairwise_iou(a, b2).tolist() == pytest.approx([1.0, 25 / 175, 0.0])
    with pytest.raises(ValueError, match="same length"):
        matched_pairwise_iou(a, b)


def test_pairwise_point_box_distance():
    d = pairwise_point_box_distance(torch.tensor([[2.0, 3.0]]), Boxes([[0, 0, 10, 4]]))
    assert d.shape == (1, 1, 4) and d[0, 0].tolist() == [2, 3, 8, 1]
