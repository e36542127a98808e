"""A PathManager (iopath) shared by the library, so users can register remote handlers;
:func:`safe_path`, the one way tools turn a name taken from data into a file inside a folder; and
:data:`IMAGE_EXTENSIONS`, what the loaders, the patch merger and the demo take for an image."""

from __future__ import annotations

import os

from iopath.common.file_io import HTTPURLHandler, OneDrivePathHandler
from iopath.common.file_io import PathManager as PathManagerBase

__all__ = ["IMAGE_EXTENSIONS", "PathManager", "safe_path"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
"""File extensions read as images (lower case; OpenCV decodes all of them)."""

PathManager = PathManagerBase()
"""Use ``PathManager.open/exists/ls/mkdirs/get_local_path`` for any user-given path."""

PathManager.register_handler(HTTPURLHandler())
PathManager.register_handler(OneDrivePathHandler())

# Characters that could leave the folder or change the drive ("/", "\\", ":"), the escape
# character itself ("%", so that escaping stays one-to-one) and control characters.
_ESCAPED = frozenset("/\\:%") | frozenset(map(chr, [*range(32), 127]))


def safe_path(folder: str, name: object, suffix: str = "") -> str:
    """``folder/<name><suffix>`` for a ``name`` that comes from data (an image id, a file stem,
    a class name), guaranteed to be a file directly inside ``folder``.

    ``str(name)`` is percent-escaped where it could leave the folder: path separators (``/``
    and ``\\``), ``:`` (a Windows drive), ``%``, control characters, and a leading ``.`` (so
    ``.``, ``..`` and hidden files cannot arise). Escaping is one-to-one, so distinct names never
    share a file: ``"../x"`` gives ``%2E.%2Fx``, ``"/etc/passwd"`` gives ``%2Fetc%2Fpasswd``;
    ordinary names (``P0706``, ``12``, ``P0706__1.0__0___0``) are unchanged. A name whose escaped
    form exceeds the file system's limit (255 bytes on most) fails when the file is written.

    Args:
        folder: the output folder (not checked or created).
        name: anything with a non-empty ``str()``.
        suffix: appended after escaping (e.g. ``".jpg"``); written by code, so it must not
            contain a path separator.
    Raises:
        ValueError: empty name, or a suffix with a separator.
    """
    text = str(name)
    if not text:
        raise ValueError(f"safe_path: empty name for a file in {folder!r}")
    if any(ch in _ESCAPED for ch in suffix):
        raise ValueError(f"safe_path: suffix {suffix!r} must not contain '/', '\\', ':' or '%'")
    escaped = "".join(f"%{ord(ch):02X}" if ch in _ESCAPED else ch for ch in text)
    if escaped.startswith("."):
        escaped = "%2E" + escaped[1:]
    return os.path.join(folder, escaped + suffix)
