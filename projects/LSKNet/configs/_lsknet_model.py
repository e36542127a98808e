# Shared by the LSKNet configs (not a runnable config by itself): puts LSKNet under the FPN of any
# of the library's FPN model definitions, as configs/common/models/resnet18.py does for ResNet-18.
# It also makes `projects.LSKNet` importable (the repository root on sys.path), as
# tools/lazyconfig_train_net.py does for `rotated_det`.
import copy
import os
import sys

from omegaconf import DictConfig

from rotated_det.config import LazyCall as L

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from projects.LSKNet.lsknet import LSKNET_S, LSKNET_T, LSKNet  # noqa: E402

# ImageNet mean and std of the authors' weights (RGB, pixel values 0-255), in the loaders' BGR
# order: LSKNet reverses the channels itself (input_format="BGR").
IMAGENET_BGR_MEAN = [103.53, 116.28, 123.675]
IMAGENET_BGR_STD = [57.375, 57.12, 58.395]


def lsknet_model(
    model: DictConfig,
    variant: dict,
    *,
    drop_rate: float = 0.1,
    drop_path_rate: float = 0.1,
    norm: str = "BN",
) -> DictConfig:
    """Return a copy of ``model`` whose FPN stands on LSKNet ``variant`` (LSKNET_T, LSKNET_S or
    a dict of ``embed_dims`` and ``depths``). drop_rate / drop_path_rate 0.1: the paper's
    detection settings. norm "BN" (the paper's SyncBN with `train.sync_bn=True` on several GPUs).
    """
    model = copy.deepcopy(model)
    model.backbone.bottom_up = L(LSKNet)(
        embed_dims=list(variant["embed_dims"]),
        depths=list(variant["depths"]),
        drop_rate=drop_rate,
        drop_path_rate=drop_path_rate,
        norm=norm,
        input_format="BGR",
    )
    model.backbone.in_features = ["res2", "res3", "res4", "res5"]
    model.pixel_mean = list(IMAGENET_BGR_MEAN)
    model.pixel_std = list(IMAGENET_BGR_STD)
    model.input_format = "BGR"
    return model


__all__ = ["LSKNET_S", "LSKNET_T", "lsknet_model"]
