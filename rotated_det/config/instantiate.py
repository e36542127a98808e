"""Turn a lazy config (a tree of dicts with ``_target_`` keys) into objects."""

import dataclasses
import importlib
import inspect
import logging
from collections import abc
from typing import Any

from omegaconf import DictConfig, ListConfig

__all__ = ["instantiate", "locate", "target_to_str"]

_TARGET = "_target_"


def locate(name: str) -> Any:
    """
    Find the object named by a dotted path such as ``"torch.optim.SGD"`` or
    ``"rotated_det.solver.WarmupParamScheduler"``.

    The longest importable module prefix is imported and the rest is resolved with getattr,
    so nested attributes (``"module.Class.method"``) work too.

    Raises:
        ImportError: naming the path and the part that could not be resolved.
    """
    if not isinstance(name, str) or not name:
        raise ImportError(f"Cannot locate {name!r}: expected a dotted path string.")
    parts = name.split(".")
    module = None
    n = len(parts)
    while n > 0:
        try:
            module = importlib.import_module(".".join(parts[:n]))
            break
        except ModuleNotFoundError as e:
            # Only swallow "this prefix is not a module"; a real import error inside an
            # existing module must surface.
            missing = e.name or ""
            if not ".".join(parts[:n]).startswith(missing):
                raise
            n -= 1
    if module is None:
        import builtins

        module, n = builtins, 0
    obj = module
    for i in range(n, len(parts)):
        try:
            obj = getattr(obj, parts[i])
        except AttributeError as e:
            raise ImportError(
                f"Cannot locate {name!r}: {'.'.join(parts[:i]) or 'builtins'!r} has no "
                f"attribute {parts[i]!r}."
            ) from e
    return obj


def target_to_str(target: Any) -> str:
    """Return the dotted import path of a class or function (inverse of :func:`locate`)."""
    module: str | None = getattr(target, "__module__", None)
    qualname: str | None = getattr(target, "__qualname__", None) or getattr(
        target, "__name__", None
    )
    if module is None or qualname is None:
        raise ValueError(f"Cannot turn {target!r} into an import path.")
    # Prefer the shortest public module path that still resolves to the same object,
    # e.g. "torch.optim.SGD" rather than "torch.optim.sgd.SGD".
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        candidate = ".".join(parts[:i]) + "." + qualname
        try:
            if locate(candidate) == target:
                return candidate
        except ImportError:
            continue
    return f"{module}.{qualname}"


def _is_lazy_node(x: Any) -> bool:
    return isinstance(x, abc.Mapping) and _TARGET in x


def instantiate(cfg: Any) -> Any:
    """
    Recursively build objects from a config.

    Every mapping with a ``_target_`` key is called as ``target(**other_keys)`` after its
    arguments have been instantiated. ``_target_`` can be a callable (class, function,
    dataclass) or a dotted path string. Plain dicts/lists/DictConfigs without ``_target_``
    are returned as plain containers with instantiated children; other values (including
    arbitrary objects stored in the config) are returned unchanged.

    Args:
        cfg: a DictConfig/ListConfig/dict/list, possibly nested, or any other value.
    Returns:
        the built object(s).
    """
    if isinstance(cfg, ListConfig):
        return [instantiate(cfg[i]) for i in range(len(cfg))]
    if isinstance(cfg, list):
        return [instantiate(x) for x in cfg]
    if isinstance(cfg, tuple):
        return tuple(instantiate(x) for x in cfg)
    if isinstance(cfg, DictConfig) and not _is_lazy_node(cfg):
        # keep values that are arbitrary objects (allow_objects) intact
        return {k: instantiate(cfg[k]) for k in cfg.keys()}
    if isinstance(cfg, abc.Mapping) and not _is_lazy_node(cfg):
        return {k: instantiate(v) for k, v in cfg.items()}
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        # dataclass instances inside a config: instantiate their fields
        changes = {f.name: instantiate(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
        return dataclasses.replace(cfg, **changes) if changes else cfg
    if not _is_lazy_node(cfg):
        return cfg

    items: dict[str, Any]
    if isinstance(cfg, DictConfig):
        items = {str(k): cfg[k] for k in cfg.keys()}
    else:
        items = dict(cfg)
    target = items.pop(_TARGET)
    if isinstance(target, str):
        name = target
        target = locate(target)
    else:
        name = getattr(target, "__qualname__", repr(target))
    if not callable(target):
        raise TypeError(f"_target_ {name!r} is not callable (got {type(target).__name__}).")
    kwargs = {k: instantiate(v) for k, v in items.items()}
    try:
        return target(**kwargs)
    except TypeError:
        # Make the usual "unexpected keyword" mistakes point at the config node.
        try:
            sig = inspect.signature(target)
            accepted = list(sig.parameters)
        except (TypeError, ValueError):
            accepted = []
        logging.getLogger(__name__).error(
            "Error when instantiating %s with keys %s (its parameters: %s)",
            name,
            sorted(kwargs),
            accepted,
        )
        raise
