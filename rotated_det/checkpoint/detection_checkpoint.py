"""DetectionCheckpointer: fvcore's Checkpointer with atomic writes and clear load reports."""

import logging
import os
import pickle
from typing import Any

import numpy as np
import torch
from fvcore.common.checkpoint import Checkpointer

from rotated_det.utils import comm
from rotated_det.utils.file_io import PathManager

__all__ = ["DetectionCheckpointer", "IncompatibleCheckpointError"]


class IncompatibleCheckpointError(ValueError):
    """The checkpoint does not fit the model (names the mismatching keys)."""


def _atomic_write(path: str, write_fn) -> None:
    """Write ``path`` through a temporary file in the same directory, then rename it into
    place, so readers (and a later --resume) never see a half-written file."""
    local = PathManager.get_local_path(path) if "://" in path else path
    if "://" in path and local == path:
        # a remote path: no rename available; write directly
        with PathManager.open(path, "wb") as f:
            write_fn(f)
        return
    tmp = f"{local}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, local)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    try:  # make the rename itself durable
        dir_fd = os.open(os.path.dirname(os.path.abspath(local)), os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


class DetectionCheckpointer(Checkpointer):
    """
    Save / load a model and other checkpointables (optimizer, scheduler, trainer state).

    Differences from fvcore's Checkpointer:

    * checkpoint files and the ``last_checkpoint`` tag are written atomically (temporary file
      + ``os.replace``): a run killed at any moment leaves the previous valid checkpoint;
    * only the main process writes (``save_to_disk`` defaults to ``comm.is_main_process()``);
    * loads plain state dicts, ``{"state_dict": ...}`` (OpenMMLab) and ``.pkl`` files of
      numpy arrays, not only ``{"model": ...}``;
    * ``resume_or_load(..., resume=True)`` requires the checkpoint to match the model exactly
      and raises :class:`IncompatibleCheckpointError` naming missing, unexpected and
      shape-mismatched keys; loading initial weights (fine-tuning) skips mismatched shapes
      with a warning per key, and fails if no parameter matches at all.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        save_dir: str = "",
        *,
        save_to_disk: bool | None = None,
        **checkpointables: Any,
    ):
        if save_to_disk is None:
            save_to_disk = comm.is_main_process()
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        self.path_manager = PathManager
        self.logger = logging.getLogger(__name__)
        self._strict = False

    # ------------------------------------------------------------------ saving
    def save(self, name: str, **kwargs: Any) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        PathManager.mkdirs(self.save_dir)
        self.logger.info("Saving checkpoint to %s", save_file)
        _atomic_write(save_file, lambda f: torch.save(data, f))
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        path = os.path.join(self.save_dir, "last_checkpoint")
        _atomic_write(path, lambda f: f.write(last_filename_basename.encode()))

    # ------------------------------------------------------------------ loading
    def resume_or_load(self, path: str, *, resume: bool = True) -> dict[str, Any]:
        """
        If ``resume`` and ``save_dir`` has a ``last_checkpoint``: load it with every
        checkpointable, strictly. Otherwise load only the model weights from ``path`` (may be
        empty: start from scratch).
        """
        if resume and self.has_checkpoint():
            last = self.get_checkpoint_file()
            if not PathManager.exists(last):
                raise FileNotFoundError(
                    f"{os.path.join(self.save_dir, 'last_checkpoint')} names {last}, which "
                    "does not exist. Remove the tag or restore the file to resume."
                )
            self._strict = True
            try:
                return self.load(last)
            finally:
                self._strict = False
        return self.load(path, checkpointables=[])

    def _load_file(self, filename: str) -> dict[str, Any]:
        if filename.endswith(".pkl"):
            with PathManager.open(filename, "rb") as f:
                data = pickle.load(f, encoding="latin1")
            if isinstance(data, dict) and "model" in data:
                return data
            if isinstance(data, dict) and "blobs" in data:
                return {"model": data["blobs"]}
            return {"model": data}
        try:
            data = torch.load(filename, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            self.logger.warning(
                "%s holds Python objects besides tensors (%s). Loading it with "
                "weights_only=False; only do this with files you trust.",
                filename,
                str(e).splitlines()[0][:200],
            )
            data = torch.load(filename, map_location="cpu", weights_only=False)
        if not isinstance(data, dict):
            raise IncompatibleCheckpointError(
                f"{filename}: expected a dict checkpoint, got {type(data).__name__}"
            )
        if "model" in data:
            return data
        if "state_dict" in data and isinstance(data["state_dict"], dict):
            rest = {k: v for k, v in data.items() if k != "state_dict"}
            rest.pop("optimizer", None)  # another framework's optimizer state is not ours
            return {"model": data["state_dict"], "__foreign__": True, **rest}
        if data and all(torch.is_tensor(v) or isinstance(v, np.ndarray) for v in data.values()):
            return {"model": data}
        raise IncompatibleCheckpointError(
            f"{filename}: no 'model' or 'state_dict' entry and not a plain state dict "
            f"(top-level keys: {sorted(data)[:10]})"
        )

    def _load_model(self, checkpoint: Any):
        checkpoint.pop("__foreign__", None)
        ckpt_keys = set(checkpoint["model"].keys())
        incompatible = super()._load_model(checkpoint)
        model_keys = set(self.model.state_dict().keys())
        matched = len(model_keys & {k.removeprefix("module.") for k in ckpt_keys}) - len(
            incompatible.incorrect_shapes
        )
        if self._strict and (
            incompatible.incorrect_shapes
            or incompatible.missing_keys
            or incompatible.unexpected_keys
        ):
            lines = [
                f"  {k}: checkpoint {tuple(a)} vs model {tuple(b)}"
                for k, a, b in incompatible.incorrect_shapes
            ]
            raise IncompatibleCheckpointError(
                "Cannot resume: the checkpoint does not match the model.\n"
                + (("Shape mismatches:\n" + "\n".join(lines) + "\n") if lines else "")
                + (
                    f"Missing in checkpoint: {sorted(incompatible.missing_keys)}\n"
                    if incompatible.missing_keys
                    else ""
                )
                + (
                    f"Not in model: {sorted(incompatible.unexpected_keys)}\n"
                    if incompatible.unexpected_keys
                    else ""
                )
                + "Resume needs the same model config; to start a new training from these "
                "weights, use train.init_checkpoint without --resume."
            )
        if model_keys and ckpt_keys and matched <= 0:
            raise IncompatibleCheckpointError(
                f"No parameter of the checkpoint matches the model (checkpoint keys e.g. "
                f"{sorted(ckpt_keys)[:5]}, model keys e.g. {sorted(model_keys)[:5]}). "
                "Wrong file, or weights that need a converter?"
            )
        return incompatible
