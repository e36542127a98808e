"""The interface every angle coder follows, and the angle-version helpers the coders share.

An angle coder turns box angles into the channels a dense or RoI head predicts for the angle
(``encode``), turns those predictions back into angles (``decode``) and scores a prediction
against the true angles (``loss``). All angles are in DEGREES, counter-clockwise positive on
screen (the project's box convention, ``rotated_det.structures``), inside the range of the coder's
angle version:

======== ============== =========================================================
version  range          the coded angle repeats after (``angle_period``)
======== ============== =========================================================
le90     [-90, 90)      180 degrees: (w, h, a) and (w, h, a + 180) are one box
le135    [-45, 135)     180 degrees
oc       [-90, 0)       90 degrees: in "oc" a box turned by 90 degrees is written with w and
                        h exchanged, so the angle alone repeats every 90 degrees
======== ============== =========================================================

The versions themselves (which side is ``w``, the exact range ends) are defined once, by
``rotated_det.structures.normalize_rbox_angles``; ``wrap_angles`` applies the same rule to bare
angles (tested to agree with it). Each range is
half-open and circular: its two ends are the same orientation, which is why a plain regression of
the angle is discontinuous there (the "boundary problem") and why CSL and PSC code the angle on a
circle instead.
"""

from abc import ABC, abstractmethod

import torch

from rotated_det.structures import ANGLE_VERSIONS

__all__ = ["AngleCoder", "angle_range", "check_angle_version", "wrap_angles"]

# (lowest angle, period) in degrees of each angle version: the range is [low, low + period).
_RANGES = {"le90": (-90.0, 180.0), "le135": (-45.0, 180.0), "oc": (-90.0, 90.0)}
if set(_RANGES) != set(ANGLE_VERSIONS):  # pragma: no cover - a new version needs a range here
    raise ImportError(f"angle_coders knows {sorted(_RANGES)}, structures has {ANGLE_VERSIONS}")


def check_angle_version(angle_version: str) -> str:
    """``angle_version`` itself when it is one of ``ANGLE_VERSIONS``; ValueError otherwise."""
    if angle_version not in ANGLE_VERSIONS:
        raise ValueError(f"angle_version must be one of {ANGLE_VERSIONS}, got {angle_version!r}")
    return angle_version


def angle_range(angle_version: str) -> tuple[float, float]:
    """``(low, period)`` in degrees: the version's angles lie in ``[low, low + period)``."""
    return _RANGES[check_angle_version(angle_version)]


def wrap_angles(angles: torch.Tensor, angle_version: str) -> torch.Tensor:
    """
    Angles mapped into the version's range, keeping each orientation modulo the version's period.

    This is the angle ``normalize_rbox_angles(boxes, angle_version)`` gives a box whose ``w`` is
    the longer side (the tests check that the two agree for every version), computed directly
    on the angles: about 10x faster than building and normalising ``[N, 5]`` boxes.

    Args:
        angles: [...] degrees, floating point, any values.
        angle_version: "le90", "le135" or "oc".
    Returns:
        [...] degrees in ``[low, low + period)`` (``angle_range``), same dtype and device.
    """
    low, period = angle_range(angle_version)
    out = torch.remainder(angles - low, period) + low
    # remainder can round up to exactly ``period`` for tiny negative inputs
    return torch.where(out >= low + period, out - period, out)


class AngleCoder(ABC):
    """
    Codes box angles as the ``encode_size`` channels a head predicts for them.

    Attributes:
        angle_version: "le90", "le135" or "oc" (module docstring).
        encode_size: channels the head predicts per box for the angle.
        default_loss_weight: the weight MMRotate's configs give this coder's loss (each subclass
            names the config); the head multiplies ``loss(...).sum() / num_positives`` by it.
        angle_low, angle_period: the version's range ``[angle_low, angle_low + angle_period)``.
    """

    encode_size: int
    default_loss_weight: float

    def __init__(self, angle_version: str = "le90") -> None:
        self.angle_version = check_angle_version(angle_version)
        self.angle_low, self.angle_period = angle_range(angle_version)
        # Constant tables of a coder (float64, CPU) and their copies per device and dtype.
        self._tables: dict[str, torch.Tensor] = {}
        self._copies: dict[tuple[str, torch.device, torch.dtype], torch.Tensor] = {}

    def _table(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """The constant table ``name`` on the device and in the floating dtype of ``like``
        (copied once per device and dtype)."""
        dtype = like.dtype if like.is_floating_point() else torch.float32
        key = (name, like.device, dtype)
        table = self._copies.get(key)
        if table is None:
            table = self._copies[key] = self._tables[name].to(device=like.device, dtype=dtype)
        return table

    @abstractmethod
    def encode(self, angles: torch.Tensor) -> torch.Tensor:
        """
        Args:
            angles: [N] degrees in the version's range (others are wrapped into it first).
        Returns:
            [N, encode_size] the target of the head's angle channels.
        """

    @abstractmethod
    def decode(self, pred: torch.Tensor) -> torch.Tensor:
        """
        Args:
            pred: [N, encode_size] the head's raw angle output (what ``loss`` takes).
        Returns:
            [N] degrees in the version's range.
        """

    @abstractmethod
    def loss(self, pred: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """
        Args:
            pred: [N, encode_size] the head's raw angle output.
            angles: [N] true angles in degrees.
        Returns:
            [N] the angle loss of each sample, summed over its ``encode_size`` channels
            (unweighted, unreduced: the head weights and averages it).
        """

    def _check_pred(self, pred: torch.Tensor) -> None:
        if pred.dim() != 2 or pred.shape[1] != self.encode_size:
            raise ValueError(
                f"{type(self).__name__}: pred must have shape [N, {self.encode_size}] "
                f"(encode_size), got {tuple(pred.shape)}"
            )

    def _prepare_angles(self, angles: torch.Tensor) -> torch.Tensor:
        """[N] floating-point angles wrapped into the version's range; ValueError otherwise."""
        if angles.dim() != 1:
            raise ValueError(
                f"{type(self).__name__}: angles must have shape [N], got {tuple(angles.shape)}"
            )
        if not angles.is_floating_point():
            angles = angles.to(torch.float32)
        return wrap_angles(angles, self.angle_version)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._repr_args().items())
        return f"{type(self).__name__}({args})"

    def _repr_args(self) -> dict[str, object]:
        return {"angle_version": self.angle_version}
