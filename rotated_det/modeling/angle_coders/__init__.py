"""Angle coders: how a head predicts a box angle (``AngleCoder``: encode, decode, loss).

- ``RegressionAngleCoder``: the angle in radians, one channel (the baseline).
- ``CSLCoder``: circular smooth label over angle bins (Yang & Yan, ECCV 2020).
- ``PSCCoder``: phase-shifting code, optionally dual-frequency (Yu & Da, CVPR 2023).
"""

from .base import AngleCoder, angle_range, check_angle_version, wrap_angles
from .csl import CSL_WINDOWS, CSLCoder
from .psc import PSCCoder
from .regression import RegressionAngleCoder

__all__ = [
    "CSL_WINDOWS",
    "AngleCoder",
    "CSLCoder",
    "PSCCoder",
    "RegressionAngleCoder",
    "angle_range",
    "check_angle_version",
    "wrap_angles",
]
