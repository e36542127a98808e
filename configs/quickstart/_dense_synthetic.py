# Shared by the quickstart configs of the one-stage detectors (not a runnable config by itself):
# turns an R-50-FPN (P3-P7) one-stage model definition into the small from-scratch model that the
# synthetic recipe (_synthetic_recipe.py) trains on 2 CPU cores: ResNet-18 with GroupNorm, a
# 64-channel FPN and 4 x 64-channel head convs with GroupNorm, and candidate / detection limits
# for scenes of < 100 objects.
from omegaconf import DictConfig

from ..common.models.resnet18 import resnet18_model
from ._synthetic_recipe import NUM_CLASSES

FPN_CHANNELS = 64


def small_dense_model(model: DictConfig) -> DictConfig:
    """A copy of ``model`` (a one-stage model config) sized for the synthetic quickstart."""
    model = resnet18_model(model, fpn_channels=FPN_CHANNELS)
    model.num_classes = NUM_CLASSES
    model.head.norm = "GN"
    model.test_topk_candidates = 1000
    model.max_detections_per_image = 300
    return model


__all__ = ["small_dense_model", "FPN_CHANNELS"]
