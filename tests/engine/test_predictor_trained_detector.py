"""DefaultPredictor's batches and bfloat16 precision on a real detector: the small Rotated
RTMDet of the modeling tests, trained for 40 iterations on the two scenes of ``make_batch``
(AdamW as in ``test_overfit``; loss down to 0.12-0.21 of its start), so that its detections are
confident and placed, which random weights' are not.

Margins measured over training seeds 0-7 (one thread, 128 px scenes; this test uses seed 0):

- batched vs one image at a time, four images of three sizes: the same detections, boxes within
  3.1e-5 px and scores within 6e-7 (float rounding of batched convolutions);
- bfloat16 vs float32, per ground-truth object, the best detection of its class (score > 0.3)
  under each precision: IoU between the two 0.975-0.993, scores within 0.002; over all
  detections with score > 0.5, the share that the other precision matches (same class, score
  > 0.3, IoU > 0.9): 1.0 on seven seeds, 0.88 (7 of 8) on seed 3, where bfloat16's rounding
  flipped one NMS decision between two overlapping duplicates of an object.
"""

import numpy as np
import pytest
import torch
from modeling._helpers import (
    SCENES,
    calibrate_batch_norms,
    draw_scene,
    make_batch,
    single_thread,
    small_model_cfg,
)
from modeling.test_overfit import _train
from omegaconf import OmegaConf

from rotated_det.config import LazyCall as L
from rotated_det.config import instantiate
from rotated_det.data.transforms import ResizeShortestEdge
from rotated_det.engine import DefaultPredictor
from rotated_det.structures import pairwise_iou_rotated

pytestmark = pytest.mark.slow  # trains a detector for 40 iterations (~12 s on one idle core)

TRAIN_ITERS = 40


@pytest.fixture(scope="module")
def trained_cfg(tmp_path_factory):
    """A config of the small Rotated RTMDet with the weights of a short overfit on make_batch."""
    import modeling.test_overfit as overfit

    with single_thread():
        torch.manual_seed(0)
        model = instantiate(small_model_cfg("rotated_rtmdet"))
        calibrate_batch_norms(model)
        iters, overfit.ITERS = overfit.ITERS, TRAIN_ITERS
        try:
            history = _train(model, make_batch(128), lr=1e-3)
        finally:
            overfit.ITERS = iters
    assert sum(history[-5:]) / 5 < 0.4 * history[0], history[::5]
    path = tmp_path_factory.mktemp("rtmdet") / "model.pth"
    torch.save({"model": model.state_dict()}, path)

    def make(test_resize: bool):
        cfg = OmegaConf.create()
        cfg.model = small_model_cfg("rotated_rtmdet")
        cfg.train = dict(init_checkpoint=str(path), device="cpu")
        if test_resize:
            resize = L(ResizeShortestEdge)(short_edge_length=128, max_size=256)
            cfg.dataloader = dict(test=dict(mapper=dict(augmentations=[resize])))
        return cfg

    return make


def _scenes_of_three_sizes() -> list[np.ndarray]:
    """The training scenes drawn at (H, W) = 128x128 (two), 160x128 and 96x144."""
    images = []
    for i, (h, w) in enumerate([(128, 128), (160, 128), (128, 128), (96, 144)]):
        boxes, classes = SCENES[i % 2]
        k = min(h, w) / 256
        boxes = [(cx * k, cy * k, bw * k, bh * k, a) for cx, cy, bw, bh, a in boxes]
        images.append(np.ascontiguousarray(draw_scene(max(h, w), boxes, classes, i)[:h, :w]))
    return images


def test_batched_detections_equal_single_image_detections(trained_cfg):
    images = _scenes_of_three_sizes()
    with single_thread():
        predictor = DefaultPredictor(trained_cfg(test_resize=True), batch_size=2)
        calls: list[int] = []
        predictor.model.register_forward_pre_hook(lambda m, args: calls.append(len(args[0])))
        batched = predictor(images)
        assert calls == [2, 1, 1]  # the two 128x128 images together
        singles = [predictor(img) for img in images]
    for img, b, s in zip(images, batched, singles):
        assert b.image_size == s.image_size == img.shape[:2]
        assert (s.scores > 0.5).sum() >= 2  # confident detections to compare
        assert len(b) == len(s)
        torch.testing.assert_close(b.pred_boxes.tensor, s.pred_boxes.tensor, atol=1e-3, rtol=0)
        torch.testing.assert_close(b.scores, s.scores, atol=1e-5, rtol=0)
        assert torch.equal(b.pred_classes, s.pred_classes)


def test_folded_norms_and_channels_last_give_the_plain_detections(trained_cfg):
    """DefaultPredictor on a CPU folds every batch norm of the model (fuse_conv_bn=True) and
    stores the convolution weights channels-last (channels_last=None: on CPU): the same
    detections as the model as trained, boxes within 1e-3 px and scores within 1e-5 (float32
    rounding of the folded weights and of the other summation order)."""
    images = _scenes_of_three_sizes()
    with single_thread():
        fast = DefaultPredictor(trained_cfg(test_resize=True))
        plain = DefaultPredictor(
            trained_cfg(test_resize=True), fuse_conv_bn=False, channels_last=False
        )
        norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in plain.model.modules())
        assert fast.folded_norms == norms > 50 and plain.folded_norms == 0
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.model.modules())
        weights = [p for p in fast.model.parameters() if p.dim() == 4 and p.shape[1] > 1]
        assert fast.channels_last and not plain.channels_last
        assert all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
        assert not weights[0].is_contiguous()
        pairs = list(zip(fast(images), plain(images)))
    for a, b in pairs:
        assert (b.scores > 0.5).sum() >= 2 and len(a) == len(b)
        torch.testing.assert_close(a.pred_boxes.tensor, b.pred_boxes.tensor, atol=1e-3, rtol=0)
        torch.testing.assert_close(a.scores, b.scores, atol=1e-5, rtol=0)
        assert torch.equal(a.pred_classes, b.pred_classes)


def _matched_share(x_all, y_all) -> float:
    """Share of the detections of x (score > 0.5) that y has too: same class, score > 0.3 (a
    lower bar, so that a score moving across 0.5 is not a miss), rotated IoU > 0.9."""
    matched = total = 0
    for x, y in zip(x_all, y_all):
        xc, yc = x[x.scores > 0.5], y[y.scores > 0.3]
        total += len(xc)
        if len(xc) and len(yc):
            iou = pairwise_iou_rotated(xc.pred_boxes.tensor, yc.pred_boxes.tensor)
            iou = iou * (xc.pred_classes[:, None] == yc.pred_classes[None, :])
            matched += int((iou.max(dim=1).values > 0.9).sum())
    return matched / max(total, 1)


def test_bfloat16_detections_agree_with_float32(trained_cfg):
    batch = make_batch(128)
    images = [d["image"].permute(1, 2, 0).numpy().astype(np.uint8) for d in batch]
    with single_thread():
        f32 = DefaultPredictor(trained_cfg(test_resize=False))(images)
        bf16 = DefaultPredictor(trained_cfg(test_resize=False), precision="bfloat16")(images)
    for out in bf16:
        assert out.scores.dtype == out.pred_boxes.tensor.dtype == torch.float32
    for a, b, d in zip(f32, bf16, batch):
        gt = d["instances"]
        for box, cls in zip(gt.gt_boxes.tensor, gt.gt_classes):
            best = []
            for out in (a, b):
                cand = out[(out.pred_classes == cls) & (out.scores > 0.3)]
                assert len(cand) > 0, f"no detection of class {int(cls)} near {box.tolist()}"
                j = int(pairwise_iou_rotated(box[None], cand.pred_boxes.tensor)[0].argmax())
                best.append(cand[j])
            iou = float(pairwise_iou_rotated(best[0].pred_boxes.tensor, best[1].pred_boxes.tensor))
            assert iou > 0.9, (box.tolist(), best[0].pred_boxes, best[1].pred_boxes)
            assert float(best[0].scores) == pytest.approx(float(best[1].scores), abs=0.05)
    # NMS may keep a different one of two overlapping duplicates (seed 3: 7 of 8 matched)
    assert _matched_share(f32, bf16) >= 0.75
    assert _matched_share(bf16, f32) >= 0.75
