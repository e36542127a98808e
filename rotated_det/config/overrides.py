"""Command-line overrides of configs: Hydra's grammar, applied with checked keys and types.

``train.max_iter=300 optimizer.lr=0.01`` sets existing keys; a key that does not exist is an
error naming the nearest existing keys, and a value of the wrong type (``train.max_iter=abc``) an
error naming the key, the value and the expected type, both before anything is built.
"""

import difflib
import inspect
import types
import typing
from collections import abc
from typing import Any

from omegaconf import DictConfig, ListConfig

from .instantiate import locate

__all__ = ["ConfigKeyError", "ConfigTypeError", "apply_overrides"]


class ConfigKeyError(KeyError):
    """A config key that does not exist (or already exists, for ``+key=``); the message names
    the key and the nearest existing keys."""

    def __str__(self) -> str:  # KeyError's default repr-quotes the message
        return str(self.args[0]) if self.args else ""


class ConfigTypeError(ConfigKeyError, TypeError):
    """An override whose value has the wrong type for its key (``train.max_iter=abc``); the
    message names the override, the key, the value and the expected type. A ConfigKeyError too,
    so that code reporting bad overrides (``except ConfigKeyError``) reports it the same way."""


def _flatten_keys(cfg: Any, prefix: str = "") -> list[str]:
    out: list[str] = []
    items: list[tuple[str, Any]]
    if isinstance(cfg, DictConfig):
        items = [(str(k), cfg._get_node(k)) for k in cfg.keys()]
    elif isinstance(cfg, ListConfig):
        items = [(str(i), cfg._get_node(i)) for i in range(len(cfg))]
    else:
        return out
    for k, node in items:
        full = prefix + k
        out.append(full)
        if isinstance(node, (DictConfig, ListConfig)):
            out.extend(_flatten_keys(node, full + "."))
    return out


_UNCHECKED = object()  # stands for a current value whose type is not checked


def _raw_value(node: Any) -> Any:
    """The value of a config node without resolving interpolations: a DictConfig/ListConfig
    node itself, a leaf's value, None, or ``_UNCHECKED`` for an interpolation or missing
    value (``???``)."""
    if node._is_interpolation() or node._is_missing():
        return _UNCHECKED
    if node._is_none():
        return None
    return node if isinstance(node, (DictConfig, ListConfig)) else node._value()


def _kind(x: Any) -> str | None:
    """The type name an override is checked against; None for values that are not checked
    (None, interpolations, arbitrary objects such as classes or functions)."""
    if x is None or x is _UNCHECKED:
        return None
    for kind, types_ in (
        ("bool", bool),  # before int: bool is a subclass of int
        ("int", int),
        ("float", float),
        ("str", str),
        ("list", (ListConfig, list, tuple)),
        ("dict", (DictConfig, abc.Mapping)),
    ):
        if isinstance(x, types_):
            return kind
    return None


_EXPECTED = {
    "bool": "a bool (true or false)",
    "int": "an int",
    "float": "a float (or an int)",
    "str": "a str",
    "list": "a list",
    "dict": "a config node (dict)",
}


class _Mismatch(Exception):
    def __init__(self, key: str, current: Any, value: Any, hint: str = ""):
        super().__init__(key)
        self.key, self.current, self.value, self.hint = key, current, value, hint


def _coerced(key: str, current: Any, value: Any, raw: str | None) -> Any:
    """``value`` (parsed by Hydra) converted to the type of ``current`` where that is
    unambiguous (int -> float, a typed number -> str, list elements); raises _Mismatch
    otherwise. ``raw`` is the value as typed (None for list elements)."""
    kind, got = _kind(current), _kind(value)
    if kind is None or value is None:
        return value
    if kind == got == "list":
        elements = [_raw_value(current._get_node(i)) for i in range(len(current))]
        kinds = {_kind(e) for e in elements}
        if len(kinds) != 1 or None in kinds:  # empty, mixed or unchecked: any elements
            return value
        return [_coerced(f"{key}.{i}", elements[0], v, None) for i, v in enumerate(value)]
    if kind == got:
        return value
    if kind == "float" and got == "int":
        return float(value)
    if kind == "str" and got in ("int", "float"):
        return raw if raw is not None else str(value)
    hint = ""
    if kind == "str" and got == "bool":
        hint = f" Quote it to pass a string: {key}='{raw if raw is not None else value}'."
    raise _Mismatch(key, current, value, hint)


def _argument_annotation(node: Any, key: str) -> Any:
    """The type annotation of argument ``key`` of ``node``'s LazyCall target; None when
    ``node`` is not a LazyCall node or the annotation is missing or cannot be resolved."""
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return None
    try:
        target = node["_target_"]
        target = locate(target) if isinstance(target, str) else target
        param = inspect.signature(target, eval_str=True).parameters.get(key)
    except Exception:  # noqa: BLE001 - an unresolvable annotation just means no annotation
        return None
    if param is None or param.annotation is inspect.Parameter.empty:
        return None
    return param.annotation


def _fits(value: Any, annotation: Any) -> bool:
    """Whether a value parsed by Hydra (None, bool, int, float, str, list, dict) fits a type
    annotation. Annotations that are not classes (type variables, unresolved names) fit."""
    origin = typing.get_origin(annotation) or annotation
    if annotation is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in typing.get_args(annotation))
    if annotation is None or annotation is type(None):
        return value is None
    if not isinstance(origin, type):
        return True
    if origin is float:  # the numeric tower: an int is a valid float
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is tuple:  # Hydra writes sequences as lists; instantiate passes them on
        return isinstance(value, list)
    return isinstance(value, origin)


def _checked_value(text: str, key: str, parent: Any, index: Any, value: Any) -> Any:
    """The value to store for override ``text`` at ``parent[index]``: ``value`` converted to
    the current value's type, or accepted because the LazyCall target's annotation of the
    argument admits it (``names: str | Sequence[str]`` takes a list where the config has a
    str). An argument the config does not set yet is checked against its annotation alone.
    Raises ConfigTypeError otherwise."""
    if not (isinstance(parent, ListConfig) or index in parent):  # a list index is checked
        annotation = _argument_annotation(parent, str(index))
        if annotation is None or value is None or _fits(value, annotation):
            return value
        raise _type_error(text, _Mismatch(key, _UNCHECKED, value), annotation)
    current = _raw_value(parent._get_node(index))
    try:
        return _coerced(key, current, value, text.partition("=")[2])
    except _Mismatch as m:
        if m.key != key:  # a list element: its type comes from the other elements
            raise _type_error(text, m, None) from None
        annotation = _argument_annotation(parent, str(index))
        if annotation is not None and _fits(value, annotation):
            return value
        raise _type_error(text, m, annotation) from None


def _type_error(text: str, m: _Mismatch, annotation: Any) -> ConfigTypeError:
    kind = _kind(m.current)
    notes = [f"current value {m.current!r}"] if kind not in (None, "list", "dict") else []
    if kind is None:  # an argument the config does not set: only the annotation tells
        what = f"{inspect.formatannotation(annotation)} (the annotation of the argument)"
    else:
        what = _EXPECTED[kind]
        if annotation is not None:
            notes.append(f"the argument is annotated {inspect.formatannotation(annotation)}")
    return ConfigTypeError(
        f"Override {text!r}: {m.key} expects {what}"
        + (f" ({'; '.join(notes)})" if notes else "")
        + f", got {type(m.value).__name__} {m.value!r}.{m.hint} (Use "
        f"'++{text.lstrip('+')}' to set a value of another type on purpose.)"
    )


def _target_accepts(target: Any, key: str) -> bool:
    """Whether a LazyCall target takes an argument named ``key`` (explicitly or **kwargs)."""
    try:
        if isinstance(target, str):
            target = locate(target)
        params = inspect.signature(target).parameters
    except (ImportError, TypeError, ValueError):
        return False
    if key in params:
        return True
    return any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values())


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """
    Apply command-line overrides in Hydra's grammar, in place, and return ``cfg``::

        train.max_iter=300  optimizer.lr=0.01  model.backbone.out_features=[res4,res5]
        train.init_checkpoint=''  train.device=null  +new.key=1 (explicit add)  ~key (delete)

    A key that does not exist is an error naming it and the nearest existing keys, unless
    it is an argument accepted by the enclosing LazyCall target, or the override starts
    with ``+``/``++`` (explicit add).

    The value of an existing key must have the type of its current value, checked here
    rather than when the model or data are built (:class:`ConfigTypeError` names the key,
    the value and the expected type):

    - int: an int (``1e4`` or ``true`` are rejected); float: a float or an int (stored as
      a float: ``optimizer.lr=1`` is 1.0);
    - bool: ``true``/``false`` only; 0 and 1 are rejected, as they more likely belong to
      another key than mean a bool;
    - str: a string; a number is taken as the text typed (``train.output_dir=2024`` is
      "2024"), ``true``/``false`` must be quoted;
    - list (or tuple): a list, each element checked against the current elements when those
      all have one type (``model.pixel_mean=[100,110,120]`` becomes floats);
    - a config node (dict): a dict;
    - ``null`` is accepted for any key (it is how a part is switched off), and a key whose
      current value is None, an interpolation, or an object (a class, a function) accepts
      any value;
    - a value of another type is accepted when the key is an argument of a LazyCall target
      whose annotation admits it (``names: str | Sequence[str]`` takes ``[a,b]`` where the
      config has ``"a"``).

    An argument of a LazyCall target that the config does not set yet (``model.bias=false``)
    is checked against the target's annotation of it, if any. ``++key=value`` sets a key
    without the type check, on purpose; new keys (``+key=``) are not checked.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    parsed = parser.parse_overrides(list(overrides))
    for override, text in zip(parsed, overrides, strict=True):
        key = override.key_or_group
        if override.is_sweep_override():
            raise ValueError(f"Override {text!r}: sweeps are not supported here.")
        value = override.value()
        parent, last = _resolve_parent(cfg, key, text, override)
        if override.is_delete():
            del parent[last]
            continue
        index: int | str = int(last) if isinstance(parent, ListConfig) else last
        if not (override.is_add() or override.is_force_add()):
            value = _checked_value(text, key, parent, index, value)
        parent[index] = value
    return cfg


def _resolve_parent(cfg: DictConfig, key: str, text: str, override: Any) -> tuple[Any, str]:
    adding = override.is_add() or override.is_force_add()
    parts = key.split(".")
    node = cfg
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, ListConfig):
            if not (part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node)):
                _missing(cfg, key, ".".join(parts[: i + 1]), text)
            if last:
                return node, part
            node = node[int(part)]
            continue
        if not isinstance(node, DictConfig):
            raise ConfigKeyError(
                f"Override {text!r}: {'.'.join(parts[:i])!r} is a "
                f"{type(node).__name__}, not a config node with keys."
            )
        if part in node:
            if last:
                if override.is_add():
                    raise ConfigKeyError(
                        f"Override {text!r}: key {key!r} already exists; drop the '+'."
                    )
                return node, part
            node = node[part]
            continue
        if last and not override.is_delete():
            target = node.get("_target_", None) if "_target_" in node else None
            if adding or (target is not None and _target_accepts(target, part)):
                return node, part
        if adding and not last:
            node[part] = DictConfig({}, flags={"allow_objects": True})
            node = node[part]
            continue
        _missing(cfg, key, ".".join(parts[: i + 1]), text)
    raise AssertionError("unreachable")


def _missing(cfg: DictConfig, key: str, missing: str, text: str) -> None:
    all_keys = _flatten_keys(cfg)
    near = difflib.get_close_matches(key, all_keys, n=5, cutoff=0.6)
    if not near:
        # compare the unknown component against its siblings
        prefix = missing.rpartition(".")[0]
        siblings = [k for k in all_keys if k.rpartition(".")[0] == prefix]
        near = difflib.get_close_matches(missing, siblings, n=5, cutoff=0.4)
    raise ConfigKeyError(
        f"Override {text!r}: key {missing!r} does not exist in the config. "
        f"Nearest existing keys: {near if near else 'none'}. "
        f"(Use '+{key}=...' to add a new key on purpose.)"
    )
