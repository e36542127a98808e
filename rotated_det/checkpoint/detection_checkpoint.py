"""DetectionCheckpointer: fvcore's Checkpointer with atomic writes, safe loading, weight
conversion and one load report."""

import logging
import os
from typing import Any

import numpy as np
import torch
from fvcore.common.checkpoint import Checkpointer

from rotated_det.utils import comm
from rotated_det.utils.file_io import PathManager

from . import torchvision_weights  # noqa: F401  (registers torchvision:// with PathManager)
from .load_report import LoadReport
from .part_placement import place_part_checkpoint
from .resnet_conversion import ConvertedCheckpoint, convert_checkpoint
from .safe_load import load_checkpoint_file

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
    * reads files without running code they may carry (``weights_only`` torch loading, a
      restricted unpickler for ``.pkl``; see ``safe_load``) unless ``allow_unsafe=True``;
    * loads plain state dicts, ``{"state_dict": ...}`` (OpenMMLab) and ``.pkl`` files of
      numpy arrays, not only ``{"model": ...}``, and ``torchvision://resnet50``-style names;
    * converts ImageNet ResNet checkpoints (torchvision / timm, Caffe2 / MSRA, Detectron2 names)
      to the model's names (see ``resnet_conversion``), places the checkpoint of one part of the
      model (a timm or other backbone saved alone) under that part's prefix (see
      ``part_placement``) and logs one table of what matched, was converted, is unmatched in
      the file and missing in the model (``self.load_report``);
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
        allow_unsafe: bool = False,
        **checkpointables: Any,
    ):
        """
        Args:
            model, save_dir, checkpointables: as fvcore's Checkpointer.
            save_to_disk: write files (default: on the main process only).
            allow_unsafe: read checkpoint files that hold arbitrary Python objects, running
                whatever code they carry (``train.allow_unsafe_checkpoint``); only for files
                whose origin you trust.
        """
        if save_to_disk is None:
            save_to_disk = comm.is_main_process()
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        self.path_manager = PathManager
        self.logger = logging.getLogger(__name__)
        self._strict = False
        self.allow_unsafe = allow_unsafe
        self.load_report: LoadReport | None = None
        self._filename = ""

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
        self._filename = filename
        data = load_checkpoint_file(filename, allow_unsafe=self.allow_unsafe)
        if not isinstance(data, dict):
            raise IncompatibleCheckpointError(
                f"{filename}: expected a dict checkpoint, got {type(data).__name__}"
            )
        if "model" in data and isinstance(data["model"], dict):
            return data
        if "state_dict" in data and isinstance(data["state_dict"], dict):
            rest = {k: v for k, v in data.items() if k != "state_dict"}
            rest.pop("optimizer", None)  # another framework's optimizer state is not ours
            return {"model": data["state_dict"], **rest}
        if "blobs" in data and isinstance(data["blobs"], dict):  # Caffe2 / Detectron detection
            return {"model": data["blobs"], **{k: v for k, v in data.items() if k != "blobs"}}
        # a flat state dict; non-tensor values are listed as ignored by the load report
        if any(torch.is_tensor(v) or isinstance(v, np.ndarray) for v in data.values()) and not any(
            isinstance(v, dict) for v in data.values()
        ):
            return {"model": data}
        raise IncompatibleCheckpointError(
            f"{filename}: no 'model', 'state_dict' or 'blobs' entry and not a plain state dict "
            f"(top-level keys: {sorted(data)[:10]})"
        )

    def _load_model(self, checkpoint: Any):
        if self._strict:  # resuming: our own checkpoint, loaded by name
            converted = ConvertedCheckpoint(state=checkpoint["model"], source_format="as is")
        else:  # a part's own checkpoint (a timm / ImageNet backbone file) or a known layout
            converted = place_part_checkpoint(
                checkpoint["model"], self.model
            ) or convert_checkpoint(checkpoint["model"], self.model)
        checkpoint["model"] = dict(converted.state)
        ckpt_keys = {k.removeprefix("module.") for k in converted.state}
        incompatible = super()._load_model(checkpoint)
        model_keys = list(self.model.state_dict().keys())
        skipped = {k for k, _, _ in incompatible.incorrect_shapes}
        missing = set(incompatible.missing_keys)
        # keys a module's load hook fills by itself (BatchNorm's step counter) are neither
        # matched nor missing
        matched = [k for k in model_keys if k in ckpt_keys and k not in skipped]
        loaded = set(matched)
        self.load_report = LoadReport(
            filename=self._filename,
            source_format=converted.source_format,
            resnet_prefix=converted.resnet_prefix,
            matched=matched,
            renamed={k: v for k, v in converted.renamed.items() if k in loaded},
            adapted={k: v for k, v in converted.adapted.items() if k in loaded},
            # what the user may not expect first (classifier, odd values), step counters last
            ignored=sorted(converted.ignored, key=lambda k: k.endswith("num_batches_tracked")),
            unmatched=sorted(incompatible.unexpected_keys),
            incompatible_shapes=list(incompatible.incorrect_shapes),
            missing=[k for k in model_keys if k in missing and k not in skipped],
            warnings=converted.warnings,
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
        if model_keys and ckpt_keys and not matched:
            raise IncompatibleCheckpointError(
                f"{self._filename}: no parameter of the checkpoint matches the model "
                f"(recognised layout: {converted.source_format}; checkpoint keys e.g. "
                f"{sorted(ckpt_keys)[:5]}, model keys e.g. {model_keys[:5]}). "
                + " ".join(converted.warnings)
                + " Known layouts: this package's / Detectron2's names, torchvision or timm "
                "ResNet state dicts, Caffe2 / MSRA .pkl blobs, the state dict of one part of the "
                "model (e.g. a timm backbone's own)."
            )
        return incompatible

    def _log_incompatible_keys(self, incompatible: Any) -> None:
        report = self.load_report
        if report is None:  # pragma: no cover - _load_model always sets it
            return super()._log_incompatible_keys(incompatible)
        level = logging.WARNING if report.needs_attention else logging.INFO
        self.logger.log(level, "%s", report.table())
