# Oriented R-CNN with LSKNet-T and FPN on DOTA v1.0 (15 classes), the authors' 1x settings
# (lsk_t_fpn_1x_dota_le90): AdamW lr 2e-4 for 16 images per step (8 GPUs x 2), weight decay 0.05,
# dropout and drop-path 0.1, SyncBN; here 2 images per GPU with 8 / (number of GPUs) accumulated
# batches (see _dota_1x.py). Reported: 81.37 mAP (DOTA v1.0 test). ImageNet weights of the authors'
# backbone: train.init_checkpoint=<lsk_t_backbone state dict> (see ../README.md).
from ._dota_1x import dataloader, lr_multiplier, model, optimizer, paper_steps, train
from ._lsknet_model import LSKNET_T, lsknet_model

model = lsknet_model(model, LSKNET_T)
optimizer.lr = 2e-4
paper_steps(train, images_per_step=16)

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]
