# R3Det R-50-FPN with the KLD loss on DOTA v1.0 (15 classes), MMRotate's 1x schedule
# (_base_1x.py), as MMRotate's r3det_kld_r50_fpn_1x_dota_oc (DOTA v1.0 71.83).
from ..common.models.r3det_kld import model
from ._base_1x import NUM_CLASSES, dataloader, lr_multiplier, optimizer, train

model.num_classes = NUM_CLASSES

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]
