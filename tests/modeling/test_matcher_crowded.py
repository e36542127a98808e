"""Matcher.match_boxes: matching crowded scenes without the [G, P] IoU matrix.

The result must equal the dense matcher's bit for bit (ties included), and no tensor of G x P
entries may appear. One training step of each detector on a crowded image goes through it.
"""

import math

import numpy as np
import pytest
import torch
from cuda_support import has_cuda_kernels
from torch.utils._python_dispatch import TorchDispatchMode

from rotated_det.config import instantiate
from rotated_det.layers import pairwise_iou_rotated
from rotated_det.modeling import DefaultAnchorGenerator, Matcher, RotatedAnchorGenerator
from rotated_det.modeling import matcher as matcher_module
from rotated_det.structures import Boxes, Instances, RotatedBoxes, pairwise_iou, rbox_to_hbox

from ._helpers import build_small_model, draw_scene, single_thread, small_model_cfg

MATCHERS = [
    ([0.3, 0.7], [0, -1, 1], True),  # RPN
    ([0.4, 0.5], [0, -1, 1], True),  # RetinaNet
    ([0.5], [0, 1], False),  # RoI heads
]


def _rotated_anchors(size: int) -> torch.Tensor:
    gen = RotatedAnchorGenerator(
        sizes=[[16], [32], [64]],
        aspect_ratios=[0.5, 1.0, 2.0],
        angles=[-60, -30, 0, 30, 60, 90],
        strides=[8, 16, 32],
        offset=0.0,
    )
    feats = [torch.zeros(1, 1, size // s, size // s) for s in gen.strides]
    return torch.cat([a.tensor for a in gen(feats)])


def _crowded_gt(rng: np.random.Generator, num: int, size: int) -> torch.Tensor:
    """Random small rotated boxes, plus boxes built to tie: copies of other ground truths (ties
    in a prediction's best ground truth), axis-aligned integer boxes (equal IoUs with many
    anchors), and boxes that overlap nothing or are invalid (NaN, inf, zero side)."""
    cx, cy = rng.uniform(-8, size + 8, (2, num))
    w, h = rng.uniform(3, 40, (2, num))
    a = rng.uniform(-90, 90, num)
    boxes = np.stack([cx, cy, w, h, a], 1)
    k = num // 5
    boxes[:k, :4] = np.round(boxes[:k, :4])
    boxes[:k, 4] = rng.choice([-90.0, 0.0, 90.0], k)
    boxes[k : 2 * k] = boxes[rng.integers(0, k, k)]  # duplicates of earlier boxes
    special = [
        [size * 10.0, size * 10.0, 20, 20, 0],  # far from every anchor
        [np.nan, 5, 10, 10, 0],
        [5, 5, np.inf, 10, 0],
        [30, 30, 0, 10, 0],
        [40, 40, 16, 16, 0],
        [40, 40, 16, 16, 0],
    ]
    return torch.tensor(np.concatenate([boxes, special]), dtype=torch.float32)


def _with_duplicates(preds: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Predictions plus copies of some of them (ties in a ground truth's best prediction) and
    invalid ones."""
    dup = preds[torch.from_numpy(rng.integers(0, len(preds), 50))]
    bad = preds[:3].clone()
    bad[0, 0] = float("nan")
    bad[1, 2] = float("inf")
    bad[2, 2:4] = -bad[2, 2:4]
    return torch.cat([preds, dup, bad])


class _NoDense:
    """Stands in for matcher._dense_iou: the chunked path must not build the matrix."""

    def __call__(self, *args):
        raise AssertionError("match_boxes built the dense IoU matrix")


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("max_pairs", [1, 700, 50_000])
def test_rotated_match_equals_dense(seed, max_pairs, monkeypatch):
    rng = np.random.default_rng(seed)
    preds = _with_duplicates(_rotated_anchors(128), rng)
    gt = _crowded_gt(rng, 120, 128)
    iou = pairwise_iou_rotated(gt, preds)
    # The scene holds ties of both kinds the Matcher resolves.
    best_per_pred = iou.max(dim=0).values
    assert ((iou == best_per_pred).sum(0)[best_per_pred > 0] > 1).any()
    best_per_gt = iou.max(dim=1, keepdim=True).values
    assert ((iou == best_per_gt).sum(1)[best_per_gt[:, 0] > 0] > 1).any()
    monkeypatch.setattr(matcher_module, "_dense_iou", _NoDense())
    for thresholds, labels, low_quality in MATCHERS:
        dense = Matcher(thresholds, labels, low_quality)(iou)
        chunked = Matcher(thresholds, labels, low_quality, max_pairs_per_chunk=max_pairs)
        matches, match_labels = chunked.match_boxes(gt, preds)
        assert matches.dtype == torch.int64 and match_labels.dtype == torch.int8
        assert torch.equal(matches, dense[0])
        assert torch.equal(match_labels, dense[1])


@pytest.mark.parametrize("seed", [0, 1])
def test_horizontal_match_equals_dense(seed, monkeypatch):
    """Oriented R-CNN's RPN: XYXY anchors against the ground truth's bounding boxes."""
    rng = np.random.default_rng(seed)
    gen = DefaultAnchorGenerator(
        sizes=[[16], [32], [64]], aspect_ratios=[0.5, 1.0, 2.0], strides=[8, 16, 32], offset=0.0
    )
    feats = [torch.zeros(1, 1, 128 // s, 128 // s) for s in gen.strides]
    anchors = torch.cat([a.tensor for a in gen(feats)])
    anchors = torch.cat([anchors, anchors[torch.from_numpy(rng.integers(0, len(anchors), 40))]])
    gt = rbox_to_hbox(_crowded_gt(rng, 120, 128))
    iou = pairwise_iou(Boxes(gt), Boxes(anchors))
    monkeypatch.setattr(matcher_module, "_dense_iou", _NoDense())
    for thresholds, labels, low_quality in MATCHERS:
        dense = Matcher(thresholds, labels, low_quality)(iou)
        for max_pairs in (1, 900):
            chunked = Matcher(thresholds, labels, low_quality, max_pairs_per_chunk=max_pairs)
            matches, match_labels = chunked.match_boxes(gt, anchors)
            assert torch.equal(matches, dense[0])
            assert torch.equal(match_labels, dense[1])


def test_small_problems_and_edge_cases():
    m = Matcher([0.3, 0.7], [0, -1, 1], True, max_pairs_per_chunk=1)
    anchors = _rotated_anchors(64)
    idx, labels = m.match_boxes(anchors[:0], anchors)
    assert idx.tolist() == [0] * len(anchors) and labels.tolist() == [0] * len(anchors)
    idx, labels = m.match_boxes(anchors[:2], anchors[:0])
    assert idx.shape == (0,) and labels.shape == (0,)
    # Nothing overlaps: best ground truth 0, background, no low-quality match.
    far = torch.tensor([[1e4, 1e4, 10, 10, 0], [-1e4, 0, 10, 10, 0]])
    idx, labels = m.match_boxes(far, anchors)
    assert (idx == 0).all() and (labels == 0).all()
    # A budget covering the whole matrix takes the dense path: same answer.
    gt = anchors[[5, 40]] + torch.tensor([1.0, 2.0, 0, 0, 0])
    small = Matcher([0.3, 0.7], [0, -1, 1], True)
    for a, b in zip(small.match_boxes(gt, anchors), m.match_boxes(gt, anchors)):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="match_boxes takes"):
        m.match_boxes(gt, anchors[:, :4])
    with pytest.raises(ValueError, match="max_pairs_per_chunk"):
        Matcher([0.5], [0, 1], max_pairs_per_chunk=0)


@pytest.mark.gpu
@pytest.mark.skipif(not has_cuda_kernels(), reason="needs a GPU and CUDA kernels")
@pytest.mark.parametrize("max_pairs", [700, 50_000])
def test_match_on_cuda_equals_dense_on_cuda(max_pairs):
    """On CUDA the chunked path (aligned IoU kernel) and the dense matrix (pairwise kernel) give
    the same answer too; both run the same device function per pair."""
    rng = np.random.default_rng(5)
    preds = _with_duplicates(_rotated_anchors(128), rng).cuda()
    gt = _crowded_gt(rng, 120, 128).cuda()
    iou = pairwise_iou_rotated(gt, preds)
    for thresholds, labels, low_quality in MATCHERS:
        dense = Matcher(thresholds, labels, low_quality)(iou)
        chunked = Matcher(thresholds, labels, low_quality, max_pairs_per_chunk=max_pairs)
        matches, match_labels = chunked.match_boxes(gt, preds)
        assert matches.is_cuda and torch.equal(matches, dense[0])
        assert torch.equal(match_labels, dense[1])


class _LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an op returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.slow
def test_crowded_match_memory_is_bounded():
    """400 small objects against Rotated Faster R-CNN's anchors of a 512 px image (5 levels x 18
    anchors per location): the dense IoU would hold 1.6e8 entries; no tensor comes near."""
    gen = RotatedAnchorGenerator(
        sizes=[[32], [64], [128], [256], [512]],
        aspect_ratios=[0.5, 1.0, 2.0],
        angles=[-60, -30, 0, 30, 60, 90],
        strides=[4, 8, 16, 32, 64],
        offset=0.0,
    )
    anchors = torch.cat(
        [a.tensor for a in gen([torch.zeros(1, 1, 512 // s, 512 // s) for s in gen.strides])]
    )
    assert len(anchors) == 21824 * 18
    rng = np.random.default_rng(0)
    n = 400
    gt = torch.tensor(
        np.stack(
            [*rng.uniform(0, 512, (2, n)), *rng.uniform(4, 16, (2, n)), rng.uniform(-90, 90, n)], 1
        ),
        dtype=torch.float32,
    )
    budget = 2**18
    m = Matcher([0.3, 0.7], [0, -1, 1], True, max_pairs_per_chunk=budget)
    with single_thread(), _LargestTensor() as probe:
        idx, labels = m.match_boxes(gt, anchors)
    dense_entries = n * len(anchors)
    assert probe.largest <= 5 * max(budget, len(anchors)) < dense_entries / 50
    assert (labels == 1).sum() >= n // 2


def _crowded_image(size: int, num: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    w = rng.uniform(5, 12, num)
    boxes = np.stack(
        [
            *rng.uniform(6, size - 6, (2, num)),
            w,
            w * rng.uniform(0.4, 1.0, num),
            rng.uniform(-90, 90, num),
        ],
        1,
    )
    classes = rng.integers(0, 3, num)
    img = draw_scene(size, boxes, classes, seed)
    return {
        "image": torch.from_numpy(img).permute(2, 0, 1).float(),
        "height": size,
        "width": size,
        "instances": Instances(
            (size, size),
            gt_boxes=RotatedBoxes(torch.tensor(boxes, dtype=torch.float32)),
            gt_classes=torch.from_numpy(classes),
        ),
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rotated_faster_rcnn", "rotated_retinanet", "oriented_rcnn"])
def test_crowded_training_step(name, monkeypatch):
    """One training step on a 256 px image with 600 objects: the anchor matching goes through
    the chunked path, losses are finite and equal those of the dense matcher."""
    batch = [_crowded_image(256, 600, seed=3)]
    calls = []
    real = matcher_module._candidate_pairs

    def counting(*args):
        calls.append(args[2])
        return real(*args)

    monkeypatch.setattr(matcher_module, "_candidate_pairs", counting)
    model = build_small_model(name)
    model.train()
    with single_thread():
        torch.manual_seed(0)
        losses = model(batch)
        sum(losses.values()).backward()
    assert calls, "the anchor matcher did not take the chunked path"
    assert all(math.isfinite(float(v.detach())) for v in losses.values()), losses
    # The same model with every matcher dense.
    cfg = small_model_cfg(name)
    if name == "rotated_retinanet":
        cfg.anchor_matcher.max_pairs_per_chunk = 2**62
    else:
        cfg.proposal_generator.anchor_matcher.max_pairs_per_chunk = 2**62
        cfg.roi_heads.proposal_matcher.max_pairs_per_chunk = 2**62
    torch.manual_seed(0)
    dense_model = instantiate(cfg)
    dense_model.train()
    calls.clear()
    with single_thread():
        torch.manual_seed(0)
        dense_losses = dense_model(batch)
    assert not calls
    for k, v in losses.items():
        assert torch.equal(v.detach(), dense_losses[k].detach()), k
