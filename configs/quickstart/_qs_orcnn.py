import rotated_det.data.transforms as T
from rotated_det.config import LazyCall as L

from .oriented_rcnn_R_18_FPN import dataloader, lr_multiplier, model, optimizer, train

CROP = 320
dataloader.train.mapper.augmentations = [
    L(T.RandomCrop)(crop_type="absolute", crop_size=(CROP, CROP)),
    L(T.RandomFlip)(prob=0.5, horizontal=True, vertical=False),
    L(T.RandomFlip)(prob=0.5, horizontal=False, vertical=True),
    L(T.RandomRot90)(prob=0.5),
]
model.proposal_generator.pre_nms_topk = (1000, 1000)
model.proposal_generator.post_nms_topk = (500, 500)
model.roi_heads.batch_size_per_image = 256
