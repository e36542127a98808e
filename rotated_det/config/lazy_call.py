"""LazyCall: record a call (target + arguments) in a config instead of making it."""

import dataclasses
from collections import abc
from typing import Any

from omegaconf import DictConfig

from .instantiate import target_to_str

__all__ = ["LazyCall"]


class LazyCall:
    """
    Wrap a callable so that calling it returns a config node describing the call::

        from rotated_det.config import LazyCall as L
        layer_cfg = L(torch.nn.Conv2d)(in_channels=3, out_channels=8, kernel_size=3)
        layer_cfg.out_channels = 16          # edit before building
        layer = instantiate(layer_cfg)       # torch.nn.Conv2d(3, 16, 3)

    The node is an omegaconf ``DictConfig`` with key ``_target_`` plus the keyword arguments;
    arbitrary Python objects are allowed as values. ``target`` may also be a dotted path
    string (``L("torch.nn.Conv2d")``), which is located when the node is instantiated.
    """

    def __init__(self, target: Any):
        if not (callable(target) or isinstance(target, str)):
            raise TypeError(
                f"LazyCall expects a callable or a dotted path string as target, got {target!r}."
            )
        if isinstance(target, abc.Mapping):
            raise TypeError("LazyCall target cannot be a mapping.")
        self._target = target

    def __call__(self, *args: Any, **kwargs: Any) -> DictConfig:
        if args:
            raise TypeError(
                f"LazyCall({self._target!r}) takes keyword arguments only (got {len(args)} "
                "positional); name every argument so it can be overridden by key."
            )
        target = self._target
        if dataclasses.is_dataclass(target):
            # omegaconf would turn a dataclass type into a structured config node; keep the
            # call lazy by storing the dataclass by its import path.
            target = target_to_str(target)
        content = {"_target_": target}
        content.update(kwargs)
        return DictConfig(content=content, flags={"allow_objects": True})

    def __repr__(self) -> str:
        return f"LazyCall({self._target!r})"
