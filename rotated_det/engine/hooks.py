"""Standard training hooks: timing, LR schedule, checkpoints, evaluation, writers, BN, profiling."""

import datetime
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from fvcore.common.timer import Timer

from rotated_det.utils import comm
from rotated_det.utils.env import get_rng_state, set_rng_state
from rotated_det.utils.events import EventWriter
from rotated_det.utils.file_io import PathManager

from .model_ema import ModelEMA
from .train_loop import HookBase

__all__ = [
    "CallbackHook",
    "IterationTimer",
    "PeriodicWriter",
    "PeriodicCheckpointer",
    "BestCheckpointer",
    "LRScheduler",
    "ModelEMAHook",
    "PipelineSwitchHook",
    "EvalHook",
    "PreciseBN",
    "TorchProfiler",
]

logger = logging.getLogger(__name__)


class CallbackHook(HookBase):
    """A hook made of plain functions ``f(trainer)``."""

    def __init__(self, *, before_train=None, after_train=None, before_step=None, after_step=None):
        self._before_train = before_train
        self._after_train = after_train
        self._before_step = before_step
        self._after_step = after_step

    def before_train(self) -> None:
        if self._before_train:
            self._before_train(self.trainer)

    def after_train(self) -> None:
        if self._after_train:
            self._after_train(self.trainer)

    def before_step(self) -> None:
        if self._before_step:
            self._before_step(self.trainer)

    def after_step(self) -> None:
        if self._after_step:
            self._after_step(self.trainer)


class IterationTimer(HookBase):
    """
    Put the time of each iteration (``time``, seconds, from before_step to after_step of the
    hooks registered *after* this one's before_step) into the storage, and log the total time
    and speed at the end. Register it first so it times the whole step.

    Args:
        warmup_iter: the first iterations, not timed (slow: allocations, cudnn autotuning).
    """

    def __init__(self, warmup_iter: int = 3):
        self._warmup_iter = warmup_iter
        self._step_timer = Timer()
        self._start_time = time.perf_counter()
        self._total_timer = Timer()

    def before_train(self) -> None:
        self._start_time = time.perf_counter()
        self._total_timer.reset()
        self._total_timer.pause()

    def after_train(self) -> None:
        total_time = time.perf_counter() - self._start_time
        measured = self._total_timer.seconds()
        hooks_time = total_time - measured
        num_iter = self.trainer.iter - self.trainer.start_iter - self._warmup_iter
        if num_iter > 0 and measured > 0:
            logger.info(
                "Overall training speed: %d iterations in %s (%.4f s / it)",
                num_iter,
                datetime.timedelta(seconds=int(measured)),
                measured / num_iter,
            )
        logger.info(
            "Total training time: %s (%s on hooks)",
            datetime.timedelta(seconds=int(total_time)),
            datetime.timedelta(seconds=int(hooks_time)),
        )

    def before_step(self) -> None:
        self._step_timer.reset()
        self._total_timer.resume()

    def after_step(self) -> None:
        iter_done = self.trainer.storage.iter - self.trainer.start_iter + 1
        if iter_done > self._warmup_iter:
            sec = self._step_timer.seconds()
            self.trainer.storage.put_scalars(time=sec)
        else:
            self._start_time = time.perf_counter()
            self._total_timer.reset()
        self._total_timer.pause()


class PeriodicWriter(HookBase):
    """Call ``writer.write()`` of each writer every ``period`` iterations and at the end;
    ``writer.start(start_iter)`` before training, so that writers to files drop what a run
    killed after its last checkpoint wrote for the iterations a resumed run trains again."""

    def __init__(self, writers: Iterable[EventWriter], period: int = 20):
        self._writers = list(writers)
        for w in self._writers:
            if not isinstance(w, EventWriter):
                raise TypeError(f"{w!r} is not an EventWriter")
        self._period = period

    def before_train(self) -> None:
        for writer in self._writers:
            writer.start(self.trainer.start_iter)

    def after_step(self) -> None:
        if (self.trainer.iter + 1) % self._period == 0 or (
            self.trainer.iter == self.trainer.max_iter - 1
        ):
            for writer in self._writers:
                writer.write()

    def after_train(self) -> None:
        for writer in self._writers:
            # write what the last iterations (or a final evaluation) added, then close
            writer.write()
            writer.close()


class PeriodicCheckpointer(HookBase):
    """
    Save ``{file_prefix}_{iter:07d}.pth`` every ``period`` iterations and
    ``{file_prefix}_final.pth`` at the end, through a DetectionCheckpointer (atomic writes).

    Args:
        max_to_keep: keep only the newest this many periodic checkpoints in the directory
            (older ``{file_prefix}_NNNNNNN.pth`` files are deleted; the final one is kept).
    """

    def __init__(
        self,
        checkpointer: Any,
        period: int,
        max_iter: int | None = None,
        max_to_keep: int | None = None,
        file_prefix: str = "model",
    ):
        if period <= 0:
            raise ValueError(f"checkpoint period must be positive, got {period}")
        if max_to_keep is not None and max_to_keep <= 0:
            raise ValueError(f"max_to_keep must be positive, got {max_to_keep}")
        self.checkpointer = checkpointer
        self.period = int(period)
        self.max_iter = max_iter
        self.max_to_keep = max_to_keep
        self.file_prefix = file_prefix

    def before_train(self) -> None:
        if self.max_iter is None:
            self.max_iter = self.trainer.max_iter

    def _prune(self) -> None:
        if self.max_to_keep is None or not comm.is_main_process():
            return
        pattern = re.compile(re.escape(self.file_prefix) + r"_(\d{7})\.pth$")
        save_dir = self.checkpointer.save_dir
        found = sorted(
            (int(m.group(1)), f)
            for f in PathManager.ls(save_dir)
            if (m := pattern.match(f)) is not None
        )
        for _, f in found[: max(len(found) - self.max_to_keep, 0)]:
            PathManager.rm(os.path.join(save_dir, f))

    def step(self, iteration: int) -> None:
        extra = {"iteration": int(iteration)}
        if (iteration + 1) % self.period == 0:
            self.checkpointer.save(f"{self.file_prefix}_{iteration:07d}", **extra)
            self._prune()
        if self.max_iter is not None and iteration >= self.max_iter - 1:
            self.checkpointer.save(f"{self.file_prefix}_final", **extra)

    def after_step(self) -> None:
        self.step(self.trainer.iter)


class BestCheckpointer(HookBase):
    """
    After each evaluation (every ``eval_period`` iterations), save ``{file_prefix}.pth`` if the
    metric ``val_metric`` (as put into the storage by EvalHook, e.g. ``"dota/mAP"``)
    improved. Register it after the EvalHook.

    Args:
        mode: "max" or "min".
    """

    def __init__(
        self,
        eval_period: int,
        checkpointer: Any,
        val_metric: str,
        mode: str = "max",
        file_prefix: str = "model_best",
    ):
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self._period = eval_period
        self._checkpointer = checkpointer
        self._val_metric = val_metric
        self._compare = (lambda a, b: a > b) if mode == "max" else (lambda a, b: a < b)
        self._file_prefix = file_prefix
        self.best_metric: float | None = None
        self.best_iter: int | None = None

    def state_dict(self) -> dict:
        return {"best_metric": self.best_metric, "best_iter": self.best_iter}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best_metric = state_dict.get("best_metric")
        self.best_iter = state_dict.get("best_iter")

    def _best_checking(self) -> None:
        latest = self.trainer.storage.latest()
        if self._val_metric not in latest:
            logger.warning(
                "BestCheckpointer: metric %r not found among %s; is EvalHook registered "
                "before it and does the evaluator report it?",
                self._val_metric,
                sorted(latest),
            )
            return
        value, metric_iter = latest[self._val_metric]
        if not math.isfinite(value):
            logger.warning("BestCheckpointer: %s is %s, not saving.", self._val_metric, value)
            return
        if self.best_metric is None or self._compare(value, self.best_metric):
            prev = self.best_metric
            self.best_metric, self.best_iter = value, metric_iter
            self._checkpointer.save(self._file_prefix, iteration=metric_iter)
            logger.info(
                "Saved best model: %s = %.5f at iteration %d (previous best: %s)",
                self._val_metric,
                value,
                metric_iter,
                prev,
            )

    def after_step(self) -> None:
        next_iter = self.trainer.iter + 1
        if (
            self._period > 0
            and next_iter % self._period == 0
            and next_iter != self.trainer.max_iter
        ):
            self._best_checking()

    def after_train(self) -> None:
        if self.trainer.iter + 1 >= self.trainer.max_iter:
            self._best_checking()


class LRScheduler(HookBase):
    """
    Step a torch LR scheduler after every iteration and put the learning rate used in that
    iteration (``lr``, of the param group holding the most parameters with the base lr) into
    the storage. The scheduler state is saved with the trainer.
    """

    def __init__(self, optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None):
        self._optimizer = optimizer
        self._scheduler = scheduler

    def before_train(self) -> None:
        optimizer = self._optimizer or getattr(self.trainer, "optimizer", None)
        if optimizer is None:
            raise ValueError("LRScheduler hook needs an optimizer (given, or the trainer's)")
        if self._scheduler is None:
            raise ValueError("LRScheduler hook needs a scheduler")
        self._optimizer = optimizer
        self._best_param_group_id = LRScheduler.get_best_param_group_id(optimizer)

    @staticmethod
    def get_best_param_group_id(optimizer: torch.optim.Optimizer) -> int:
        # the group with the largest lr, among those the most parameters: its lr is the
        # "base" lr users expect to see (groups with lr factors or no decay are smaller).
        largest = max(len(g["params"]) for g in optimizer.param_groups)
        best_lr = max(g["lr"] for g in optimizer.param_groups if len(g["params"]) == largest)
        for i, g in enumerate(optimizer.param_groups):
            if len(g["params"]) == largest and g["lr"] == best_lr:
                return i
        return 0

    def after_step(self) -> None:
        if self._optimizer is None:
            raise RuntimeError("LRScheduler.after_step called before before_train")
        lr = self._optimizer.param_groups[self._best_param_group_id]["lr"]
        self.trainer.storage.put_scalar("lr", lr, smoothing_hint=False)
        self._scheduler.step()

    @property
    def scheduler(self) -> Any:
        return self._scheduler

    def state_dict(self) -> dict:
        return self._scheduler.state_dict() if self._scheduler is not None else {}

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict:
            logger.info("Loading scheduler from state_dict ...")
            self._scheduler.load_state_dict(state_dict)


class ModelEMAHook(HookBase):
    """
    Keep a :class:`~rotated_det.engine.model_ema.ModelEMA` of the trainer's model: reset it from
    the model's weights when training starts (unless it was restored from a checkpoint), update
    it after every iteration (one iteration = one optimizer step, also with gradient
    accumulation). Register it before the hooks that save or evaluate, so that they see this
    iteration's average. Its state is saved by the checkpointer (``model_ema`` checkpointable,
    as DefaultTrainer does), not by this hook.
    """

    def __init__(self, model_ema: ModelEMA):
        self.model_ema = model_ema

    def before_train(self) -> None:
        if not self.model_ema.initialized:
            if self.trainer.start_iter > 0:
                logger.warning(
                    "Model EMA: nothing restored for iteration %d (the checkpoint has no "
                    "'model_ema' entry); the average starts from the current weights.",
                    self.trainer.start_iter,
                )
            self.model_ema.reset()
        logger.info(
            "Model EMA: decay %g, tau %g, %d updates so far.",
            self.model_ema.decay,
            self.model_ema.tau,
            self.model_ema.updates,
        )

    def after_step(self) -> None:
        self.model_ema.update()


class PipelineSwitchHook(HookBase):
    """
    From iteration ``switch_iter`` on, map the training images with ``mapper`` instead of the
    loader's own (MMDetection's ``PipelineSwitchHook``: RTMDet trains its last epochs without
    mosaic and mixup, on images closer to the test images). The loader must have
    ``set_mapper`` (:class:`~rotated_det.data.TrainDataLoader`): its workers restart with the new
    mapper before the batch of ``switch_iter``, at the same data positions.

    The switch follows from the iteration alone, so it needs no saved state: a run resumed at or
    past ``switch_iter`` switches before its first batch.

    Args:
        switch_iter: the first iteration trained on ``mapper``'s images.
        mapper: dataset dict -> model input, e.g. a ``DatasetMapper`` without mosaic/mixup.
        data_loader: the loader to switch; default the trainer's ``data_loader``.
    """

    def __init__(self, switch_iter: int, mapper: Callable, data_loader: Any = None):
        if int(switch_iter) != switch_iter or switch_iter < 0:
            raise ValueError(f"switch_iter must be an integer >= 0, got {switch_iter!r}")
        self.switch_iter = int(switch_iter)
        self.mapper = mapper
        self.data_loader = data_loader
        self.switched = False

    def before_step(self) -> None:
        if self.switched or self.trainer.iter < self.switch_iter:
            return
        loader = self.data_loader
        if loader is None:
            loader = getattr(self.trainer, "data_loader", None)
        if not callable(getattr(loader, "set_mapper", None)):
            raise TypeError(
                f"PipelineSwitchHook needs a train loader with set_mapper() (TrainDataLoader, "
                f"built by build_detection_train_loader), got {type(loader).__name__}"
            )
        loader.set_mapper(self.mapper)
        self.switched = True
        logger.info(
            "Pipeline switch at iteration %d (from %d on): training images are now mapped by %r.",
            self.trainer.iter,
            self.switch_iter,
            self.mapper,
        )


def _flatten_results(results: Mapping, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in results.items():
        key = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(_flatten_results(v, key))
        else:
            out[key] = v
    return out


class EvalHook(HookBase):
    """
    Run ``eval_function()`` every ``eval_period`` iterations and after the last one; put its
    (nested dict of numbers) results into the storage as ``"task/metric"`` scalars.

    The RNG states are restored after evaluation, so that evaluating does not change the
    random numbers training sees (a resumed run then matches an uninterrupted one).
    """

    def __init__(self, eval_period: int, eval_function: Callable[[], Any], eval_after_train=True):
        self._period = eval_period
        self._func = eval_function
        self._eval_after_train = eval_after_train

    def _do_eval(self) -> None:
        rng = get_rng_state()
        try:
            results = self._func()
        finally:
            set_rng_state(rng)
        if results:
            if not isinstance(results, Mapping):
                raise TypeError(f"eval_function should return a dict, got {results!r}")
            flat = _flatten_results(results)
            for k, v in flat.items():
                try:
                    flat[k] = float(v)
                except (TypeError, ValueError) as e:
                    raise ValueError(
                        f"[EvalHook] eval_function should return a nested dict of numbers; "
                        f"{k} = {v!r} is not a number"
                    ) from e
            self.trainer.storage.put_scalars(**flat, smoothing_hint=False)
        # all ranks wait for the evaluation to finish before training on
        comm.synchronize()

    def after_step(self) -> None:
        next_iter = self.trainer.iter + 1
        if (
            self._period > 0
            and next_iter % self._period == 0
            and next_iter != self.trainer.max_iter
        ):
            self._do_eval()

    def after_train(self) -> None:
        # only if training finished (not on an exception)
        if self._eval_after_train and self.trainer.iter + 1 >= self.trainer.max_iter:
            self._do_eval()
        # break the reference cycle through the closure
        del self._func


class PreciseBN(HookBase):
    """
    Recompute BatchNorm running statistics with the current weights over ``num_iter`` batches
    (fvcore's ``update_bn_stats``) every ``period`` iterations and after training. Useful when
    BN statistics lag behind the weights (small batches, high lr).

    Args:
        data_loader: an iterable of training batches (it is iterated afresh each time).
    """

    def __init__(self, period: int, model: torch.nn.Module, data_loader: Iterable, num_iter: int):
        from fvcore.nn.precise_bn import get_bn_modules

        self._period = period
        self._model = model
        self._data_loader = data_loader
        self._num_iter = num_iter
        self._disabled = False
        if len(get_bn_modules(model)) == 0:
            logger.info("PreciseBN is disabled: the model has no BatchNorm layer in train mode.")
            self._disabled = True

    def after_step(self) -> None:
        next_iter = self.trainer.iter + 1
        is_final = next_iter == self.trainer.max_iter
        if is_final or (self._period > 0 and next_iter % self._period == 0):
            self.update_stats()

    def update_stats(self) -> None:
        if self._disabled:
            return
        from fvcore.nn.precise_bn import update_bn_stats

        logger.info("Running PreciseBN for %d iterations ...", self._num_iter)
        with torch.no_grad():
            update_bn_stats(self._model, iter(self._data_loader), self._num_iter)


class TorchProfiler(HookBase):
    """
    Profile the iterations where ``enable_predicate(trainer)`` is true with torch.profiler
    and write a Chrome trace (``profiler-trace-iter{N}.json``) to ``output_dir``, plus a
    TensorBoard trace if ``save_tensorboard``.
    """

    def __init__(
        self,
        enable_predicate: Callable[[Any], bool],
        output_dir: str,
        *,
        activities: Iterable | None = None,
        save_tensorboard: bool = False,
        record_shapes: bool = False,
    ):
        self._enable_predicate = enable_predicate
        self._activities = activities
        self._output_dir = output_dir
        self._save_tensorboard = save_tensorboard
        self._record_shapes = record_shapes
        self._profiler: torch.profiler.profile | None = None

    def before_step(self) -> None:
        if not self._enable_predicate(self.trainer):
            self._profiler = None
            return
        activities = self._activities
        if activities is None:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if torch.cuda.is_available():
                activities.append(torch.profiler.ProfilerActivity.CUDA)
        on_trace_ready = None
        if self._save_tensorboard:
            on_trace_ready = torch.profiler.tensorboard_trace_handler(
                os.path.join(self._output_dir, f"log/profiler-tensorboard-iter{self.trainer.iter}"),
                f"worker{comm.get_rank()}",
            )
        self._profiler = torch.profiler.profile(
            activities=activities,
            on_trace_ready=on_trace_ready,
            record_shapes=self._record_shapes,
        )
        self._profiler.__enter__()

    def after_step(self) -> None:
        if self._profiler is None:
            return
        self._profiler.__exit__(None, None, None)
        if not self._save_tensorboard:
            PathManager.mkdirs(self._output_dir)
            out = os.path.join(self._output_dir, f"profiler-trace-iter{self.trainer.iter}.json")
            if "://" not in out:
                self._profiler.export_chrome_trace(out)
            else:
                local = f"/tmp/profiler-trace-{os.getpid()}.json"
                self._profiler.export_chrome_trace(local)
                with open(local) as f, PathManager.open(out, "w") as g:
                    g.write(f.read())
                os.remove(local)
        self._profiler = None
