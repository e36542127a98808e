"""Lazy configs: LazyCall (alias L), LazyConfig (load/save/apply_overrides/to_py), instantiate."""

from .instantiate import instantiate, locate
from .lazy_call import LazyCall
from .lazy_config import ConfigKeyError, LazyConfig

L = LazyCall

__all__ = ["LazyCall", "L", "LazyConfig", "ConfigKeyError", "instantiate", "locate"]
