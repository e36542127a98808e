"""The training loop: TrainerBase with hooks, SimpleTrainer and AMPTrainer."""

import logging
import math
import operator
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from functools import reduce
from typing import Any

import torch
from torch.nn.parallel import DataParallel, DistributedDataParallel

from rotated_det.utils import comm
from rotated_det.utils.env import get_rng_state, set_rng_state
from rotated_det.utils.events import EventStorage, get_event_storage

__all__ = ["HookBase", "TrainerBase", "SimpleTrainer", "AMPTrainer"]

logger = logging.getLogger(__name__)


def _total(loss_dict: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Sum of the loss terms of a non-empty mapping, added in order."""
    return reduce(operator.add, loss_dict.values())


class HookBase:
    """
    A hook runs at fixed points of :meth:`TrainerBase.train`::

        hook.before_train()
        for iter in range(start_iter, max_iter):
            hook.before_step()
            trainer.run_step()
            hook.after_step()
        iter += 1
        hook.after_train()

    ``self.trainer`` (a weak proxy) gives access to the trainer (``iter``, ``max_iter``,
    ``storage``, ``model`` ...). A hook that holds state that must survive resume implements
    ``state_dict`` / ``load_state_dict``; it is saved with the trainer.
    """

    trainer: "TrainerBase"

    def before_train(self) -> None:
        pass

    def after_train(self) -> None:
        pass

    def before_step(self) -> None:
        pass

    def after_backward(self) -> None:
        pass

    def after_step(self) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        pass


class TrainerBase:
    """
    A loop over iterations with hooks; subclasses implement :meth:`run_step`.

    Attributes:
        iter: the current iteration (after train() ends: max_iter).
        start_iter, max_iter: the iterations run are [start_iter, max_iter).
        storage: the EventStorage open during training.
    """

    def __init__(self) -> None:
        self._hooks: list[HookBase] = []
        self.iter: int = 0
        self.start_iter: int = 0
        self.max_iter: int = 0
        self.storage: EventStorage

    def register_hooks(self, hooks: Iterable[HookBase | None]) -> None:
        """Register hooks (None entries are ignored); they run in registration order."""
        for h in hooks:
            if h is None:
                continue
            if not isinstance(h, HookBase):
                raise TypeError(f"{h!r} is not a HookBase")
            # a weak proxy avoids the trainer <-> hook reference cycle
            h.trainer = weakref.proxy(self)
            self._hooks.append(h)

    def train(self, start_iter: int, max_iter: int) -> None:
        logger.info("Starting training from iteration %d", start_iter)
        self.iter = self.start_iter = start_iter
        self.max_iter = max_iter
        with EventStorage(start_iter) as self.storage:
            try:
                self.before_train()
                for self.iter in range(start_iter, max_iter):
                    self.before_step()
                    self.run_step()
                    self.after_step()
                # after the loop iter == max_iter, so hooks know training finished
                self.iter = max(max_iter, start_iter)
            except Exception:
                logger.exception("Exception during training:")
                raise
            finally:
                self.after_train()

    def before_train(self) -> None:
        for h in self._hooks:
            h.before_train()

    def after_train(self) -> None:
        self.storage.iter = self.iter
        for h in self._hooks:
            h.after_train()

    def before_step(self) -> None:
        self.storage.iter = self.iter
        for h in self._hooks:
            h.before_step()

    def after_backward(self) -> None:
        for h in self._hooks:
            h.after_backward()

    def after_step(self) -> None:
        for h in self._hooks:
            h.after_step()

    def run_step(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Iteration, RNG states and hook states: what resume needs besides model/optimizer."""
        ret: dict[str, Any] = {"iteration": self.iter, "rng": get_rng_state()}
        hooks_state = {}
        for h in self._hooks:
            sd = h.state_dict()
            if sd:
                name = type(h).__qualname__
                if name in hooks_state:
                    logger.warning("Two hooks of type %s hold state; only one is saved.", name)
                    continue
                hooks_state[name] = sd
        if hooks_state:
            ret["hooks"] = hooks_state
        return ret

    def load_state_dict(self, state_dict: Mapping) -> None:
        self.iter = int(state_dict["iteration"])
        if "rng" in state_dict:
            set_rng_state(state_dict["rng"])
        for key, value in state_dict.get("hooks", {}).items():
            for h in self._hooks:
                if type(h).__qualname__ == key:
                    h.load_state_dict(value)
                    break
            else:
                logger.warning("Checkpoint has state for hook '%s', which is not registered.", key)


class SimpleTrainer(TrainerBase):
    """
    One iteration = next batch, forward (the model returns a dict of scalar losses in
    training mode), sum, backward, optimizer step. Losses, their sum (``total_loss``) and the
    data loading time are put into the EventStorage; a non-finite loss raises
    ``FloatingPointError`` naming the loss term(s) and the iteration, before the optimizer
    applies the bad gradients.

    If the data loader has ``state_dict()`` / ``load_state_dict()`` (e.g. a stateful loader),
    its position is saved with the trainer, which makes resume exact.

    Gradient accumulation (``grad_accum_steps`` = N > 1): one iteration is one optimizer step
    over N micro-batches, each drawn from the data loader (so an iteration sees N times the
    loader's batch). Each micro-batch's summed loss is divided by N before its backward, so
    with losses that are means over the batch the accumulated gradient equals that of one
    batch N times larger (exactly, for models without batch-dependent layers such as
    BatchNorm). ``max_iter``, the LR schedule, checkpoint and evaluation periods all count
    optimizer steps. The losses put into the storage are the means over the N micro-batches;
    ``after_backward`` hooks run once, after the last micro-batch; under DDP the gradients are
    all-reduced once per iteration (``no_sync`` for the first N - 1 micro-batches).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        data_loader: Iterable,
        optimizer: torch.optim.Optimizer,
        gather_metric_period: int = 1,
        grad_accum_steps: int = 1,
    ):
        super().__init__()
        if int(grad_accum_steps) != grad_accum_steps or grad_accum_steps < 1:
            raise ValueError(
                f"train.grad_accum_steps must be a positive integer, got {grad_accum_steps!r}"
            )
        model.train()
        self.model = model
        self.data_loader = data_loader
        self._data_loader_iter_obj = None
        self.optimizer = optimizer
        self.gather_metric_period = gather_metric_period
        self.grad_accum_steps = int(grad_accum_steps)

    @property
    def _data_loader_iter(self):
        if self._data_loader_iter_obj is None:
            self._data_loader_iter_obj = iter(self.data_loader)
        return self._data_loader_iter_obj

    def _next_batch(self) -> tuple[Any, float]:
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        return data, time.perf_counter() - start

    def _losses(self, data: Any) -> Mapping[str, torch.Tensor]:
        loss_dict = self.model(data)
        if isinstance(loss_dict, torch.Tensor):
            loss_dict = {"total_loss": loss_dict}
        if not isinstance(loss_dict, Mapping) or not loss_dict:
            raise TypeError(
                "In training mode the model must return a non-empty dict of scalar losses, "
                f"got {type(loss_dict).__name__}"
            )
        return loss_dict

    def _forward_backward(
        self,
        backward: Callable[[torch.Tensor], None],
        autocast: Callable[[], AbstractContextManager] = nullcontext,
    ) -> tuple[Mapping[str, torch.Tensor], float]:
        """Forward and ``backward(loss)`` of ``grad_accum_steps`` micro-batches, the summed loss
        of each divided by their number. Returns the loss terms (means over the micro-batches;
        a term missing from a micro-batch counts as 0) and the total data loading time (s)."""
        n = self.grad_accum_steps
        if n == 1:
            data, data_time = self._next_batch()
            with autocast():
                loss_dict = self._losses(data)
                losses = _total(loss_dict)
            backward(losses)
            return loss_dict, data_time
        means: dict[str, torch.Tensor] = {}
        data_time = 0.0
        for i in range(n):
            data, seconds = self._next_batch()
            data_time += seconds
            # DDP: accumulate locally, all-reduce with the last micro-batch's backward
            model = self.model
            if i < n - 1 and isinstance(model, DistributedDataParallel):
                sync_context: AbstractContextManager[Any] = model.no_sync()
            else:
                sync_context = nullcontext()
            with sync_context:
                with autocast():
                    loss_dict = self._losses(data)
                    losses = _total(loss_dict)
                backward(losses / n)
            for k, v in loss_dict.items():
                means[k] = means[k] + v.detach() / n if k in means else v.detach() / n
        return means, data_time

    def run_step(self) -> None:
        assert self.model.training, "[SimpleTrainer] model was changed to eval mode!"
        self.optimizer.zero_grad(set_to_none=True)
        loss_dict, data_time = self._forward_backward(lambda loss: loss.backward())
        self.after_backward()
        self._write_metrics(loss_dict, data_time)
        self.optimizer.step()

    def _write_metrics(self, loss_dict: Mapping[str, torch.Tensor], data_time: float) -> None:
        write = (self.iter + 1) % self.gather_metric_period == 0
        SimpleTrainer.write_metrics(loss_dict, data_time, self.iter, check_only=not write)

    @staticmethod
    def write_metrics(
        loss_dict: Mapping[str, torch.Tensor],
        data_time: float,
        iteration: int,
        prefix: str = "",
        check_only: bool = False,
    ) -> None:
        """
        Check all losses are finite (on every rank) and put them, their sum and the slowest
        rank's data time into the current EventStorage.

        Raises:
            FloatingPointError: naming the non-finite loss term(s), the iteration and rank(s).
        """
        tensors = list(loss_dict.values())
        if all(t.device.type == "cpu" for t in tensors):
            values = [t.item() for t in tensors]
        else:  # one device->host copy (one sync) for all terms
            values = torch.stack([t.detach().float().reshape(()) for t in tensors]).cpu().tolist()
        metrics = dict(zip(loss_dict.keys(), values, strict=True))
        metrics["data_time"] = data_time
        all_metrics = comm.all_gather(metrics)
        bad: dict[str, list[tuple[int, float]]] = {}
        for rank, m in enumerate(all_metrics):
            for k, v in m.items():
                if k != "data_time" and not math.isfinite(v):
                    bad.setdefault(k, []).append((rank, v))
        if bad:
            terms = ", ".join(
                f"{k}={vals[0][1]}"
                + (f" (ranks {[r for r, _ in vals]})" if len(all_metrics) > 1 else "")
                for k, vals in bad.items()
            )
            raise FloatingPointError(
                f"Loss became infinite or NaN at iteration={iteration}: non-finite loss "
                f"term(s): {terms}. All losses: "
                f"{all_metrics[0] if len(all_metrics) == 1 else all_metrics}"
            )
        if check_only or not comm.is_main_process():
            return
        storage = get_event_storage()
        storage.put_scalar("data_time", max(m.pop("data_time") for m in all_metrics))
        averaged = {k: sum(m[k] for m in all_metrics) / len(all_metrics) for k in all_metrics[0]}
        total = sum(averaged.values())
        storage.put_scalar(f"{prefix}total_loss", total)
        if len(averaged) > 1 or "total_loss" not in averaged:
            storage.put_scalars(
                **{f"{prefix}{k}": v for k, v in averaged.items() if k != "total_loss"}
            )

    def state_dict(self) -> dict:
        ret = super().state_dict()
        if hasattr(self.data_loader, "state_dict") and callable(self.data_loader.state_dict):
            ret["data_loader"] = self.data_loader.state_dict()
        return ret

    def load_state_dict(self, state_dict: Mapping) -> None:
        super().load_state_dict(state_dict)
        if "data_loader" in state_dict and hasattr(self.data_loader, "load_state_dict"):
            self.data_loader.load_state_dict(state_dict["data_loader"])
            self._data_loader_iter_obj = None


class AMPTrainer(SimpleTrainer):
    """
    SimpleTrainer with automatic mixed precision: float16 autocast + GradScaler on CUDA,
    bfloat16 autocast on CPU (bfloat16 has float32's range, so no loss scaling is needed).

    Args:
        precision: autocast dtype; default float16 on CUDA, bfloat16 on CPU.
        grad_scaler: a ``torch.amp.GradScaler``; default one for float16 on CUDA, none
            otherwise.
        device_type: "cuda" or "cpu"; default: where the model's parameters live.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        data_loader: Iterable,
        optimizer: torch.optim.Optimizer,
        gather_metric_period: int = 1,
        grad_scaler: "torch.amp.GradScaler | None" = None,
        precision: torch.dtype | None = None,
        device_type: str | None = None,
        grad_accum_steps: int = 1,
    ):
        super().__init__(model, data_loader, optimizer, gather_metric_period, grad_accum_steps)
        if device_type is None:
            p = next(iter(model.parameters()), None)
            device_type = p.device.type if p is not None else "cpu"
        if device_type not in ("cuda", "cpu"):
            raise ValueError(f"AMPTrainer supports cuda and cpu, got {device_type!r}")
        if isinstance(model, DistributedDataParallel) and len(model.device_ids or []) > 1:
            raise ValueError("AMPTrainer does not support single-process multi-device DDP.")
        if isinstance(model, DataParallel):
            raise ValueError("AMPTrainer does not support DataParallel.")
        self.device_type = device_type
        if precision is None:
            precision = torch.float16 if device_type == "cuda" else torch.bfloat16
        self.precision = precision
        if grad_scaler is None and device_type == "cuda" and precision == torch.float16:
            grad_scaler = torch.amp.GradScaler("cuda")
        self.grad_scaler = grad_scaler

    def run_step(self) -> None:
        assert self.model.training, "[AMPTrainer] model was changed to eval mode!"
        self.optimizer.zero_grad(set_to_none=True)
        scaler = self.grad_scaler
        loss_dict, data_time = self._forward_backward(
            (lambda loss: scaler.scale(loss).backward())
            if scaler is not None
            else (lambda loss: loss.backward()),
            autocast=lambda: torch.autocast(device_type=self.device_type, dtype=self.precision),
        )
        self.after_backward()
        self._write_metrics(loss_dict, data_time)
        if self.grad_scaler is not None:
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            self.optimizer.step()

    def state_dict(self) -> dict:
        ret = super().state_dict()
        if self.grad_scaler is not None:
            ret["grad_scaler"] = self.grad_scaler.state_dict()
        return ret

    def load_state_dict(self, state_dict: Mapping) -> None:
        super().load_state_dict(state_dict)
        if self.grad_scaler is not None and "grad_scaler" in state_dict:
            self.grad_scaler.load_state_dict(state_dict["grad_scaler"])
