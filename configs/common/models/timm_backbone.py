"""Put a timm network under any of the FPN model definitions here (model only).

Used by the `*_convnext_tiny_FPN_*` and `*_swin_tiny_FPN_*` configs; it edits a copy of a model
config (as resnet18.py does), so nothing is duplicated between model files. The network's feature
maps of strides 4-32 are named "res2".."res5" by TimmBackbone, so the FPN's in_features stay.

Input: timm's ImageNet weights expect RGB images normalised with the ImageNet mean and std (pixel
values 0-255 below). The library's loaders give BGR, so the backbone reverses the channels
(`input_format="BGR"`) and the detector normalises with the same mean and std in BGR order: what
MMRotate's `Normalize(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)`
computes.

Weights: `train.init_checkpoint=/path/to/model.safetensors` (or a .pth of
`timm.create_model(name).state_dict()`): the checkpointer places the file's tensors under
`backbone.bottom_up.model.` and lists the classifier as ignored.
"""

import copy

from omegaconf import DictConfig

from rotated_det.config import LazyCall as L
from rotated_det.modeling.backbone import TimmBackbone

# ImageNet mean and std of timm's weights (RGB, as pixel values 0-255), in the loaders' BGR order.
IMAGENET_BGR_MEAN = [103.53, 116.28, 123.675]
IMAGENET_BGR_STD = [57.375, 57.12, 58.395]


def timm_model(
    model: DictConfig,
    model_name: str,
    *,
    out_indices: list[int] | None = None,
    model_kwargs: dict | None = None,
    freeze_at: int = 0,
    freeze_bn: bool = False,
) -> DictConfig:
    """Return a copy of ``model`` whose FPN stands on ``TimmBackbone(model_name)``.

    Args:
        model: a config from rotated_faster_rcnn.py, oriented_rcnn.py or rotated_retinanet.py.
        model_name: a timm model name ("convnext_tiny", "swin_tiny_patch4_window7_224", ...).
        out_indices: timm feature levels of strides 4, 8, 16, 32 (None: every level of stride 4
            or more, which is those four for ResNet, ConvNeXt and Swin).
        model_kwargs: more arguments of ``timm.create_model`` (e.g. ``drop_path_rate``).
        freeze_at, freeze_bn: see TimmBackbone (ConvNeXt and Swin train every stage: LayerNorm
            does not depend on the batch size).
    """
    model = copy.deepcopy(model)
    model.backbone.bottom_up = L(TimmBackbone)(
        model_name=model_name,
        out_indices=None if out_indices is None else list(out_indices),
        freeze_at=freeze_at,
        freeze_bn=freeze_bn,
        input_format="BGR",
        model_kwargs=dict(model_kwargs or {}),
    )
    model.backbone.in_features = ["res2", "res3", "res4", "res5"]
    top = model.backbone.top_block
    if "in_channels" in top and top.get("in_feature", "res5") == "res5":
        # LastLevelP6P7 on C5: its width is only known once timm builds the network, so P6 is
        # computed from P5 instead (the FPN width).
        top.in_feature = "p5"
        top.in_channels = model.backbone.out_channels
    model.pixel_mean = list(IMAGENET_BGR_MEAN)
    model.pixel_std = list(IMAGENET_BGR_STD)
    model.input_format = "BGR"
    return model


def swin_kwargs(img_size: int = 1024, drop_path_rate: float = 0.2) -> dict:
    """``timm.create_model`` arguments that let a timm Swin take any input size.

    timm's Swin checks the input against ``img_size`` (224 by default) and sizes its shifted
    windows from it; ``dynamic_img_size=True`` drops the check, pads each stage's map to whole
    windows and builds the attention masks for the actual size on each forward. ``img_size``
    still decides which stages shift their windows (a stage whose map is no larger than the
    window does not): any size of 256 px or more (the 1024 px DOTA patches, HRSC's 800 px) makes
    all four stages shift, as Swin does in MMDetection / MMRotate. drop_path_rate 0.2 is
    MMRotate's Swin-T setting.
    """
    return dict(img_size=img_size, dynamic_img_size=True, drop_path_rate=drop_path_rate)


# The backbones of the *_convnext_tiny_FPN_* and *_swin_tiny_FPN_* configs, with MMRotate's
# settings for them: drop-path 0.4 for ConvNeXt-T (its ConvNeXt-T RetinaNet config), 0.2 for
# Swin-T (its Swin-T RoI Transformer config). Use as `timm_model(model, **CONVNEXT_TINY)`.
CONVNEXT_TINY = dict(model_name="convnext_tiny", model_kwargs=dict(drop_path_rate=0.4))
SWIN_TINY = dict(model_name="swin_tiny_patch4_window7_224", model_kwargs=swin_kwargs())
# Swin's relative position bias tables take no weight decay (as its paper and MMRotate): for
# `optimizer.params.overrides` of configs/common/optim.py's AdamW (which already exempts norms
# and biases).
SWIN_NO_DECAY = {"relative_position_bias_table": {"weight_decay": 0.0}}
