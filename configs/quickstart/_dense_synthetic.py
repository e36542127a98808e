# Shared by the quickstart configs of the one-stage detectors (not a runnable config by itself):
# turns an R-50-FPN (P3-P7) one-stage model definition into the small from-scratch model that the
# synthetic recipe (_synthetic_recipe.py) trains on 2 CPU cores: ResNet-18 with GroupNorm, a
# 64-channel FPN and 4 x 64-channel head convs with GroupNorm, candidate / detection limits for
# scenes of < 100 objects, and RetinaNet anchors half the DOTA size (2 x stride x 2^(i/3): 16 px at
# P3), since the synthetic vehicles are 16-32 px long: with 32 px anchors their AP50 was 38-40 in
# the CSL / PSC RetinaNets (62 with ATSS's adaptive assignment).
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
    anchors = model.get("anchor_generator")
    if anchors is not None and len(anchors.sizes[0]) > 1:  # RetinaNet's octave scales
        anchors.sizes = [[size / 2 for size in level] for level in anchors.sizes]
    return model


__all__ = ["small_dense_model", "FPN_CHANNELS"]
