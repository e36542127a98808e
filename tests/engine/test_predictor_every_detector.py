"""DefaultPredictor prepares every detector for CPU inference: batch norms folded, the 4-d
weights channels-last (rotated_det.layers.to_channels_last; S2A-Net's 5-d active-rotating-filter
weight made ``model.to(memory_format=...)`` fail), the backbone + neck features unchanged up to
float32 rounding, and a call returns the image's Instances."""

import numpy as np
import pytest
import torch
from modeling._helpers import DETECTORS, small_model_cfg
from omegaconf import OmegaConf

from rotated_det.engine.predictor import DefaultPredictor
from rotated_det.structures import Instances


def _cfg(name: str):
    cfg = OmegaConf.create()
    cfg.model = small_model_cfg(name)
    cfg.train = dict(init_checkpoint="", device="cpu")
    return cfg


@pytest.mark.parametrize("name", DETECTORS)
def test_predictor_prepares_every_detector(name):
    torch.manual_seed(0)
    prepared = DefaultPredictor(_cfg(name))
    torch.manual_seed(0)
    plain = DefaultPredictor(_cfg(name), fuse_conv_bn=False, channels_last=False)
    weights = [p for p in prepared.model.parameters() if p.dim() == 4]
    assert prepared.channels_last and len(weights) > 10
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
    image = np.random.default_rng(0).integers(0, 256, (160, 192, 3), dtype=np.uint8)
    inputs = [prepared.preprocess(image)]
    with torch.no_grad():
        features = prepared.model.backbone(prepared.model.preprocess_image(inputs).tensor)
        reference = plain.model.backbone(plain.model.preprocess_image(inputs).tensor)
    assert features.keys() == reference.keys()
    for key, ref in reference.items():
        scale = float(ref.abs().max())
        torch.testing.assert_close(features[key], ref, atol=1e-4 * scale, rtol=0, msg=key)
    out = prepared(image)
    assert isinstance(out, Instances) and out.image_size == (160, 192)
