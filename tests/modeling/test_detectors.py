"""Detector-level behaviour: output format, empty images, resize undoing, config checks."""

import pytest
import torch

from rotated_det.config import instantiate
from rotated_det.modeling import check_model_config, detector_postprocess
from rotated_det.structures import Instances, RotatedBoxes

from ._helpers import (
    DETECTORS,
    build_small_model,
    is_one_stage,
    make_batch,
    single_thread,
    small_model_cfg,
)


def _empty_batch(size=96):
    return [
        {
            "image": torch.full((3, size, size), 110.0),
            "instances": Instances(
                (size, size),
                gt_boxes=RotatedBoxes(torch.zeros(0, 5)),
                gt_classes=torch.zeros(0, dtype=torch.int64),
            ),
        }
        for _ in range(2)
    ]


@pytest.mark.parametrize("name", DETECTORS)
def test_training_on_images_without_ground_truth(name):
    with single_thread():
        model = build_small_model(name)
        model.train()
        batch = _empty_batch() + make_batch(96)[:1]
        losses = model(batch)
        total = sum(losses.values())
        assert all(torch.isfinite(v) for v in losses.values()), losses
        total.backward()
        losses = model(_empty_batch())  # a batch with no object at all
        assert all(torch.isfinite(v) for v in losses.values()), losses
        sum(losses.values()).backward()


@pytest.mark.parametrize("name", DETECTORS)
def test_inference_output_format_and_no_detections(name):
    with single_thread():
        model = build_small_model(name)
        model.eval()
        batch = make_batch(96, with_gt=False)
        batch[1]["height"], batch[1]["width"] = 192, 144  # reported in another size
        with torch.no_grad():
            out = model(batch)
        assert isinstance(out, list) and len(out) == 2
        for o, size in zip(out, [(96, 96), (192, 144)]):
            inst = o["instances"]
            assert inst.image_size == size
            assert isinstance(inst.pred_boxes, RotatedBoxes)
            assert inst.pred_boxes.tensor.shape == (len(inst), 5)
            assert inst.scores.shape == (len(inst),) and inst.pred_classes.dtype == torch.int64
            if len(inst):
                assert (inst.scores[:-1] >= inst.scores[1:]).all()  # sorted
                assert (inst.pred_classes >= 0).all() and (inst.pred_classes < 3).all()
        # nothing above the score threshold: empty but well-formed outputs
        if is_one_stage(name):
            model.test_score_thresh = 1.0
        else:
            model.roi_heads.box_predictor.test_score_thresh = 1.0
        with torch.no_grad():
            out = model(_empty_batch())
        for o in out:
            inst = o["instances"]
            assert len(inst) == 0
            assert inst.pred_boxes.tensor.shape == (0, 5)
            assert inst.scores.shape == (0,) and inst.pred_classes.shape == (0,)


@pytest.mark.parametrize("name", DETECTORS)
def test_pixel_mean_and_std_of_different_lengths_are_refused(name):
    """Every detector checks its normalisation at construction (RetinaNet used not to, and then
    failed, or silently broadcast, at the first image)."""
    cfg = small_model_cfg(name)
    cfg.pixel_mean = [103.53, 116.28]  # 2 values, pixel_std has 3
    with pytest.raises(ValueError, match=r"pixel_mean \(103\.53, 116\.28\) and pixel_std"):
        instantiate(cfg)
    cfg.pixel_mean = [103.53, 116.28, 123.675]
    model = instantiate(cfg)
    assert model.pixel_mean.shape == model.pixel_std.shape == (3, 1, 1)
    assert "pixel_mean" not in model.state_dict()  # a setting of the model, not a weight


def test_detector_postprocess_undoes_resize():
    res = Instances((100, 200))
    res.pred_boxes = RotatedBoxes(torch.tensor([[50.0, 25, 20, 10, 0], [150.0, 60, 20, 10, 90]]))
    res.scores = torch.tensor([0.9, 0.8])
    res.pred_classes = torch.tensor([1, 2])
    out = detector_postprocess(res, 200, 400)  # the input image was shrunk 2x
    assert out.image_size == (200, 400)
    torch.testing.assert_close(
        out.pred_boxes.tensor, torch.tensor([[100.0, 50, 40, 20, 0], [300.0, 120, 40, 20, 90]])
    )
    torch.testing.assert_close(out.scores, res.scores)
    # non-uniform scale (x2 in x only) of axis-aligned boxes stretches their horizontal extent:
    # the 90-degree box has w along y (20, kept) and h along x (10 -> 20)
    out = detector_postprocess(res, 100, 400)
    torch.testing.assert_close(
        out.pred_boxes.tensor, torch.tensor([[100.0, 25, 40, 10, 0], [300.0, 60, 20, 20, 90]])
    )


def test_config_num_classes_mismatch_names_the_keys():
    cfg = small_model_cfg("rotated_faster_rcnn", num_classes=15)
    classes = [f"c{i}" for i in range(16)]
    with pytest.raises(ValueError, match=r"model\.roi_heads\.num_classes=15 .*16 thing_classes"):
        check_model_config(cfg, thing_classes=classes)
    check_model_config(cfg, thing_classes=classes[:15])
    cfg.roi_heads.box_predictor.num_classes = 16
    with pytest.raises(ValueError, match=r"roi_heads\.box_predictor\.num_classes=16"):
        check_model_config(cfg)
    with pytest.raises(ValueError, match="num_classes"):
        instantiate(cfg)
    rcfg = small_model_cfg("rotated_retinanet", num_classes=15)
    with pytest.raises(ValueError, match=r"model\.num_classes=15 .*6 thing_classes"):
        check_model_config(rcfg, thing_classes=classes[:6])


def test_config_four_weight_coder_names_the_key():
    cfg = small_model_cfg("rotated_faster_rcnn")
    cfg.roi_heads.box_predictor.box2box_transform.weights = (10.0, 10.0, 5.0, 5.0)
    with pytest.raises(
        ValueError,
        match=r"model\.roi_heads\.box_predictor\.box2box_transform\.weights=.*4 weights.*needs 5",
    ):
        check_model_config(cfg)
    with pytest.raises(ValueError, match="4-weight tuple is for horizontal"):
        instantiate(cfg)
    ocfg = small_model_cfg("oriented_rcnn")
    check_model_config(ocfg)  # the midpoint-offset coder has 6 weights: fine
    ocfg.proposal_generator.box2box_transform.weights = (1.0,) * 5
    with pytest.raises(ValueError, match=r"proposal_generator\.box2box_transform\.weights"):
        check_model_config(ocfg)
    # also works on built models
    check_model_config(build_small_model("rotated_retinanet"), thing_classes=["a", "b", "c"])
