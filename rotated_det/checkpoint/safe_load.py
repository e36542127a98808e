"""Read checkpoint files without running code they may carry.

A pickle can name any Python function and have it called while it is read (``os.system`` with a
shell command, for instance), so reading a pickled checkpoint from an untrusted source is running
that source's program. :func:`load_checkpoint_file` is the one function through which this package
reads weight files, and by default it admits only what weight files hold:

- torch files (``.pth``, ``.pt``, anything ``torch.save`` wrote): ``torch.load(weights_only=True)``
  (tensors, containers, numbers, strings) plus numpy arrays, scalars and dtypes;
- ``.safetensors`` files (timm and Hugging Face weights): read by ``safetensors``, a format of
  named tensors and nothing else;
- pickle files (``.pkl``: Detectron2 model zoo and Caffe2 / MSRA ImageNet weights): a restricted
  unpickler that admits dicts, lists, tuples, ``collections.OrderedDict``, numbers, strings, bytes
  and numpy arrays, scalars and dtypes (with numpy's reconstruction helpers), nothing else.

A file that needs anything more raises :class:`UnsafeCheckpointError`, which names the file, the
refused global and the opt-in: ``allow_unsafe=True`` (``train.allow_unsafe_checkpoint=True`` in a
config), for files whose origin you trust.
"""

import codecs
import collections
import logging
import pickle
import re
from typing import Any

import numpy as np
import torch

from rotated_det.utils.file_io import PathManager

__all__ = ["UnsafeCheckpointError", "load_checkpoint_file", "SAFE_PICKLE_GLOBALS"]

logger = logging.getLogger(__name__)

try:  # numpy >= 2 moved the implementation to numpy._core; files written by numpy 1 name numpy.core
    from numpy._core import multiarray as _np_multiarray
    from numpy._core import numeric as _np_numeric
except ImportError:  # pragma: no cover - numpy 1
    from numpy.core import multiarray as _np_multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _np_numeric  # type: ignore[no-redef]


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it to store bytes; latin-1 only."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} (not latin-1)")
    return codecs.encode(text, "latin1")


# numpy dtype classes of plain numbers, booleans, strings and bytes (numpy >= 1.25 has
# numpy.dtypes; torch's weights-only unpickler needs the classes themselves allowed).
_NUMPY_DTYPE_CLASSES = sorted(
    {
        type(np.dtype(code))
        for code in ("?", "b", "B", "h", "H", "i", "I", "l", "L", "q", "Q", "e", "f", "d", "g")
        + ("F", "D", "G", "U", "S")
    },
    key=lambda c: c.__name__,
)

SAFE_PICKLE_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _latin1_encode,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{
        (module, name): getattr(impl, name)
        for module, impl, names in (
            ("numpy.core.multiarray", _np_multiarray, ("_reconstruct", "scalar")),
            ("numpy._core.multiarray", _np_multiarray, ("_reconstruct", "scalar")),
            ("numpy.core.numeric", _np_numeric, ("_frombuffer",)),
            ("numpy._core.numeric", _np_numeric, ("_frombuffer",)),
        )
        for name in names
    },
    **{(cls.__module__, cls.__name__): cls for cls in _NUMPY_DTYPE_CLASSES},
}
"""``(module, name) -> object``: every global a checkpoint may name when loaded safely."""

_OPT_IN = (
    "Loading it would let the file run arbitrary code on this machine (a pickle can call any "
    "function it names while it is read). If you trust where the file comes from, allow it with "
    "train.allow_unsafe_checkpoint=True (or DetectionCheckpointer(..., allow_unsafe=True)); "
    "better, load it once in a trusted session and re-save only its weights "
    "(torch.save(state_dict, path))."
)


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint names Python objects beyond tensors, arrays, numbers, strings and containers."""

    def __init__(self, filename: str, forbidden: list[str]):
        self.filename = filename
        self.forbidden = forbidden
        super().__init__(
            f"{filename}: refused to load: the file references {', '.join(forbidden)}, which is "
            f"not a tensor, array, number, string or container. {_OPT_IN}"
        )


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`SAFE_PICKLE_GLOBALS`."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return SAFE_PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None


class _Refused(pickle.UnpicklingError):
    """Raised inside the unpickler; turned into UnsafeCheckpointError with the file name."""


def _torch_safe_globals() -> list:
    out: list = []
    for (module, name), obj in SAFE_PICKLE_GLOBALS.items():
        if module == "_codecs":
            continue  # allowed by torch itself
        qualified = f"{module}.{name}"
        own = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__name__', '')}"
        out.append(obj if qualified == own else (obj, qualified))
    return out


def _is_zip(filename: str) -> bool:
    with open(filename, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def _refused_torch_globals(filename: str, error: Exception) -> list[str]:
    """The globals torch's weights-only unpickler refused: all of them when torch can list them
    (zip files), else the one its error message names."""
    allowed = {f"{module}.{name}" for module, name in SAFE_PICKLE_GLOBALS}
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
        names = [n for n in names if n not in allowed]
        if names:
            return names
    except Exception:  # legacy (non-zip) files cannot be listed; fall back to the message
        pass
    found = re.findall(r"GLOBAL ([\w.]+)", str(error))
    return sorted(set(found)) or [str(error).strip().splitlines()[-1][:200]]


def load_checkpoint_file(filename: str, *, allow_unsafe: bool = False) -> Any:
    """Read a checkpoint file without running code it may carry (see the module docstring).

    Args:
        filename: a local path or any path PathManager can fetch; ``.pkl`` files are read as
            plain pickles (unless they are torch zip archives), everything else with
            ``torch.load``.
        allow_unsafe: if the file needs more than the safe globals, load it anyway (running
            whatever it names) instead of raising. Only for files whose origin you trust.

    Returns:
        the deserialised object (tensors on the CPU).

    Raises:
        UnsafeCheckpointError: the file names a global outside :data:`SAFE_PICKLE_GLOBALS` and
            ``allow_unsafe`` is False; the message names the file, the global and the opt-in.
    """
    local = PathManager.get_local_path(filename)
    if filename.endswith(".safetensors"):  # tensors only: the format cannot carry code
        from safetensors.torch import load_file

        try:
            return load_file(local, device="cpu")
        except Exception as e:  # safetensors' errors do not name the file
            raise ValueError(f"{filename}: not a readable safetensors file ({e})") from e
    as_pickle = filename.endswith(".pkl") and not _is_zip(local)
    try:
        if as_pickle:
            with open(local, "rb") as f:
                return _RestrictedUnpickler(f, encoding="latin1").load()
        with torch.serialization.safe_globals(_torch_safe_globals()):
            return torch.load(local, map_location="cpu", weights_only=True)
    except _Refused as e:
        refusal = UnsafeCheckpointError(filename, [str(e)])
    except pickle.UnpicklingError as e:
        if as_pickle:
            raise pickle.UnpicklingError(f"{filename}: not a readable pickle file ({e})") from e
        refusal = UnsafeCheckpointError(filename, _refused_torch_globals(local, e))
    if not allow_unsafe:
        raise refusal
    logger.warning(
        "%s references %s; loading it without restrictions because allow_unsafe is set. Do this "
        "only with files you trust.",
        filename,
        ", ".join(refusal.forbidden),
    )
    if as_pickle:
        with open(local, "rb") as f:
            return pickle.load(f, encoding="latin1")
    return torch.load(local, map_location="cpu", weights_only=False)
