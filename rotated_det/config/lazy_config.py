"""LazyConfig: load, save, override and print configs made of LazyCall nodes."""

import builtins
import copy
import difflib
import inspect
import logging
import os
import pickle
import types
import uuid
from collections import abc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig

from .instantiate import locate, target_to_str
from .overrides import ConfigKeyError, ConfigTypeError, apply_overrides

__all__ = ["LazyConfig", "ConfigKeyError", "ConfigTypeError"]

logger = logging.getLogger(__name__)

# Config files are executed with a fake package name under this prefix, so that relative
# imports inside them can be recognised and resolved to files by _patch_import.
_CFG_PACKAGE = "rotated_det._cfg_loader"


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
        """Apply command-line overrides (Hydra grammar) to ``cfg`` in place and return it; keys
        and value types are checked: see :func:`rotated_det.config.overrides.apply_overrides`."""
        return apply_overrides(cfg, overrides)

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
