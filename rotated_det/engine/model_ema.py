"""Model EMA: an exponential moving average of a model's weights, kept beside the model.

Training with ``train.model_ema.enabled=True`` (see :class:`ModelEMA` for the update rule):

* the EMA state is saved in every checkpoint under its own key, next to the raw weights::

      {"model": <raw training weights>, "model_ema": {"model": <EMA weights, same keys>,
       "updates": <int>}, "optimizer": ..., "trainer": ...}

  ``"model"`` stays the raw weights so that ``--resume`` continues training exactly;
  ``--resume`` restores the EMA state too. ``model_final.pth`` has the same layout.
* evaluation during training (EvalHook) runs on the EMA weights, swapped into the model for the
  evaluation and swapped out afterwards (:meth:`ModelEMA.swapped_in`);
* ``--eval-only``, :class:`DefaultPredictor` and ``tools/deploy/export_model.py`` load
  ``"model_ema"`` instead of ``"model"`` when the config has ``train.model_ema.enabled=True``
  and the file has that entry (:func:`load_inference_weights`); set
  ``train.model_ema.enabled=False`` to evaluate the raw weights of the same file.
* a file that holds only the EMA weights, for tools that read ``"model"``::

      ckpt = torch.load("model_final.pth", weights_only=True)
      torch.save({"model": ckpt["model_ema"]["model"]}, "model_final_ema.pth")
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch

from rotated_det.utils.comm import unwrap_model

__all__ = ["ModelEMA", "load_inference_weights"]

logger = logging.getLogger(__name__)


class ModelEMA:
    """
    Exponential moving average of the state of ``model``, updated after each optimizer step::

        d_n = decay * (1 - exp(-n / tau))        n = 1, 2, ...: this update's number
        ema = d_n * ema + (1 - d_n) * current    (ema = current weights when training starts)

    The ramp (YOLOv5's and RTMDet's rule) lets the average follow the fast-moving weights of
    early training: d_1 is about ``decay / tau`` (the EMA nearly copies the weights), d_n reaches
    0.63 ``decay`` at n = tau and 0.98 ``decay`` at n = 4 tau. ``tau <= 0`` disables the ramp
    (d_n = decay). With decay 0.9998 the average spans about 1 / (1 - decay) = 5000 steps.

    What is averaged: every floating-point entry of ``model.state_dict()``, i.e. the parameters
    and float buffers such as BatchNorm running statistics (they belong to the weights they were
    measured with). Integer buffers (BatchNorm's ``num_batches_tracked``) are copied. Entries
    that never change (frozen parameters, FrozenBatchNorm statistics) stay bit-identical: the
    average is computed as ``ema.lerp_(current, 1 - d_n)``.

    The EMA tensors live on the model's device, in its dtypes (one more copy of the weights).
    Until :meth:`reset` or :meth:`load_state_dict` the EMA holds nothing (``initialized`` is
    False); :class:`rotated_det.engine.hooks.ModelEMAHook` resets it from the model when training
    starts, so it starts from the weights the run starts from (init checkpoint or resumed).

    Args:
        model: the model (a DistributedDataParallel wrapper is looked through).
        decay: the decay the ramp approaches, in [0, 1).
        tau: ramp length in updates (optimizer steps); <= 0: no ramp.
    """

    def __init__(self, model: torch.nn.Module, decay: float = 0.9998, tau: float = 2000.0):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"train.model_ema.decay must be in [0, 1), got {decay}")
        self.model = unwrap_model(model)
        self.decay = float(decay)
        self.tau = float(tau)
        self.updates = 0
        self._state: dict[str, torch.Tensor] | None = None

    @property
    def initialized(self) -> bool:
        return self._state is not None

    def decay_at(self, updates: int) -> float:
        """The decay d_n used by update number ``updates`` (1-based)."""
        if self.tau <= 0:
            return self.decay
        return self.decay * (1.0 - math.exp(-updates / self.tau))

    @torch.no_grad()
    def reset(self) -> None:
        """Start the average from the model's current weights (``updates`` = 0)."""
        self._state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.updates = 0

    @torch.no_grad()
    def update(self) -> None:
        """Fold the model's current weights into the average (call after optimizer.step())."""
        if self._state is None:
            self.reset()
            return
        self.updates += 1
        weight = 1.0 - self.decay_at(self.updates)
        current = self.model.state_dict()
        for name, ema in self._state.items():
            value = current[name].detach()
            if ema.is_floating_point():
                ema.lerp_(value.to(ema.dtype), weight)
            else:
                ema.copy_(value)

    def ema_state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights: a state dict with the model's keys."""
        if self._state is None:
            raise RuntimeError("ModelEMA holds no weights yet: call reset() or load_state_dict()")
        return self._state

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """``{"model": <EMA weights, model keys>, "updates": n}``; ``{}`` before any reset."""
        if self._state is None:
            return {}
        return {"model": dict(self._state), "updates": self.updates}

    def load_state_dict(self, state_dict: Mapping) -> None:
        """Restore :meth:`state_dict`'s output. The weights must match the model's state dict
        exactly (same keys and shapes); the error names the keys that differ."""
        if not state_dict:
            return
        if "model" not in state_dict:
            raise KeyError(
                f"model_ema state: expected keys 'model' and 'updates', got {sorted(state_dict)}"
            )
        weights = state_dict["model"]
        own = self.model.state_dict()
        missing = sorted(set(own) - set(weights))
        unexpected = sorted(set(weights) - set(own))
        shapes = [
            f"{k}: checkpoint {tuple(weights[k].shape)} vs model {tuple(own[k].shape)}"
            for k in own
            if k in weights and tuple(weights[k].shape) != tuple(own[k].shape)
        ]
        if missing or unexpected or shapes:
            raise ValueError(
                "model_ema weights do not match the model: "
                + (f"missing {missing[:10]}; " if missing else "")
                + (f"not in the model {unexpected[:10]}; " if unexpected else "")
                + (f"shapes {shapes[:10]}" if shapes else "")
            )
        self._state = {
            k: weights[k].detach().to(device=v.device, dtype=v.dtype).clone()
            for k, v in own.items()
        }
        self.updates = int(state_dict.get("updates", 0))

    # ------------------------------------------------------------------ using the weights
    @torch.no_grad()
    def copy_to_model(self) -> None:
        """Overwrite the model's weights with the EMA weights (for inference)."""
        current = self.model.state_dict()
        for name, ema in self.ema_state_dict().items():
            current[name].copy_(ema)

    @contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Inside the block the model holds the EMA weights; afterwards its own weights again,
        bit for bit (they are copied aside meanwhile: one more copy of the weights)."""
        current = self.model.state_dict()
        with torch.no_grad():
            saved = {k: v.detach().clone() for k, v in current.items()}
            self.copy_to_model()
        try:
            yield
        finally:
            with torch.no_grad():
                for name, value in saved.items():
                    current[name].copy_(value)


def load_inference_weights(
    model: torch.nn.Module, path: str, *, use_ema: bool, allow_unsafe: bool = False
) -> bool:
    """Load ``path`` into ``model`` for evaluation or inference, with
    :class:`~rotated_det.checkpoint.DetectionCheckpointer` (any format it reads); then, if
    ``use_ema`` (the config's ``train.model_ema.enabled``) and the file has a ``"model_ema"``
    entry, overwrite the weights with the EMA weights.

    Returns:
        True when the model now holds EMA weights.
    """
    from rotated_det.checkpoint import DetectionCheckpointer

    rest = DetectionCheckpointer(model, allow_unsafe=allow_unsafe).load(path)
    state = rest.get("model_ema") if isinstance(rest, Mapping) else None
    if not use_ema:
        if state:
            logger.info(
                "%s also holds EMA weights ('model_ema'); using its raw 'model' weights "
                "(train.model_ema.enabled=False).",
                path,
            )
        return False
    if not state:
        logger.warning(
            "train.model_ema.enabled=True but %s has no 'model_ema' entry: using its 'model' "
            "weights.",
            path or "(no checkpoint)",
        )
        return False
    ema = ModelEMA(model)
    ema.load_state_dict(state)
    ema.copy_to_model()
    logger.info("Using the EMA weights of %s (after %d updates).", path, ema.updates)
    return True
