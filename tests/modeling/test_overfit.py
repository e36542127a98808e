"""Each detector overfits a fixed batch of two small synthetic images on CPU.

The images are drawn here (grey noise with three filled rotated rectangles each, one colour per
class; one object is a square, the case where angle regression is ambiguous). Criteria: the total
loss falls by at least 80% within 150 iterations (mean of the last 5 iterations against the
first), and then every ground-truth box is found by a detection of its class with score > 0.5 at
rotated IoU > 0.7 (> 0.45 for the point-set detectors, test_overfit_point_sets.py: their known
defect is described below).

Margins measured over model seeds 0-4 (one thread; floating-point results differ between CPUs,
and a seed change perturbs training more than a CPU change does), final/first loss and the
smallest best IoU of the six objects:

- rotated_faster_rcnn: loss ratio 0.077-0.142, min IoU 0.855-0.945
- oriented_rcnn: loss ratio 0.039-0.063, min IoU 0.891-0.932
- roi_transformer: loss ratio 0.031-0.048, min IoU 0.888-0.932
- gliding_vertex: loss ratio 0.014-0.022, min IoU 0.894-0.915
- rotated_retinanet: loss ratio 0.010-0.014, min IoU 0.943-0.974
- s2anet: loss ratio 0.0003-0.0071, min IoU 0.948-0.954 (0.013-0.065 and 0.896-0.940 before its
  coder swapped edges: configs/common/models/s2anet.py)
- r3det: loss ratio 0.0008-0.0033, min IoU 0.926-0.947 (before its first stage matched anchors
  against enclosing horizontal boxes, seed 0 found one object, 35 x 15 px at -50 degrees, only at
  IoU 0.53: R3Det's docstring; with the "oc" coder's edge swap off the loss ratio was 0.25)

- point-set detectors (gradient_mul 0.1, _helpers.py), min IoU over seeds 0-4 below the others'
  and under 0.7 on some seeds (only seed 0, the test's, passes for all four):
  sasm: loss ratio 0.048-0.072, min IoU 0.702-0.877 (before its initial points' loss took
  MMRotate's convex GIoU gradient, the BC loss pushed squat hulls off their objects: seed 0
  ratio 0.21, IoU 0.74); cfa: 0.074-0.145, 0.701-0.885; oriented_reppoints: 0.067-0.125,
  0.686-0.823; rotated_reppoints: 0.078-0.156, 0.539-0.786. Cause measured: the detection kept
  is the location the initial stage trains (its points steer the classification: highest
  score; initial hull IoU 0.95-0.99), and its refinement degrades that set (hull IoU 0.80-0.88,
  the long side 10-25% too long), while neighbouring positives, whose initial sets the initial
  loss never trains, are refined to 0.93-0.98: the refine branch, fitted mostly on those poor
  sets in 150 iterations, over-expands the one good set. Tried, none robust: gradient_mul 0
  (seeds 0-1), lr 2e-3 (the worst seeds), refine_loss_weight 2 and 9 initial positives per
  object (seeds 0-1: worse).

With 100 iterations and without the coder's edge_swap, oriented_rcnn gave min IoU 0.69-0.90 and
loss ratios up to 0.27 over the same seeds (it failed on seed 0 on two different Xeons).
"""

import os

import pytest
import torch

from rotated_det.structures import pairwise_iou_rotated

from ._helpers import ROTATED_LABEL_DETECTORS, build_small_model, make_batch, single_thread

pytestmark = pytest.mark.slow  # trains each detector until it overfits two images

ITERS = 150
# The point-set detectors run in test_overfit_point_sets.py (a weaker IoU criterion, see there).
POINT_SET = ("rotated_reppoints", "oriented_reppoints", "cfa", "sasm")
# Detectors that differ from one in the suite by one part with its own unit tests: an angle coder
# (the CSL / PSC RetinaNets, FCOS + PSC), an assigner (ATSS: RotatedRetinaNet with the ATSS
# assigner), a box predictor and coder (Gliding Vertex) or an RoI stage (RoI Transformer's RoI
# learner), on the meta-architecture of a detector that is trained here.
# ROTATED_DET_OVERFIT_ALL=1 trains them too (about 40 s each); the suite does not, to stay within
# its time budget.
CONFIG_VARIANTS = (
    "rotated_retinanet_csl",
    "rotated_retinanet_psc",
    "rotated_fcos_psc",
    "rotated_atss",
    "gliding_vertex",
    "roi_transformer",
)
OVERFIT_DETECTORS = tuple(
    d
    for d in ROTATED_LABEL_DETECTORS
    if d not in POINT_SET
    and (os.environ.get("ROTATED_DET_OVERFIT_ALL") or d not in CONFIG_VARIANTS)
)


def _train(model, batch, lr: float):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    history = []
    model.train()
    for it in range(ITERS):
        # 10-iteration linear warm-up, lr x0.1 for the last quarter
        factor = min(1.0, (it + 1) / 10) * (0.1 if it >= 3 * ITERS // 4 else 1.0)
        for group in opt.param_groups:
            group["lr"] = lr * factor
        losses = model(batch)
        loss = sum(losses.values())
        assert torch.isfinite(loss), losses
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        history.append(loss.item())
    return history


def check_overfit(name: str, min_iou: float) -> None:
    """Train ``name``'s small model on the two images, then assert the criteria (docstring)."""
    with single_thread():
        model = build_small_model(name)
        batch = make_batch(128)
        torch.manual_seed(0)
        history = _train(model, batch, lr=1e-3)
        final = sum(history[-5:]) / 5
        assert final <= 0.2 * history[0], (
            f"{name}: loss fell from {history[0]:.3f} to {final:.3f} (< 80%): {history[::10]}"
        )
        model.eval()
        with torch.no_grad():
            outputs = model(make_batch(128, with_gt=False))
    for i, (out, inputs) in enumerate(zip(outputs, batch)):
        pred = out["instances"]
        gt = inputs["instances"]
        confident = pred[pred.scores > 0.5]
        assert len(confident) > 0, f"{name}: no confident detection in image {i}"
        iou = pairwise_iou_rotated(gt.gt_boxes, confident.pred_boxes)  # [G, D]
        same_class = gt.gt_classes[:, None] == confident.pred_classes[None, :]
        best = (iou * same_class).max(dim=1).values
        assert (best > min_iou).all(), f"{name}: image {i} best IoU per object {best.tolist()}"


@pytest.mark.parametrize("name", OVERFIT_DETECTORS)
def test_overfits_two_images(name):
    check_overfit(name, min_iou=0.7)
