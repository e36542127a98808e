# The quickstart: ReDet small enough to train from scratch on the CPU on the synthetic dataset's
# 512 px patches, with the recipe of configs/quickstart/_synthetic_recipe.py (320 px crops, AdamW,
# 1100 iterations) and the heads of configs/quickstart/synthetic_roi_transformer.py (64-channel
# pyramid, 256-d box heads): a ReResNet-18 with GroupNorm over whole fields and a ReFPN of 64
# channels (8 fields of 8 orientations), RiRoIAlign in the rotated stage. Then DOTA mAP50 on the
# merged validation scenes.
#   python tools/lazyconfig_train_net.py --config-file projects/ReDet/configs/synthetic_redet.py
from ....configs.quickstart.synthetic_roi_transformer import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)
from ._redet_model import redet_model

model = redet_model(model, depth=18, norm="GN", freeze_at=0, imagenet_input=False)
train.output_dir = "./output/synthetic_redet"

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]
