"""H2RBox-v2 trains on horizontal labels (slow: trains).

The small detector on the fixed two-image batch of the overfit test (``make_batch``), given only
the HORIZONTAL boxes of the objects (rotated boxes of angle 0, as a user's labels would be): after
``ITERS`` iterations the losses have fallen (the symmetry losses included), every object is
detected with its class, the detection's enclosing horizontal box matches the label (what the
weak supervision teaches), and the detections' rotated IoU with the TRUE rotated boxes clears a
margin.

What this test cannot show: on two images the self-supervised angle is not identifiable. The
network tells the views apart by their context (the other objects, the background noise) and
satisfies both consistencies with a per-object offset (measured: rotation and flip consistency
within 5-20 degrees on the training images while the angles were 15-55 degrees off), so the
rotated IoU stays near what the horizontal boxes themselves give (0.42-1.0, mean 0.61, for
these six objects; 300 iterations did not change that). The method's angle accuracy needs many
objects: it is measured by the quickstart on the synthetic dataset
(configs/quickstart/synthetic_h2rbox_v2.py, ``python dev/zoo.py --run h2rbox_v2``). The view
transforms and the loss's angle convention, on which that accuracy depends, are checked exactly
in test_h2rbox_v2.py and test_symmetry_loss.py.
"""

import pytest
import torch

from rotated_det.modeling.meta_arch.h2rbox_v2 import horizontal_gt_boxes
from rotated_det.structures import Instances, RotatedBoxes, pairwise_iou_rotated

from ._helpers import build_small_model, make_batch, single_thread

pytestmark = pytest.mark.slow

ITERS = 120


def _horizontal_labels(batch: list[dict]) -> list[dict]:
    out = []
    for d in batch:
        inst = d["instances"]
        hbox = horizontal_gt_boxes(inst.gt_boxes.tensor)
        labels = Instances(inst.image_size, gt_boxes=RotatedBoxes(hbox), gt_classes=inst.gt_classes)
        out.append({**d, "instances": labels})
    return out


def train_detector_on_horizontal_labels(seed: int, iters: int = ITERS) -> dict:
    """Train the small H2RBox-v2 on the fixed batch with horizontal labels; return the figures
    the test checks (per object: best same-class rotated IoU with the true box and enclosing-box
    IoU with the label, of detections scoring > 0.3)."""
    torch.manual_seed(seed)
    model = build_small_model("h2rbox_v2")
    torch.manual_seed(seed)
    truth = make_batch(128)
    batch = _horizontal_labels(truth)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
    history = []
    model.train()
    for it in range(iters):
        factor = min(1.0, (it + 1) / 10) * (0.1 if it >= 3 * iters // 4 else 1.0)
        for group in opt.param_groups:
            group["lr"] = 1e-3 * factor
        losses = model(batch)
        loss = sum(losses.values())
        assert torch.isfinite(loss), losses
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        history.append({k: v.item() for k, v in losses.items()})
    model.eval()
    with torch.no_grad():
        outputs = model(make_batch(128, with_gt=False))
    rotated_iou, hbox_iou = [], []
    for out, true, labels in zip(outputs, truth, batch):
        pred = out["instances"]
        pred = pred[pred.scores > 0.3]
        same = true["instances"].gt_classes[:, None] == pred.pred_classes[None, :]
        iou = pairwise_iou_rotated(true["instances"].gt_boxes, pred.pred_boxes) * same
        best = iou.argmax(dim=1) if len(pred) else torch.zeros(len(same), dtype=torch.long)
        rotated_iou.append(iou.max(dim=1).values if len(pred) else torch.zeros(len(same)))
        enclosing = RotatedBoxes(horizontal_gt_boxes(pred.pred_boxes.tensor[best]))
        hbox_iou.append(
            pairwise_iou_rotated(labels["instances"].gt_boxes, enclosing).diagonal()
            if len(pred)
            else torch.zeros(len(same))
        )
    first = {k: sum(h[k] for h in history[:5]) / 5 for k in history[0]}
    last = {k: sum(h[k] for h in history[-5:]) / 5 for k in history[0]}
    return {
        "rotated_iou": torch.cat(rotated_iou),
        "hbox_iou": torch.cat(hbox_iou),
        "first": first,
        "last": last,
    }


def test_detector_learns_from_horizontal_labels():
    """Margins from seeds 0-2 (one thread, 120 iterations): total loss last/first 0.17-0.19;
    rotation consistency loss last/first 0.04-0.07; enclosing-box IoU with the labels: min
    0.51-0.89, mean 0.78-0.93; rotated IoU with the true boxes: min 0.46-0.49, mean 0.58-0.61
    (the horizontal boxes themselves: min 0.42, mean 0.61)."""
    with single_thread():
        r = train_detector_on_horizontal_labels(0)
    total = lambda d: sum(d.values())  # noqa: E731
    assert total(r["last"]) < 0.35 * total(r["first"]), (r["first"], r["last"])
    assert r["last"]["loss_symmetry_rot"] < 0.25 * r["first"]["loss_symmetry_rot"], r
    assert (r["hbox_iou"] > 0.4).all() and r["hbox_iou"].mean() > 0.65, r["hbox_iou"]
    assert (r["rotated_iou"] > 0.35).all() and r["rotated_iou"].mean() > 0.5, r["rotated_iou"]
