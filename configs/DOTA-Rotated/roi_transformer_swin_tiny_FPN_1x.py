# RoI Transformer with a Swin-T backbone (timm "swin_tiny_patch4_window7_224", any input size) and
# FPN on DOTA v1.0 (15 classes): MMRotate's roi-trans-le90_swin-tiny_fpn_1x_dota (77.51 mAP) with
# the 1x schedule of _base_1x.py: AdamW lr 1e-4 at 2 images, weight decay 0.05 (none on norms,
# biases and relative position tables), drop-path 0.2. ImageNet weights:
# train.init_checkpoint=<timm swin_tiny_patch4_window7_224 model.safetensors or .pth>.
from ..common.models.roi_transformer import model
from ..common.models.timm_backbone import SWIN_NO_DECAY, SWIN_TINY, timm_model
from ..common.optim import AdamW as optimizer
from ._base_1x import NUM_CLASSES, dataloader, lr_multiplier, train

model = timm_model(model, **SWIN_TINY)
model.roi_heads.num_classes = NUM_CLASSES
optimizer.lr = 1e-4
optimizer.params.overrides = SWIN_NO_DECAY

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]
