"""Turn any of the R-50-FPN model definitions here into one that trains from random weights.

Used by the `*_scratch.py` configs. It edits a copy of a model config (as resnet18.py does), so
nothing is duplicated between model files.

Why: the R-50 definitions use FrozenBatchNorm with frozen stem and res2 (`freeze_at=2`), which
only makes sense with ImageNet weights: from random weights the frozen layers stay random, and the
unnormalised features make the losses diverge in the first iterations. From scratch every layer
must train and be normalised with statistics that work at 2 images per GPU: GroupNorm (the
default here; batch-size independent) or SyncBN (BatchNorm over all GPUs' images; needs several
CUDA processes, see train.sync_bn). Training from scratch needs longer schedules than 1x to match
ImageNet initialisation (He et al., "Rethinking ImageNet Pre-training": about 3x and more).
"""

import copy

from omegaconf import DictConfig


def scratch_model(model: DictConfig, *, norm: str = "GN") -> DictConfig:
    """Return a copy of ``model`` with ``norm`` in the backbone (stem and stages) and the FPN
    (lateral and output convs), no frozen stage (``freeze_at=0``), and ``norm`` after the convs
    of the RetinaNet head (the R-CNN box heads here are fc-only: nothing to normalise).

    Args:
        model: a config from rotated_faster_rcnn.py, oriented_rcnn.py or rotated_retinanet.py.
        norm: "GN" (32 groups), "SyncBN" or "BN" (see rotated_det.layers.get_norm).
    """
    model = copy.deepcopy(model)
    bottom_up = model.backbone.bottom_up
    bottom_up.stem.norm = norm
    bottom_up.stages.norm = norm
    bottom_up.freeze_at = 0
    model.backbone.norm = norm
    if "head" in model:  # RetinaNet: 4 convs per subnet
        model.head.norm = norm
    if "roi_heads" in model and list(model.roi_heads.box_head.get("conv_dims", [])):
        model.roi_heads.box_head.conv_norm = norm
    return model
