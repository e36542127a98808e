"""Reading a dotted key (``"train.output_dir"``) from a config, a mapping or an object."""

from collections.abc import Mapping
from typing import Any

from omegaconf import OmegaConf

__all__ = ["select"]

_ABSENT = object()


def select(node: Any, key: str, default: Any = None, *, throw_on_missing: bool = True) -> Any:
    """``node.<key>`` for a dotted ``key`` such as ``"train.output_dir"``, or ``default`` where a
    part of the path is absent or None (a value that is None itself is returned as None).

    omegaconf configs are read with ``OmegaConf.select`` (interpolations resolved, list indices
    as in ``"a.0.b"``); a mandatory value still missing (``???``) raises
    ``omegaconf.MissingMandatoryValue`` naming the key, unless ``throw_on_missing=False`` (then
    ``default``). Plain mappings are walked by key and other objects by attribute, so one call
    reads a lazy config node or the model instantiated from it.
    """
    parts = key.split(".")
    for i, part in enumerate(parts):
        if OmegaConf.is_config(node):
            rest = ".".join(parts[i:])
            return OmegaConf.select(node, rest, default=default, throw_on_missing=throw_on_missing)
        if node is None:
            return default
        if isinstance(node, Mapping):
            node = node.get(part, _ABSENT)
        else:
            node = getattr(node, part, _ABSENT)
        if node is _ABSENT:
            return default
    return node
