# The quickstart's config (`bash dev/quickstart.sh`): a small Rotated Faster R-CNN (ResNet-18 FPN,
# GroupNorm, from scratch) trained on the CPU on the synthetic dataset's 512 px patches and
# evaluated on the validation scenes merged back from their patches (DOTA mAP50).
#
# Tuned for about 10 minutes on 2 CPU cores (1100 iterations at ~0.47 s on 2 idle cores: mAP50 89.4
# in 9.4 minutes end to end; 600 iterations gave 67.7):
# - random 320 px crops of the 512 px patches (objects are at most 120 px long): 2.5x less work
#   per image than whole patches;
# - a 64-channel FPN / RPN head (the 3x3 convs on P2 dominate otherwise);
# - anchors of aspect ratio 1/4 for the elongated classes (see below);
# - fewer RPN proposals and sampled RoIs than the DOTA configs (scenes hold < 100 objects);
# - AdamW with gradient clipping: from random weights it converges in a few hundred iterations
#   where SGD needs thousands.
import torch

import rotated_det.data.transforms as T
from rotated_det.config import LazyCall as L
from rotated_det.solver import get_default_optimizer_params, maybe_add_gradient_clipping

from ..common.models.resnet18 import resnet18_model
from ..common.models.rotated_faster_rcnn import model
from ..common.schedule import multistep
from .rotated_faster_rcnn_R_18_FPN import NUM_CLASSES, dataloader, train

TRAIN_CROP = 320  # pixels; the patches are 512 x 512

model = resnet18_model(model, fpn_channels=64, fc_dim=256)
model.roi_heads.num_classes = NUM_CLASSES
# Rotated anchors cover 180 degrees of angle, so an aspect ratio r > 1 duplicates 1/r turned by
# 90 degrees: 0.25 instead of 2 gives elongated objects (ships, containers: 3-5 : 1) matching
# anchors. Long sides: 24 px (ratio 1 at P2) to 768 px (ratio 0.25 at P6).
model.proposal_generator.anchor_generator.sizes = [[24], [48], [96], [192], [384]]
model.proposal_generator.anchor_generator.aspect_ratios = [0.25, 0.5, 1.0]
model.proposal_generator.pre_nms_topk = (1000, 1000)
model.proposal_generator.post_nms_topk = (500, 500)
model.roi_heads.batch_size_per_image = 256

dataloader.train.mapper.augmentations = [
    L(T.RandomCrop)(crop_type="absolute", crop_size=(TRAIN_CROP, TRAIN_CROP)),
    L(T.RandomFlip)(prob=0.5, horizontal=True, vertical=False),
    L(T.RandomFlip)(prob=0.5, horizontal=False, vertical=True),
    L(T.RandomRot90)(prob=0.5),
]
dataloader.train.total_batch_size = 2
dataloader.train.num_workers = 1
dataloader.test.num_workers = 1

optimizer = L(maybe_add_gradient_clipping)(
    optimizer=L(torch.optim.AdamW)(
        params=L(get_default_optimizer_params)(weight_decay_norm=0.0, weight_decay_bias=0.0),
        lr=1e-3,
        betas=(0.9, 0.999),
        weight_decay=0.05,
    ),
    clip_type="norm",
    clip_value=10.0,
)

train.max_iter = 1100
train.seed = 0
train.checkpointer.period = 200
train.eval_period = 0  # evaluate once, at the end
train.log_period = 10
train.device = "cpu"
lr_multiplier = multistep(step_fractions=(0.75, 0.92), warmup_iters=50, warmup_factor=0.1)

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]
