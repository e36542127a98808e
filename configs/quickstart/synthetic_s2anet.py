# S2A-Net (ResNet-18 FPN, GroupNorm, from scratch) on the synthetic dataset with the quickstart
# recipe (_synthetic_recipe.py): `python dev/quickstart.py --config-file <this file>`; its figures
# are in dev/zoo.py's table. Square anchors of side 2 x stride (16 px at P3) instead of 4 x stride:
# the synthetic vehicles are 16-32 px long (see _dense_synthetic.py).
#
# 1500 iterations instead of the recipe's 1100: S2A-Net's two heads are still converging at 1100
# (mAP50 78.8 there; 86.8 and 87.8 at 1500 with seeds 0 and 1), and at 0.39-0.41 s/iter on 2
# idle cores the run takes 10.0-10.5 minutes, inside the quickstart's 15.
#
# Two more quickstart-only changes (dev/zoo.py runs of 1100 iterations, mAP50 / mAP75):
# - the feature alignment module matches anchors at IoU 0.3 / 0.4 (MMRotate: 0.4 / 0.5): a 16 px
#   square anchor reaches IoU 0.4 at best with a 24 x 8 px vehicle, so at 0.4 / 0.5 thin objects
#   got low-quality matches only and the refined anchors fed to the oriented detection module
#   were loose (mAP75 8.4-9.3 over three runs, 14.9 and 16.0 in two runs with 0.3 / 0.4);
# - angle deltas in radians (weight 1) instead of MMRotate's radians / pi: a 10 degree error
#   then leaves smooth L1's quadratic zone (beta 0.11) instead of giving a near-zero gradient
#   (mAP50 79.2 against 77.8; the median angle error of matched elongated objects 5.6-10.6
#   against 6.7-12.9 degrees). The active rotating filters' orientations (4 instead of 8) made no
#   difference (77.4).
from ..common.models.s2anet import STRIDES, model
from ._dense_synthetic import small_dense_model
from ._synthetic_recipe import dataloader, lr_multiplier, optimizer, train

model = small_dense_model(model)
model.anchor_generator.sizes = [[2 * stride] for stride in STRIDES]
model.fam_matcher.thresholds = [0.3, 0.4]
model.box2box_transform.weights = (1.0, 1.0, 1.0, 1.0, 1.0)
train.max_iter = 1500

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]
