"""R3Det with the KLD loss (Yang et al., NeurIPS 2021), R-50-FPN (model definition only).

As MMRotate's r3det_kld_r50_fpn_1x_dota_oc (DOTA v1.0 71.83): r3det.py with the box loss of
both stages on the decoded boxes, ``1 - 1 / (1 + log1p(KLD))`` (weight 1.0), instead of smooth L1
on the deltas.
"""

from .r3det import model

model.box_reg_loss_type = "kld"
