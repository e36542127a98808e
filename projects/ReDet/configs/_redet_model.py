# Shared by the ReDet configs (not a runnable config by itself): turns any of the library's RoI
# Transformer model definitions into ReDet (as the authors' redet_re50_refpn config, MMRotate's
# redet-le90_re50_refpn_1x_dota): ReResNet + ReFPN in place of the ResNet + FPN, the rotated stage
# pooling with RiRoIAlignRotated (7x7, 2 samples per bin side, 8 orientations), everything else of
# RoI Transformer kept (horizontal RPN, RRoI learner on axis-aligned RoIAlign of the same maps,
# two 1024-d fc layers after each pooler, coders, samplers, loss weights). It also makes
# `projects.ReDet` importable (the repository root on sys.path), as _lsknet_model.py does.
import copy
import os
import sys

from omegaconf import DictConfig

from rotated_det.config import LazyCall as L
from rotated_det.modeling import LastLevelMaxPool

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from projects.ReDet.re_fpn import ReFPN  # noqa: E402
from projects.ReDet.re_resnet import ReResNet  # noqa: E402
from projects.ReDet.redet import ReDet  # noqa: E402

NUM_ORIENTATIONS = 8  # C8, the authors' group
# ImageNet mean and std of the authors' ReResNet weights (RGB, pixel values 0-255), in the loaders'
# BGR order: ReResNet reverses the channels itself (input_format="BGR").
IMAGENET_BGR_MEAN = [103.53, 116.28, 123.675]
IMAGENET_BGR_STD = [57.375, 57.12, 58.395]


def redet_model(
    model: DictConfig,
    *,
    depth: int = 50,
    stem_channels: int = 64,
    base_channels: int = 64,
    norm: str = "BN",
    freeze_at: int = 2,
    imagenet_input: bool = True,
) -> DictConfig:
    """Return a copy of the RoI Transformer ``model`` as ReDet, keeping its FPN width.

    Args:
        depth, stem_channels, base_channels, norm, freeze_at: of the ReResNet (the authors': 50,
            64, 64, BN, stem and first stage frozen).
        imagenet_input: normalise with the ImageNet statistics of the authors' weights (RGB);
            False keeps ``model``'s normalisation (training from scratch).
    """
    model = copy.deepcopy(model)
    model._target_ = ReDet
    fpn = model.backbone
    model.backbone = L(ReFPN)(
        bottom_up=L(ReResNet)(
            depth=depth,
            stem_channels=stem_channels,
            base_channels=base_channels,
            num_orientations=NUM_ORIENTATIONS,
            norm=norm,
            out_features=["res2", "res3", "res4", "res5"],
            freeze_at=freeze_at,
            input_format="BGR",  # the loaders'; reversed to the RGB of the authors' weights
        ),
        in_features=["res2", "res3", "res4", "res5"],
        out_channels=fpn.out_channels,
        top_block=L(LastLevelMaxPool)(),
    )
    pooler = model.roi_heads.box_pooler
    pooler.pooler_type = "RiRoIAlignRotated"
    pooler.sampling_ratio = 2
    pooler.num_orientations = NUM_ORIENTATIONS
    if imagenet_input:
        model.pixel_mean = list(IMAGENET_BGR_MEAN)
        model.pixel_std = list(IMAGENET_BGR_STD)
        model.input_format = "BGR"
    return model


__all__ = ["redet_model", "NUM_ORIENTATIONS"]
