# Oriented R-CNN with LSKNet-S and FPN on DOTA v1.0 (15 classes), the authors' 1x settings
# (lsk_s_fpn_1x_dota_le90): AdamW lr 1e-4 for 8 images per step (8 GPUs x 1; the same lr per image
# as LSKNet-T's 2e-4 for 16), weight decay 0.05, dropout and drop-path 0.1, SyncBN; here 2 images
# per GPU with accumulated batches (see _dota_1x.py). Reported: 81.64 mAP (DOTA v1.0 test).
# ImageNet weights: train.init_checkpoint=<lsk_s_backbone state dict> (see ../README.md).
from ._dota_1x import dataloader, lr_multiplier, model, optimizer, paper_steps, train
from ._lsknet_model import LSKNET_S, lsknet_model

model = lsknet_model(model, LSKNET_S)
optimizer.lr = 1e-4
paper_steps(train, images_per_step=8)

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]
