"""tools/deploy/export_model.py exports the EMA weights of a checkpoint when the config has
train.model_ema.enabled=True, and the raw ones otherwise."""

import json
import os
import textwrap

import cv2
import numpy as np
import torch
from script_loading import load_script

from rotated_det.config import LazyConfig, instantiate
from rotated_det.export import TracingAdapter
from rotated_det.layers import fuse_conv_bn

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL_CFG = os.path.join(REPO, "configs", "common", "models", "oriented_rcnn.py")
# a small oriented R-CNN, as in test_deploy_cpp.py
OVERRIDES = [
    "model.backbone.bottom_up.stages.depth=18",
    "model.proposal_generator.pre_nms_topk=[100,100]",
    "model.proposal_generator.post_nms_topk=[50,50]",
    "model.roi_heads.box_head.fc_dims=[64,64]",
    "model.roi_heads.box_predictor.input_shape.channels=64",
    "model.roi_heads.box_predictor.test_topk_per_image=50",
]


def _export_tool():
    path = os.path.join(REPO, "tools", "deploy", "export_model.py")
    return load_script(path)


def _outputs(state, sample):
    """The detections of weights ``state`` prepared as DefaultPredictor prepares a model for
    the export tool on a CPU (norms folded, channels-last weights): with random weights, the
    rounding of an unprepared model flips near-tied NMS decisions."""
    model = instantiate(LazyConfig.apply_overrides(LazyConfig.load(MODEL_CFG), OVERRIDES).model)
    model.load_state_dict(state)
    model.eval()
    fuse_conv_bn(model)
    model.to(memory_format=torch.channels_last)
    with torch.no_grad():
        return TracingAdapter(model)(sample)


def test_export_uses_ema_weights_when_enabled(tmp_path):
    model_cfg = LazyConfig.apply_overrides(LazyConfig.load(MODEL_CFG), OVERRIDES)
    torch.manual_seed(0)
    raw = instantiate(model_cfg.model).state_dict()
    torch.manual_seed(1)
    ema = instantiate(model_cfg.model).state_dict()
    torch.save({"model": raw, "model_ema": {"model": ema, "updates": 7}}, tmp_path / "w.pth")
    image = np.random.default_rng(0).integers(0, 255, size=(96, 128, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "img.png"), image)
    config = tmp_path / "cfg.py"
    config.write_text(
        textwrap.dedent(
            f"""
            from rotated_det.config import LazyConfig

            model = LazyConfig.load({MODEL_CFG!r}).model
            train = dict(init_checkpoint={str(tmp_path / "w.pth")!r}, device="cpu",
                         model_ema=dict(enabled=True))
            """
        )
    )
    tool = _export_tool()
    results = {}
    for enabled in (True, False):
        out = tmp_path / f"out_{enabled}"
        tool.main(
            [
                "--config-file", str(config), "--format", "torchscript",
                "--sample-image", str(tmp_path / "img.png"), "--output", str(out),
                *OVERRIDES, f"train.model_ema.enabled={enabled}",
            ]
        )  # fmt: skip
        info = json.loads((out / "export_info.json").read_text())
        assert info["ema_weights"] is enabled
        sample = torch.load(out / "sample_input.pt", weights_only=True)
        results[enabled] = (torch.load(out / "sample_outputs.pt", weights_only=True), sample)
    (got_ema, sample), (got_raw, _) = results[True], results[False]
    want_ema, want_raw = _outputs(ema, sample), _outputs(raw, sample)
    assert len(want_ema[0]) > 0 and len(want_raw[0]) > 0
    torch.testing.assert_close(got_ema["scores"], want_ema[1])
    torch.testing.assert_close(got_raw["scores"], want_raw[1])
    assert got_ema["scores"].shape != got_raw["scores"].shape or not torch.allclose(
        got_ema["scores"], got_raw["scores"]
    )
    assert "its EMA weights" in (tmp_path / "out_True" / "README.md").read_text()
