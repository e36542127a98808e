"""KFIoU loss (Yang et al., "The KFIoU Loss for Rotated Object Detection", ICLR 2023).

Each box ``(cx, cy, w, h, angle)`` is the Gaussian ``N(mu, Sigma)`` of ``gaussian_loss``:
``mu = (cx, cy)``, ``Sigma = R diag(w**2 / 4, h**2 / 4) R^T``. The paper measures a Gaussian by
its "volume" ``V(Sigma) = 2**n sqrt(det Sigma)`` (n = 2), which is exactly the box area ``w h``,
and stands in for the intersection with the covariance of the product of the two Gaussians
(the Kalman-filter update of one by the other),
``Sigma_o = Sigma_p - Sigma_p (Sigma_p + Sigma_t)^-1 Sigma_p = Sigma_p (Sigma_p + Sigma_t)^-1
Sigma_t``, whose determinant is ``det Sigma_p det Sigma_t / det(Sigma_p + Sigma_t)``. Then

    KFIoU = V_o / (V_p + V_t - V_o),
    V_o = 4 sqrt(det Sigma_p det Sigma_t / det(Sigma_p + Sigma_t)).

``Sigma_o`` does not depend on the centres: the overlap term only shapes the box, and a separate
scale-free centre term pulls the centres together. The loss is

    loss = smooth_l1(centre offset, beta).sum() + f(KFIoU),
    f = 1 - KFIoU ("none"), -ln(KFIoU + eps) ("ln") or exp(1 - KFIoU) - 1 ("exp").

Worked example, identical boxes: ``Sigma_p = Sigma_t = Sigma``, ``det(2 Sigma) = 4 det Sigma``, so
``V_o = 4 sqrt(det Sigma / 4) = V / 2`` with ``V = w h``, and
``KFIoU = (V / 2) / (2 V - V / 2) = 1 / 3`` whatever the box: the largest value KFIoU takes. The
losses of identical boxes are therefore ``2 / 3`` ("none"), ``ln 3`` ("ln") and
``exp(2 / 3) - 1 = 0.9477`` ("exp"), not 0; only their gradient vanishes there.

Second example (in the tests): target 2 x 2 and prediction 4 x 2, same centre, angle 0:
``Sigma_t = diag(1, 1)``, ``Sigma_p = diag(4, 1)``, ``det(Sigma_p + Sigma_t) = 5 * 2 = 10``,
``V_o = 4 sqrt(4 * 1 / 10) = 2.5298``, ``KFIoU = 2.5298 / (8 + 4 - 2.5298) = 0.26713``.

The centre offset is, as in the paper (and MMRotate), the difference of the coder's centre
deltas (``dx, dy``: offsets divided by the anchor's size) when ``center_offsets`` is given; by
default it is the prediction's centre relative to the target's, along the target's w- and
h-axes, divided by the target's w and h (a scale-free offset that needs no anchor).
"""

import torch

from .gaussian_loss import rbox_to_gaussian
from .smooth_l1_loss import smooth_l1_loss

__all__ = ["KFIOU_FUNS", "kfiou", "kfiou_loss"]

KFIOU_FUNS = ("none", "ln", "exp")


def _det2(m: torch.Tensor) -> torch.Tensor:
    """Determinant of ``[N, 2, 2]`` matrices, ``[N]``."""
    return m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]


def kfiou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KFIoU of aligned pairs of rotated boxes (see the module docstring), in (0, 1/3].

    Args:
        pred, target: ``[N, 5]`` boxes ``(cx, cy, w, h, angle)``: pixels, degrees.

    Returns: ``[N]``; independent of the centres.
    """
    _, sig_p = rbox_to_gaussian(pred)
    _, sig_t = rbox_to_gaussian(target)
    det_p = _det2(sig_p).clamp(min=0)
    det_t = _det2(sig_t).clamp(min=0)
    det_sum = _det2(sig_p + sig_t)  # > 0: sum of two positive definite matrices
    vol_p = 4 * det_p.sqrt()
    vol_t = 4 * det_t.sqrt()
    vol_o = 4 * (det_p * det_t / det_sum).sqrt()
    return vol_o / (vol_p + vol_t - vol_o)


def kfiou_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    fun: str = "none",
    beta: float = 1.0 / 9.0,
    eps: float = 1e-6,
    center_offsets: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-box KFIoU loss: scale-free centre term plus ``f(KFIoU)``.

    Args:
        pred: ``[N, 5]`` predicted boxes ``(cx, cy, w, h, angle)``: pixels, degrees.
        target: ``[N, 5]`` target boxes.
        fun: "none" (``1 - KFIoU``), "ln" (``-ln(KFIoU + eps)``) or "exp"
            (``exp(1 - KFIoU) - 1``).
        beta: smooth-L1 beta of the centre term (MMRotate's 1/9).
        eps: inside the log of "ln".
        center_offsets: optional ``[N, 2]`` centre error to use in the centre term, e.g. the
            predicted minus the target ``(dx, dy)`` deltas of a box coder (the paper's form);
            default: offset along the target's axes divided by its w and h.

    Returns:
        ``[N]`` losses; for identical boxes ``2/3``, ``ln 3`` or ``exp(2/3) - 1`` (the minimum).

    Raises:
        ValueError: on an unknown ``fun``.
    """
    if fun not in KFIOU_FUNS:
        raise ValueError(f"fun must be one of {KFIOU_FUNS}, got {fun!r}")
    if center_offsets is None:
        rad = torch.deg2rad(target[:, 4])
        cos, sin = torch.cos(rad), torch.sin(rad)
        dx = pred[:, 0] - target[:, 0]
        dy = pred[:, 1] - target[:, 1]
        # The target's w-axis is (cos, -sin) and its h-axis (sin, cos) in image coordinates.
        along_w = (dx * cos - dy * sin) / target[:, 2].clamp(min=1e-3)
        along_h = (dx * sin + dy * cos) / target[:, 3].clamp(min=1e-3)
        center_offsets = torch.stack([along_w, along_h], 1)
    center = smooth_l1_loss(center_offsets, torch.zeros_like(center_offsets), beta).sum(1)
    k = kfiou(pred, target)
    if fun == "none":
        overlap = 1.0 - k
    elif fun == "ln":
        overlap = -torch.log(k + eps)
    else:
        overlap = torch.exp(1.0 - k) - 1.0
    return center + overlap
