"""Lazy configs: LazyCall (alias L), LazyConfig (load/save/apply_overrides/to_py), instantiate,
select (a dotted key of a config, a mapping or an object)."""

from .instantiate import instantiate, locate
from .lazy_call import LazyCall
from .lazy_config import ConfigKeyError, LazyConfig
from .select import select

L = LazyCall

__all__ = ["LazyCall", "L", "LazyConfig", "ConfigKeyError", "instantiate", "locate", "select"]
