"""Import a script of the repository (a tool, the demo, a reference implementation kept in the
tests) as a module, for tests that call its functions directly."""

import importlib.util
import os
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def load_script(path: str | os.PathLike) -> ModuleType:
    """The module of the Python file ``path`` (absolute, or relative to the repository root),
    executed afresh on each call and not registered in ``sys.modules``."""
    path = REPO / path
    spec = importlib.util.spec_from_file_location(f"_script_{path.stem}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
