# The quickstart's config (`bash dev/quickstart.sh`): a small Rotated Faster R-CNN (ResNet-18 FPN,
# GroupNorm, from scratch) trained on the CPU on the synthetic dataset's 512 px patches and
# evaluated on the validation scenes merged back from their patches (DOTA mAP50).
#
# Tuned for about 10 minutes on 2 CPU cores (1100 iterations at ~0.47 s on 2 idle cores: mAP50 89.4
# in 9.4 minutes end to end; 600 iterations gave 67.7), with the recipe of _synthetic_recipe.py
# (320 px crops, AdamW) and:
# - a 64-channel FPN / RPN head (the 3x3 convs on P2 dominate otherwise);
# - anchors of aspect ratio 1/4 for the elongated classes (see below);
# - fewer RPN proposals and sampled RoIs than the DOTA configs (scenes hold < 100 objects).
from ..common.models.resnet18 import resnet18_model
from ..common.models.rotated_faster_rcnn import model
from ._synthetic_recipe import NUM_CLASSES, dataloader, lr_multiplier, optimizer, train

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

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]
