"""Samplers: infinite seeded training streams and exactly-once inference shards."""

from .distributed_sampler import (
    InferenceSampler,
    RepeatFactorTrainingSampler,
    TrainingSampler,
    repeat_factors_from_category_frequency,
)

__all__ = [
    "InferenceSampler",
    "RepeatFactorTrainingSampler",
    "TrainingSampler",
    "repeat_factors_from_category_frequency",
]
