"""H2RBox-v2's self-supervised symmetry losses (Yu et al., NeurIPS 2023): the angles an
orientation predictor gives one object in three views must agree with how the views were made.

Angles are in DEGREES, counter-clockwise positive on screen (the project's box convention). For
an object whose box angle is ``a`` in the original image:

- in the image flipped top to bottom (``y -> H - y``) its angle is ``-a``: the **flip
  consistency** asks ``a_flip + a_orig = 0``;
- in the image turned counter-clockwise by ``r`` degrees about any point its angle is ``a + r``:
  the **rotation consistency** asks ``a_rot - a_orig - r = 0``.

A box angle is only defined modulo 180 degrees (``(w, h, a)`` and ``(w, h, a + 180)`` are one
box), so each difference is first "snapped": replaced by the equivalent value nearest to 0,
``d -> (d + 90) mod 180 - 90`` in ``[-90, 90)`` (the paper's "snap loss"; without it a correct
prediction written 180 degrees away would be penalised). Worked example: ``a_orig = 80``,
``a_rot = -40``, ``r = 60``: ``d = -40 - 80 - 60 = -180``, snapped to ``0`` (no loss: ``-40``
and ``140`` are one orientation). At the period boundary ``d = 90`` snaps to ``-90`` (the two
are the same orientation, and ``|d|`` is the same 90 degrees either way: the loss is continuous
there).

Each snapped difference is converted to radians and scored by a smooth L1 loss against 0 (as in
MMRotate's ``H2RBoxV2ConsistencyLoss``, whose weights, 1.0 for rotation and 0.05 for flip, and
``beta = 0.1`` radians are set by the detector). Why these two constraints give orientations at
all: a network equivariant to flips and rotations must, for an object symmetric about an axis,
predict that axis (or the axis perpendicular to it) -- see ``H2RBoxV2``.
"""

import math

import torch

from .smooth_l1_loss import smooth_l1_loss

__all__ = ["snap_angle_difference", "symmetry_losses"]

ANGLE_PERIOD = 180.0  # degrees after which a box angle repeats


def snap_angle_difference(diff: torch.Tensor, period: float = ANGLE_PERIOD) -> torch.Tensor:
    """``diff`` (degrees, any shape) replaced by the equivalent angle modulo ``period`` nearest
    to zero, in ``[-period / 2, period / 2)``. Differentiable (gradient 1 except at the jumps)."""
    half = 0.5 * period
    return torch.remainder(diff + half, period) - half


def symmetry_losses(
    angle_orig: torch.Tensor,
    angle_rot: torch.Tensor,
    angle_flip: torch.Tensor,
    rotation: torch.Tensor,
    beta: float = 0.1,
    snap: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-object rotation and flip consistency losses (module docstring).

    Args:
        angle_orig, angle_rot, angle_flip: ``[M]`` predicted angles (degrees) of M objects in the
            original view, the rotated view and the vertically flipped view.
        rotation: ``[M]`` (or a scalar) the counter-clockwise turn (degrees) that made each
            object's rotated view.
        beta: smooth L1 threshold, in radians (0 gives the L1 loss).
        snap: take the differences modulo 180 degrees (the snap loss); False uses them as they
            are (only for comparison: then a prediction 180 degrees away is penalised).

    Returns:
        ``(loss_rot, loss_flip)``, each ``[M]``: smooth L1 of the (snapped) differences in
        radians. Example: ``angle_orig = 10``, ``angle_rot = 100``, ``angle_flip = -10``,
        ``rotation = 90`` give zeros; ``angle_flip = 8`` gives a flip difference of 18 degrees =
        0.314 rad, loss ``0.314 - 0.05 = 0.264``.
    """
    d_rot = angle_rot - angle_orig - rotation
    d_flip = angle_flip + angle_orig
    if snap:
        d_rot = snap_angle_difference(d_rot)
        d_flip = snap_angle_difference(d_flip)
    to_rad = math.pi / 180.0
    zero = torch.zeros_like(d_rot)
    loss_rot = smooth_l1_loss(d_rot * to_rad, zero, beta)
    loss_flip = smooth_l1_loss(d_flip * to_rad, torch.zeros_like(d_flip), beta)
    return loss_rot, loss_flip
