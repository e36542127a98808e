"""Turn any of the R-50-FPN model definitions here into a small ResNet-18 one (model only).

Used by configs/quickstart (CPU training on the synthetic dataset) and by the model tests; it
edits a copy of a model config, so nothing is duplicated between model files.
"""

import copy

from omegaconf import DictConfig


def resnet18_model(
    model: DictConfig,
    *,
    fpn_channels: int = 128,
    norm: str = "GN",
    freeze_at: int = 0,
    fc_dim: int = 512,
) -> DictConfig:
    """Return a copy of ``model`` with a ResNet-18 bottom-up network and narrower heads.

    Args:
        model: a config from rotated_faster_rcnn.py, oriented_rcnn.py or rotated_retinanet.py.
        fpn_channels: FPN width (and RPN / RetinaNet head width).
        norm: backbone normalisation; "GN" or "BN" train from scratch (no ImageNet weights
            needed), "FrozenBN" suits pre-trained weights.
        freeze_at: see ResNet.freeze.
        fc_dim: width of the two fc layers of the RoI box head.
    """
    model = copy.deepcopy(model)
    backbone = model.backbone
    backbone.bottom_up.stages.depth = 18
    backbone.bottom_up.stages.norm = norm
    backbone.bottom_up.stem.norm = norm
    backbone.bottom_up.freeze_at = freeze_at
    backbone.out_channels = fpn_channels
    top = backbone.top_block
    if "in_channels" in top:  # LastLevelP6P7 fed by res5 (512 channels in ResNet-18)
        top.in_channels = 512 if top.get("in_feature", "res5") == "res5" else fpn_channels
        top.out_channels = fpn_channels
    if "head" in model:  # RetinaNet
        model.head.in_channels = fpn_channels
        model.head.conv_dims = [fpn_channels] * len(model.head.conv_dims)
    if "proposal_generator" in model:
        model.proposal_generator.head.in_channels = fpn_channels
    if "roi_heads" in model:
        # RoI Transformer's RRoI learner is a first stage of its own
        for stage in (model.roi_heads, model.roi_heads.get("rroi_learner")):
            if stage is None:
                continue
            stage.box_head.input_shape.channels = fpn_channels
            stage.box_head.fc_dims = [fc_dim, fc_dim]
            stage.box_predictor.input_shape.channels = fc_dim
    return model
