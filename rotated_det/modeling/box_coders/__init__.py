"""Box coders that are not anchor deltas (those live in ``modeling.box_regression``)."""

from .distance_angle import DistanceAnglePointCoder

__all__ = ["DistanceAnglePointCoder"]
