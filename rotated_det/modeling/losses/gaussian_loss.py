"""Gaussian losses for rotated boxes: KLD (Yang et al. 2021) and GWD (Yang et al. 2021).

A rotated box ``(cx, cy, w, h, angle_deg)`` is modelled as a 2-D Gaussian with mean ``(cx, cy)``
and covariance ``R diag(w**2 / 4, h**2 / 4) R^T`` (R rotates by the box angle). Unlike losses on
``(x, y, w, h, angle)`` deltas, the distance between two Gaussians has no discontinuity at the
angle wrap or where w and h swap roles.
"""

import torch

__all__ = ["rbox_to_gaussian", "kld_loss", "gwd_loss"]


def rbox_to_gaussian(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``boxes``: ``[N, 5]``. Returns mean ``[N, 2]`` and covariance ``[N, 2, 2]`` (pixels**2)."""
    w = boxes[:, 2].clamp(min=1e-3)
    h = boxes[:, 3].clamp(min=1e-3)
    rad = torch.deg2rad(boxes[:, 4])
    cos, sin = torch.cos(rad), torch.sin(rad)
    # Columns of R: the w-axis (cos, -sin) and the h-axis (sin, cos) in image coordinates.
    rot = torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1)
    diag = torch.diag_embed(torch.stack([w * w / 4, h * h / 4], 1))
    return boxes[:, :2], rot @ diag @ rot.transpose(1, 2)


def _post(dist: torch.Tensor, fun: str, tau: float) -> torch.Tensor:
    if fun == "log1p":
        dist = torch.log1p(dist)
    elif fun == "sqrt":
        dist = torch.sqrt(dist.clamp(min=1e-7))
    elif fun != "none":
        raise ValueError(f"fun must be 'log1p', 'sqrt' or 'none', got {fun!r}")
    if tau >= 1.0:
        return 1 - 1 / (tau + dist)
    return dist


def kld_loss(
    pred: torch.Tensor, target: torch.Tensor, fun: str = "log1p", tau: float = 1.0
) -> torch.Tensor:
    """KL divergence KL(N_pred || N_target), mapped to ``1 - 1 / (tau + f(KLD))``.

    Args:
        pred, target: ``[N, 5]`` rotated boxes (pixels, degrees).
        fun: "log1p", "sqrt" or "none", applied to the divergence.
        tau: with ``tau >= 1`` the loss is bounded to [0, 1); ``tau < 1`` returns ``f(KLD)``.

    Returns: ``[N]`` per-box loss.
    """
    mu_p, sig_p = rbox_to_gaussian(pred)
    mu_t, sig_t = rbox_to_gaussian(target)
    sig_t_inv = torch.linalg.inv(sig_t)
    diff = (mu_p - mu_t)[:, :, None]
    maha = (diff.transpose(1, 2) @ sig_t_inv @ diff)[:, 0, 0]
    trace = (sig_t_inv @ sig_p).diagonal(dim1=1, dim2=2).sum(1)
    log_det = torch.logdet(sig_t) - torch.logdet(sig_p)
    kld = 0.5 * (trace + maha - 2 + log_det)
    return _post(kld.clamp(min=0), fun, tau)


def gwd_loss(
    pred: torch.Tensor, target: torch.Tensor, fun: str = "log1p", tau: float = 1.0
) -> torch.Tensor:
    """Squared 2-Wasserstein distance between the Gaussians, mapped as in ``kld_loss``.

    ``W2 = |mu_p - mu_t|**2 + tr(S_p) + tr(S_t) - 2 tr((S_p^1/2 S_t S_p^1/2)^1/2)``; for 2x2
    matrices the last trace is ``sqrt(tr(S_p S_t) + 2 sqrt(det S_p det S_t))``. The distance is
    divided by ``w_t * h_t / 4`` (the target's squared geometric-mean half-size) so that the loss
    does not grow with object size.

    Returns: ``[N]`` per-box loss.
    """
    mu_p, sig_p = rbox_to_gaussian(pred)
    mu_t, sig_t = rbox_to_gaussian(target)
    center = ((mu_p - mu_t) ** 2).sum(1)
    tr_p = sig_p.diagonal(dim1=1, dim2=2).sum(1)
    tr_t = sig_t.diagonal(dim1=1, dim2=2).sum(1)
    tr_pt = (sig_p @ sig_t).diagonal(dim1=1, dim2=2).sum(1)
    det_prod = (torch.linalg.det(sig_p) * torch.linalg.det(sig_t)).clamp(min=0)
    cross = torch.sqrt((tr_pt + 2 * torch.sqrt(det_prod)).clamp(min=1e-7))
    w2 = (center + tr_p + tr_t - 2 * cross).clamp(min=0)
    scale = (target[:, 2] * target[:, 3]).clamp(min=1e-6).sqrt() / 2
    return _post(w2 / scale.pow(2), fun, tau)
