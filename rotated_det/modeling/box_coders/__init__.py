"""Box coders that are not anchor deltas (those live in ``modeling.box_regression``)."""

from .distance_angle import DistanceAnglePointCoder
from .gliding_vertex import GlidingVertexCoder, gliding_vertex_targets

__all__ = ["DistanceAnglePointCoder", "GlidingVertexCoder", "gliding_vertex_targets"]
