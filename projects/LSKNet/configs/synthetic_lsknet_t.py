# The quickstart (configs/quickstart/synthetic_quickstart.py: a small Rotated Faster R-CNN trained
# from scratch on the CPU on the synthetic dataset's 512 px patches with _synthetic_recipe.py's
# 320 px crops, AdamW and 1100 iterations, then DOTA mAP50 on the merged validation scenes) with a
# small LSKNet in place of its ResNet-18: LSKNet-T's widths (32, 64, 160, 256) with one block per
# stage, two in stage 3 (LSKNet-T has 3, 3, 5, 2), no dropout or drop-path. Forward and backward of
# two 320 px crops on one thread (load 4.2): LSKNet-T 2.27 s, this one 0.88 s, the quickstart's
# ResNet-18 0.95 s, which keeps the run near the quickstart's 10 minutes.
#   python tools/lazyconfig_train_net.py --config-file projects/LSKNet/configs/synthetic_lsknet_t.py
from ....configs.quickstart.synthetic_quickstart import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)
from ._lsknet_model import lsknet_model

LSKNET_T_SMALL = dict(embed_dims=(32, 64, 160, 256), depths=(1, 1, 2, 1))

model = lsknet_model(model, LSKNET_T_SMALL, drop_rate=0.0, drop_path_rate=0.0)
train.output_dir = "./output/synthetic_lsknet_t"

__all__ = ["model", "dataloader", "optimizer", "train", "lr_multiplier"]
