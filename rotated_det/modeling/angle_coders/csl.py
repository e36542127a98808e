"""Circular smooth label (CSL): the angle as a classification over angle bins whose label is a
window around the true bin, wrapped around the circle of orientations (Yang & Yan, "Arbitrary-
Oriented Object Detection with Circular Smooth Label", ECCV 2020)."""

import torch

from ..losses import sigmoid_focal_loss
from .base import AngleCoder

__all__ = ["CSLCoder", "CSL_WINDOWS"]

CSL_WINDOWS = ("gaussian", "triangle", "rect", "pulse")
# Label values below this are 0: the Gaussian's tail beyond ~5.3 radii, whose float32 values
# would be denormal numbers (they made decoding 7x slower on x86 CPUs).
_LABEL_FLOOR = 1e-6


def _window(name: str, distance: torch.Tensor, radius: float) -> torch.Tensor:
    """Label value at ``distance`` bins (>= 0, float64) from the true bin."""
    if name == "gaussian":
        return torch.exp(-(distance**2) / (2.0 * radius**2))
    if name == "triangle":
        return (1.0 - distance / radius).clamp(min=0.0)
    if name == "rect":
        return (distance <= radius).to(distance.dtype)
    return (distance == 0).to(distance.dtype)  # pulse: one-hot


class CSLCoder(AngleCoder):
    """
    The range ``[low, low + period)`` (``angle_coders.base``) is cut into
    ``encode_size = period / omega`` bins; bin ``k`` covers ``[low + k * omega,
    low + (k + 1) * omega)``. The label of an angle in bin ``k`` gives bin ``i`` the value
    ``window(d)`` where ``d = min(|i - k|, encode_size - |i - k|)`` is the CIRCULAR distance in
    bins: the two ends of the range are one orientation, so in "le90" the label of -89.5 degrees
    (bin 0) also lights bins 179, 178, ... (89.5, 88.5, ... degrees).

    Windows (``radius`` in bins, i.e. ``radius * omega`` degrees):

    - "gaussian": ``exp(-d**2 / (2 * radius**2))`` (``radius`` is the standard deviation), 0
      where that is below 1e-6 (``d > 5.26 * radius``);
    - "triangle": ``max(0, 1 - d / radius)``;
    - "rect": 1 where ``d <= radius``;
    - "pulse": 1 at ``d == 0`` only (a one-hot label, no smoothing; ``radius`` unused).

    Example ("le90", omega 30, 6 bins centred at -75, -45, -15, 15, 45, 75 degrees, "triangle"
    radius 2): the angle -80 is in bin 0; its label is ``[1, 0.5, 0, 0, 0, 0.5]``.

    Decoding: the head's logits go through a sigmoid, are correlated circularly with the window
    (``scores[j] = sum_i p[i] * window(d(i, j))``, a matched filter: the centre of the window that
    best fits the predicted probabilities) and the best bin's centre is returned. On a clean
    label this is the true bin, so the round-trip error is at most ``omega / 2``. Unlike a plain
    argmax it decodes the flat top of a "rect" label to its centre rather than to its first bin,
    and a noisy peak to where most probability mass lies. ("pulse" uses the plain argmax.)

    Loss: sigmoid focal loss (``alpha``, ``gamma``) of the logits against the smooth label,
    summed over the bins, as in CSL and MMRotate's ``SmoothFocalLoss``; ``gamma=0, alpha=-1``
    gives plain binary cross-entropy.

    Args:
        angle_version: "le90", "le135" or "oc" ("oc" has a 90-degree range: omega must divide 90).
        omega: bin width in degrees; must divide the range (180, or 90 for "oc").
        window: one of ``CSL_WINDOWS``.
        radius: window radius in bins, > 0 and < ``encode_size / 2`` (a wider window would wrap
            onto itself).
        alpha, gamma: focal loss parameters.

    Defaults: MMRotate's ``CSLCoder`` (omega 1, gaussian, radius 6). MMRotate's Rotated
    RetinaNet CSL config on DOTA (``rotated_retinanet-rbox-le90_r50_fpn_csl-gaussian_amp-1x``)
    uses omega 4, radius 3 and loss weight 0.8 (``default_loss_weight``); its Rotated FCOS CSL
    config omega 1, radius 1, weight 0.2. (MMRotate 1.x writes its Gaussian as
    ``exp(-d**2) / (2 r**2)``; this class uses the paper's ``exp(-d**2 / (2 r**2))``.)
    """

    default_loss_weight = 0.8

    def __init__(
        self,
        angle_version: str = "le90",
        omega: float = 1.0,
        window: str = "gaussian",
        radius: float = 6.0,
        alpha: float = 0.25,
        gamma: float = 2.0,
    ) -> None:
        super().__init__(angle_version)
        if window not in CSL_WINDOWS:
            raise ValueError(f"window must be one of {CSL_WINDOWS}, got {window!r}")
        bins = self.angle_period / omega if omega > 0 else float("nan")
        if not (omega > 0 and abs(bins - round(bins)) < 1e-6 * bins):
            raise ValueError(
                f"omega (bin width in degrees) must divide the {self.angle_period:g}-degree "
                f"range of angle_version {angle_version!r}, got {omega}"
            )
        self.encode_size = int(round(bins))
        if window != "pulse" and not 0 < radius < self.encode_size / 2:
            raise ValueError(
                f"radius (in bins) must be in (0, {self.encode_size / 2:g}) for "
                f"{self.encode_size} bins of {omega:g} degrees, got {radius}"
            )
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.omega = float(omega)
        self.window = window
        self.radius = float(radius)
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        # labels[k] is the label of an angle in bin k: [encode_size, encode_size], symmetric.
        n = self.encode_size
        idx = torch.arange(n, dtype=torch.float64)
        gap = (idx[None, :] - idx[:, None]).abs()
        labels = _window(window, torch.minimum(gap, n - gap), self.radius)
        self._tables["labels"] = torch.where(labels < _LABEL_FLOOR, 0.0, labels)

    def labels(self, like: torch.Tensor) -> torch.Tensor:
        """The [encode_size, encode_size] label table (row k: the label of an angle in bin k) on
        the device and in the floating dtype of ``like``."""
        return self._table("labels", like)

    def bin_index(self, angles: torch.Tensor) -> torch.Tensor:
        """[N] degrees -> [N] int64 index of the bin holding each angle (wrapped into range)."""
        a = self._prepare_angles(angles)
        k = torch.floor((a - self.angle_low) / self.omega)
        return k.clamp_(0, self.encode_size - 1).long()  # clamp: rounding at the top end

    def encode(self, angles: torch.Tensor) -> torch.Tensor:
        """[N] degrees -> [N, encode_size] smooth labels in [0, 1] (floating dtype of angles)."""
        k = self.bin_index(angles)
        return self.labels(angles).index_select(0, k)

    def decode(self, pred: torch.Tensor) -> torch.Tensor:
        """[N, encode_size] logits -> [N] degrees: the centre of the best bin (class docstring)."""
        self._check_pred(pred)
        scores = pred
        if self.window != "pulse":
            scores = torch.sigmoid(pred) @ self.labels(pred)  # symmetric: correlation
        k = scores.argmax(dim=1)
        dtype = pred.dtype if pred.is_floating_point() else torch.float32
        return self.angle_low + (k.to(dtype) + 0.5) * self.omega

    def loss(self, pred: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """[N, encode_size] logits, [N] degrees -> [N] focal loss summed over the bins."""
        self._check_pred(pred)
        target = self.encode(angles).to(pred.dtype)
        return sigmoid_focal_loss(pred, target, alpha=self.alpha, gamma=self.gamma).sum(dim=1)

    def _repr_args(self) -> dict[str, object]:
        return {
            "angle_version": self.angle_version,
            "omega": self.omega,
            "window": self.window,
            "radius": self.radius,
        }
