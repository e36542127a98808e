# Rotated Faster R-CNN (ResNet-18 FPN, from scratch) trained and evaluated on the real DOTA scene
# P0706 (531 ships, single class "ship"; see dota_p0706_data.py), on the CPU in about 10 minutes:
#
#   python tools/lazyconfig_train_net.py \
#       --config-file configs/quickstart/dota_p0706_rotated_faster_rcnn_R_18_FPN.py
#   (or bash dev/train_p0706.sh, which also prints AP50)
#
# Same recipe (and anchors) as synthetic_quickstart.py, with room for ~150 ships per patch.
from rotated_det.data.datasets.builtin import P0706_CLASSES

from .dota_p0706_data import dataloader
from .synthetic_quickstart import lr_multiplier, model, optimizer, train

model.roi_heads.num_classes = len(P0706_CLASSES)
model.proposal_generator.pre_nms_topk = (1000, 1000)
model.proposal_generator.post_nms_topk = (1000, 1000)
model.roi_heads.batch_size_per_image = 512
model.roi_heads.box_predictor.test_topk_per_image = 1000

train.max_iter = 400
train.checkpointer.period = 200

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]
