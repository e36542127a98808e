"""Phase-shifting coder (PSC): the angle as the phase of a periodic signal sampled at evenly
shifted points, continuous across the range ends (Yu & Da, "Phase-Shifting Coder: Predicting
Accurate Orientation in Oriented Object Detection", CVPR 2023)."""

import math

import torch

from .base import AngleCoder

__all__ = ["PSCCoder"]


class PSCCoder(AngleCoder):
    """
    An angle ``a`` (degrees) becomes the ``N = num_step`` values
    ``cos(f * a + 2 * pi * n / N)``, ``n = 0 .. N-1`` (``f * a`` in radians), at the frequency
    ``f = 360 / period`` that maps one period of the version onto one turn of the phase: ``2 a``
    in "le90" and "le135" (period 180 degrees), ``4 a`` in "oc" (period 90). Orientations one
    period apart get the same code, so the code is continuous across the ends of the range
    (-90 + e and 90 - e in "le90" have nearly equal codes), unlike a regressed angle.

    ``dual_freq`` (PSCD in the paper) appends the ``N`` values at twice the frequency, ``2 f``
    (``4 a`` in "le90"). That half of the code repeats every half period, i.e. every 90 degrees
    in "le90": a square box, whose angles ``a`` and ``a + 90`` are the same box, has ONE
    dual-frequency code. A head trained on square objects labelled with either angle then learns
    a consistent high-frequency half (and a first half near 0); decoding takes the angle modulo
    90 degrees from the high frequency and uses the low frequency only to choose between ``a``
    and ``a + 90`` (either is right for a square). In "oc" the base frequency already repeats
    every 90 degrees; ``dual_freq`` is allowed there but adds nothing for squares.

    Decoding (the phase-shift formula): for one frequency,
    ``C = sum_n p[n] cos(2 pi n / N)`` and ``S = sum_n p[n] sin(2 pi n / N)``; a clean code has
    ``C = (N / 2) cos(phase)``, ``S = -(N / 2) sin(phase)``, so ``phase = atan2(-S, C)``. With two
    frequencies the angle is the high-frequency one, shifted by half a period when it points
    away (obtuse phase difference) from the low-frequency one. A prediction whose squared
    amplitude ``C**2 + S**2`` at the highest frequency is below ``thr_mod`` (``(N/2)**2 = 2.25``
    for a clean 3-step code) has no usable orientation, e.g. a round storage tank: its angle is
    set to 0 (wrapped into the range), as in the paper's code.

    Loss: L1 between the prediction and the code, summed over the ``encode_size`` channels.

    Args:
        angle_version: "le90", "le135" or "oc".
        num_step: phase steps ``N`` per frequency, >= 3 (two steps cannot tell ``a`` from ``-a``).
        dual_freq: add the double frequency (``encode_size = 2 * num_step``).
        thr_mod: modulation threshold (squared amplitude, see above), >= 0; 0 disables it.

    Defaults and ``default_loss_weight`` 0.2 follow MMRotate's Rotated RetinaNet PSC config on
    DOTA (``rotated-retinanet-rbox-le90_r50_fpn_psc-dual_amp-1x_dota``: dual, 3 steps,
    ``L1Loss`` weight 0.2); its Rotated FCOS PSC config uses weight 0.1.
    """

    default_loss_weight = 0.2

    def __init__(
        self,
        angle_version: str = "le90",
        num_step: int = 3,
        dual_freq: bool = True,
        thr_mod: float = 0.47,
    ) -> None:
        super().__init__(angle_version)
        if isinstance(num_step, bool) or not isinstance(num_step, int) or num_step < 3:
            raise ValueError(f"num_step must be an integer >= 3, got {num_step!r}")
        if not thr_mod >= 0:
            raise ValueError(f"thr_mod must be >= 0 (a squared amplitude), got {thr_mod}")
        self.num_step = num_step
        self.dual_freq = bool(dual_freq)
        self.thr_mod = float(thr_mod)
        base = 360.0 / self.angle_period
        self.frequencies: tuple[float, ...] = (base, 2.0 * base) if self.dual_freq else (base,)
        self.encode_size = num_step * len(self.frequencies)
        shifts = torch.arange(num_step, dtype=torch.float64) * (2.0 * math.pi / num_step)
        k = len(self.frequencies)
        # Encoding: channel c is cos(freq[c] * angle_radians + shift[c]).
        freq = torch.tensor(self.frequencies, dtype=torch.float64).repeat_interleave(num_step)
        self._tables["freq"] = freq * (math.pi / 180.0)  # per degree
        self._tables["shift"] = shifts.repeat(k)
        # Demodulation: pred @ demod = [C_0, S_0, C_1, S_1] (block diagonal, one block per freq).
        demod = torch.zeros(self.encode_size, 2 * k, dtype=torch.float64)
        for i in range(k):
            rows = slice(i * num_step, (i + 1) * num_step)
            demod[rows, 2 * i] = torch.cos(shifts)
            demod[rows, 2 * i + 1] = torch.sin(shifts)
        self._tables["demod"] = demod

    def encode(self, angles: torch.Tensor) -> torch.Tensor:
        """[N] degrees -> [N, encode_size] code in [-1, 1] (floating dtype of angles)."""
        a = self._prepare_angles(angles)
        return torch.cos(
            a[:, None] * self._table("freq", a)[None, :] + self._table("shift", a)[None, :]
        )

    def decode(self, pred: torch.Tensor) -> torch.Tensor:
        """[N, encode_size] predicted code -> [N] degrees in the version's range."""
        self._check_pred(pred)
        if not pred.is_floating_point():
            pred = pred.to(torch.float32)
        cs = pred @ self._table("demod", pred)  # [N, 2k]: C_0, S_0, (C_1, S_1)
        to_deg = 180.0 / math.pi
        angle = torch.atan2(-cs[:, 1], cs[:, 0]) * (to_deg / self.frequencies[0])
        if self.dual_freq:
            fine = torch.atan2(-cs[:, 3], cs[:, 2]) * (to_deg / self.frequencies[1])
            # fine is known modulo half a period: take the candidate nearer to the coarse angle.
            far = torch.cos((angle - fine) * (self.frequencies[0] / to_deg)) < 0
            angle = torch.where(far, fine + 0.5 * self.angle_period, fine)
        modulation = cs[:, -2] ** 2 + cs[:, -1] ** 2
        angle = torch.where(modulation < self.thr_mod, torch.zeros_like(angle), angle)
        return self._prepare_angles(angle)

    def loss(self, pred: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """[N, encode_size] predicted code, [N] degrees -> [N] L1 summed over the channels."""
        self._check_pred(pred)
        return (pred - self.encode(angles).to(pred.dtype)).abs().sum(dim=1)

    def _repr_args(self) -> dict[str, object]:
        return {
            "angle_version": self.angle_version,
            "num_step": self.num_step,
            "dual_freq": self.dual_freq,
            "thr_mod": self.thr_mod,
        }
