"""A PathManager (iopath) shared by the library, so users can register remote handlers."""

from iopath.common.file_io import HTTPURLHandler, OneDrivePathHandler
from iopath.common.file_io import PathManager as PathManagerBase

__all__ = ["PathManager"]

PathManager = PathManagerBase()
"""Use ``PathManager.open/exists/ls/mkdirs/get_local_path`` for any user-given path."""

PathManager.register_handler(HTTPURLHandler())
PathManager.register_handler(OneDrivePathHandler())
