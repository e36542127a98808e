# Shared by the quickstart configs of the detectors with a horizontal RPN (RoI Transformer,
# Gliding Vertex; not a runnable config by itself): turns their R-50-FPN model definition into the
# small from-scratch model that the synthetic recipe (_synthetic_recipe.py) trains on 2 CPU cores,
# sized as synthetic_quickstart.py's Rotated Faster R-CNN: ResNet-18 with GroupNorm, a 64-channel
# FPN and RPN head, 256-d box-head fc layers, fewer proposals and sampled RoIs (scenes hold < 100
# objects), and horizontal anchors from 24 px at P2 with aspect ratios 1/4 to 4: the bounding
# boxes of the elongated classes (ships, containers: 3-5 : 1) lying along an image axis are as
# elongated as they are.
from omegaconf import DictConfig

from ..common.models.resnet18 import resnet18_model
from ._synthetic_recipe import NUM_CLASSES

ASPECT_RATIOS = [0.25, 0.5, 1.0, 2.0, 4.0]


def small_horizontal_rpn_model(model: DictConfig) -> DictConfig:
    """A copy of ``model`` (roi_transformer.py or gliding_vertex.py) sized for the quickstart."""
    model = resnet18_model(model, fpn_channels=64, fc_dim=256)
    model.roi_heads.num_classes = NUM_CLASSES
    rpn = model.proposal_generator
    rpn.anchor_generator.sizes = [[24], [48], [96], [192], [384]]
    rpn.anchor_generator.aspect_ratios = ASPECT_RATIOS
    rpn.head.num_anchors = len(ASPECT_RATIOS)
    rpn.pre_nms_topk = (1000, 1000)
    rpn.post_nms_topk = (500, 500)
    model.roi_heads.batch_size_per_image = 256
    if "rroi_learner" in model.roi_heads:
        model.roi_heads.rroi_learner.batch_size_per_image = 256
    return model


__all__ = ["small_horizontal_rpn_model"]
