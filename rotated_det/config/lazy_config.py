"""LazyConfig: load, save, override and print configs made of LazyCall nodes."""

import builtins
import copy
import difflib
import inspect
import logging
import os
import pickle
import types
import typing
import uuid
from collections import abc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig

from .instantiate import locate, target_to_str

__all__ = ["LazyConfig", "ConfigKeyError", "ConfigTypeError"]

logger = logging.getLogger(__name__)

# Config files are executed with a fake package name under this prefix, so that relative
# imports inside them can be recognised and resolved to files by _patch_import.
_CFG_PACKAGE = "rotated_det._cfg_loader"


class ConfigKeyError(KeyError):
    """A config key that does not exist (or already exists, for ``+key=``); the message names
    the key and the nearest existing keys."""

    def __str__(self) -> str:  # KeyError's default repr-quotes the message
        return str(self.args[0]) if self.args else ""


class ConfigTypeError(ConfigKeyError, TypeError):
    """An override whose value has the wrong type for its key (``train.max_iter=abc``); the
    message names the override, the key, the value and the expected type. A ConfigKeyError too,
    so that code reporting bad overrides (``except ConfigKeyError``) reports it the same way."""


def _new_config(content: Any) -> Any:
    if isinstance(content, (DictConfig, ListConfig)):
        return content
    if isinstance(content, abc.Mapping):
        return DictConfig(content=dict(content), flags={"allow_objects": True})
    if isinstance(content, list):
        return ListConfig(content=content, flags={"allow_objects": True})
    return content


def _is_config_value(x: Any) -> bool:
    return isinstance(x, (DictConfig, ListConfig, dict, list))


def _exported_names(namespace: dict[str, Any], filename: str) -> set[str]:
    """The names a ``.py`` config exports: those listed in its ``__all__`` when it has one (so
    that helper values it imports or defines, e.g. a list of class names, stay out of the
    config), else every name not starting with ``_``."""
    if "__all__" not in namespace:
        return {k for k in namespace if not k.startswith("_")}
    exported = namespace["__all__"]
    if isinstance(exported, str) or not all(isinstance(n, str) for n in exported):
        raise TypeError(f"{filename}: __all__ must be a list of names, got {exported!r}")
    missing = [n for n in exported if n not in namespace]
    if missing:
        raise ConfigKeyError(f"{filename}: __all__ names {missing}, which the file does not define")
    return set(exported)


def _read_text(filename: str) -> str:
    from rotated_det.utils.file_io import PathManager

    with PathManager.open(filename, "r") as f:
        text: str = f.read()
    return text


def _exec_config_file(filename: str) -> dict[str, Any]:
    """Execute a Python config file and return its global namespace."""
    source = _read_text(filename)
    try:
        code = compile(source, filename, "exec")
    except SyntaxError as e:
        raise SyntaxError(f"Config file {filename} has a syntax error: {e}") from e
    package = f"{_CFG_PACKAGE}{uuid.uuid4().hex[:8]}.{os.path.basename(filename)}"
    namespace = {"__file__": filename, "__package__": package, "__name__": package}
    with _patch_import():
        exec(code, namespace)
    return namespace


def _module_from_file(filename: str, name: str) -> types.ModuleType:
    namespace = _exec_config_file(filename)
    module = types.ModuleType(name)
    for k, v in namespace.items():
        if k in ("__package__", "__name__"):
            continue
        # dicts in imported config files become configs, so `train.max_iter = 1` works
        convert = isinstance(v, (dict, list)) and not k.startswith("_")
        module.__dict__[k] = _new_config(v) if convert else v
    module.__file__ = filename
    return module


def _package_from_dir(dirname: str, name: str, fromlist: Any) -> types.ModuleType:
    package = types.ModuleType(name)
    package.__path__ = [dirname]
    for item in fromlist or ():
        if item == "*":
            raise ImportError(f"'from {name} import *' is not supported in config files.")
        path = os.path.join(dirname, item)
        if os.path.isfile(path + ".py"):
            setattr(package, item, _module_from_file(path + ".py", f"{name}.{item}"))
        elif os.path.isdir(path):
            setattr(package, item, _package_from_dir(path, f"{name}.{item}", ()))
        else:
            raise ImportError(
                f"Config import: neither {path}.py nor directory {path} exists "
                f"(while importing {item!r} from {dirname})."
            )
    return package


@contextmanager
def _patch_import() -> Iterator[None]:
    """Resolve relative imports of config files (``from ..common.train import train``) to
    files on disk; every other import goes to Python's normal machinery."""
    original_import = builtins.__import__

    def config_import(
        name: str,
        globals: abc.Mapping[str, object] | None = None,
        locals: abc.Mapping[str, object] | None = None,
        fromlist: abc.Sequence[str] | None = (),
        level: int = 0,
    ) -> types.ModuleType:
        package = str((globals or {}).get("__package__") or "")
        if globals is None or level == 0 or not package.startswith(_CFG_PACKAGE):
            return original_import(name, globals, locals, fromlist, level)
        config_file = str(globals["__file__"])
        base = os.path.dirname(config_file)
        for _ in range(level - 1):
            base = os.path.dirname(base)
        path = os.path.join(base, *name.split(".")) if name else base
        if os.path.isfile(path + ".py"):
            return _module_from_file(path + ".py", name)
        if os.path.isdir(path):
            return _package_from_dir(path, name or os.path.basename(path), fromlist)
        raise ImportError(
            f"Config file {config_file}: relative import {'.' * level}{name} "
            f"refers to {path}.py, which does not exist."
        )

    builtins.__import__ = config_import
    try:
        yield
    finally:
        builtins.__import__ = original_import


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


class LazyConfig:
    """
    Load, save, override and print lazy configs: Python files whose top-level dicts (usually
    LazyCall nodes) form the config, or YAML files written by :meth:`save`.
    """

    @staticmethod
    def load(filename: str, keys: None | str | tuple[str, ...] = None) -> Any:
        """
        Load a config file.

        Args:
            filename: a ``.py`` config file (may import other config files, relatively:
                ``from ..common.train import train``), a ``.yaml``/``.yml`` file, or a ``.pkl``
                written by :meth:`save` as a fallback.
            keys: if a string, return only that top-level value; if a tuple of strings, return
                a tuple of those values; if None, return the whole config as a DictConfig.

        The top-level keys of a ``.py`` config are its dicts and lists (LazyCall nodes
        included) whose names do not start with ``_``; when the file has an ``__all__``, only
        the names in it (each must be defined; a name that is not a dict or list is not a key).
        """
        filename = os.path.normpath(filename)
        ext = os.path.splitext(filename)[1]
        if ext == ".py":
            namespace = _exec_config_file(filename)
            exported = _exported_names(namespace, filename)
            content = {
                k: _new_config(v)
                for k, v in namespace.items()
                if k in exported and _is_config_value(v)
            }
            cfg = DictConfig(content, flags={"allow_objects": True})
        elif ext in (".yaml", ".yml"):
            data = yaml.safe_load(_read_text(filename)) or {}
            if not isinstance(data, dict):
                raise ValueError(f"{filename}: expected a mapping at the top level of the YAML.")
            cfg = DictConfig(data, flags={"allow_objects": True})
        elif ext == ".pkl":
            from rotated_det.utils.file_io import PathManager

            with PathManager.open(filename, "rb") as f:
                cfg = pickle.load(f)
        else:
            raise ValueError(f"Config file {filename} must end in .py, .yaml, .yml or .pkl.")

        if keys is None:
            return cfg
        if isinstance(keys, str):
            return LazyConfig._select(cfg, keys, filename)
        return tuple(LazyConfig._select(cfg, k, filename) for k in keys)

    @staticmethod
    def _select(cfg: DictConfig, key: str, filename: str) -> Any:
        if key not in cfg:
            near = difflib.get_close_matches(key, [str(k) for k in cfg.keys()], n=3)
            raise ConfigKeyError(f"{filename} has no top-level key {key!r}; nearest: {near}")
        return cfg[key]

    @staticmethod
    def load_rel(filename: str, keys: None | str | tuple[str, ...] = None) -> Any:
        """Like :meth:`load`, with ``filename`` relative to the calling file."""
        caller = inspect.stack()[1]
        caller_file = caller.frame.f_globals.get("__file__")
        if not caller_file:
            raise RuntimeError("load_rel must be called from a file.")
        return LazyConfig.load(os.path.join(os.path.dirname(caller_file), filename), keys)

    @staticmethod
    def save(cfg: Any, filename: str) -> str:
        """
        Save a config to YAML. Callable ``_target_`` values are written as dotted paths.

        Values YAML cannot hold (arbitrary objects, lambdas) are reported in a warning naming
        their keys, and the config is pickled to ``filename + ".pkl"`` instead.

        Returns:
            the path actually written (the YAML file, or the pickle fallback).
        """
        from rotated_det.utils.file_io import PathManager

        cfg = copy.deepcopy(cfg)
        problems: list[str] = []

        def _convert(node: Any, path: str) -> Any:
            if isinstance(node, (DictConfig, abc.Mapping)):
                out = {}
                keys = node.keys()
                for k in keys:
                    v = node[k]
                    sub = f"{path}.{k}" if path else str(k)
                    if k == "_target_" and not isinstance(v, str):
                        try:
                            name = target_to_str(v)
                            if locate(name) != v:
                                raise ValueError
                            v = name
                        except (ValueError, ImportError):
                            problems.append(f"{sub} (target {v!r} has no importable path)")
                            continue
                    out[str(k) if not isinstance(k, (int, bool)) else k] = _convert(v, sub)
                return out
            if isinstance(node, (ListConfig, list, tuple)):
                return [_convert(node[i], f"{path}.{i}") for i in range(len(node))]
            if node is None or isinstance(node, (bool, int, float, str)):
                return node
            problems.append(f"{path} (value of type {type(node).__name__})")
            return None

        data = _convert(cfg, "")
        if not problems:
            text = yaml.safe_dump(data, default_flow_style=None, sort_keys=False, width=100)
            with PathManager.open(filename, "w") as f:
                f.write(text)
            return filename

        pkl = filename + ".pkl"
        logger.warning(
            "Config cannot be saved as YAML; these keys hold values YAML cannot represent: %s. "
            "Pickling the config to %s instead.",
            "; ".join(problems),
            pkl,
        )
        try:
            with PathManager.open(pkl, "wb") as f:
                pickle.dump(cfg, f)
        except Exception as e:  # noqa: BLE001 - report, a config dump is not worth a crash
            logger.error("Could not pickle the config to %s either: %s", pkl, e)
        return pkl

    @staticmethod
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
            parent, last = LazyConfig._resolve_parent(cfg, key, text, override)
            if override.is_delete():
                del parent[last]
                continue
            index: int | str = int(last) if isinstance(parent, ListConfig) else last
            if not (override.is_add() or override.is_force_add()):
                value = _checked_value(text, key, parent, index, value)
            parent[index] = value
        return cfg

    @staticmethod
    def _resolve_parent(cfg: DictConfig, key: str, text: str, override: Any) -> tuple[Any, str]:
        adding = override.is_add() or override.is_force_add()
        parts = key.split(".")
        node = cfg
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, ListConfig):
                if not (part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node)):
                    LazyConfig._missing(cfg, key, ".".join(parts[: i + 1]), text)
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
            LazyConfig._missing(cfg, key, ".".join(parts[: i + 1]), text)
        raise AssertionError("unreachable")

    @staticmethod
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

    @staticmethod
    def to_py(cfg: Any, prefix: str = "cfg.") -> str:
        """
        Return Python source that rebuilds ``cfg``: one ``{prefix}{key} = ...`` statement per
        top-level key, LazyCall nodes written as ``L("dotted.target")(...)``. With
        ``prefix=""`` the output is itself a loadable config file. Values that are arbitrary
        objects are written with ``repr`` and marked with a comment.
        """
        lines = [
            "# Generated by rotated_det LazyConfig.to_py",
            "from rotated_det.config import LazyCall as L",
            "",
        ]
        for k in cfg.keys():
            lines.append(f"{prefix}{k} = {_render(cfg[k], 0)}")
        return "\n".join(lines) + "\n"


def _render_key_values(items: list[tuple[str, Any]], indent: int, as_call: bool) -> list[str]:
    out = []
    for k, v in items:
        r = _render(v, indent + 4)
        out.append(f"{k}={r}" if as_call else f"{k!r}: {r}")
    return out


def _render(x: Any, indent: int) -> str:
    if isinstance(x, (DictConfig, abc.Mapping)):
        keys = list(x.keys())
        get = x.__getitem__
        if "_target_" in keys:
            target = get("_target_")
            if not isinstance(target, str):
                target = target_to_str(target)
            items = [(str(k), get(k)) for k in keys if k != "_target_"]
            head, tail, as_call = f"L({target!r})(", ")", True
        else:
            items = [(k, get(k)) for k in keys]
            as_call = all(isinstance(k, str) and k.isidentifier() for k in keys)
            head, tail = ("dict(", ")") if as_call else ("{", "}")
        parts = _render_key_values(items, indent, as_call)
    elif isinstance(x, (ListConfig, list, tuple)):
        parts = [_render(x[i], indent + 4) for i in range(len(x))]
        head, tail = ("(", ",)" if len(x) == 1 else ")") if isinstance(x, tuple) else ("[", "]")
    elif x is None or isinstance(x, (bool, int, float, str)):
        return repr(x)
    elif callable(x):
        try:
            return _callable_ref(x)
        except ValueError:
            return f"{x!r}  # FIXME: not representable"
    else:
        return f"{x!r}  # FIXME: not representable as Python source"
    one_line = head + ", ".join(parts) + tail
    if len(one_line) + indent <= 90 and "\n" not in one_line and "#" not in one_line:
        return one_line
    pad = " " * (indent + 4)
    body = "".join(f"{pad}{p},\n" for p in parts)
    return f"{head}\n{body}{' ' * indent}{tail}"


def _callable_ref(fn: Any) -> str:
    # A callable stored as a value (not a target): emit code that locates it on load.
    return f"__import__('rotated_det.config', fromlist=['locate']).locate({target_to_str(fn)!r})"
