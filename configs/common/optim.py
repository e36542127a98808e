# Optimizers as LazyCalls. DefaultTrainer fills `params.model` with the model.
import torch

from rotated_det.config import LazyCall as L
from rotated_det.solver import get_default_optimizer_params

# MMRotate's default for two-stage / one-stage rotated detectors (batch 2 x 8 GPUs): lr 0.02 / 8
# GPUs per 2 images. Scale lr linearly with the total batch size.
SGD = L(torch.optim.SGD)(
    params=L(get_default_optimizer_params)(
        # params.model is set by the trainer
        weight_decay_norm=0.0,
    ),
    lr=0.02,
    momentum=0.9,
    weight_decay=1e-4,
)

AdamW = L(torch.optim.AdamW)(
    params=L(get_default_optimizer_params)(
        weight_decay_norm=0.0,
        weight_decay_bias=0.0,
    ),
    lr=1e-4,
    betas=(0.9, 0.999),
    weight_decay=0.05,
)
