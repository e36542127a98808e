"""DefaultTrainer: model, data, optimizer, schedule, checkpoints and hooks from a LazyConfig."""

import copy
import logging
import os
import weakref
from collections.abc import Mapping
from typing import Any

import torch
from omegaconf import DictConfig

from rotated_det.checkpoint import DetectionCheckpointer
from rotated_det.config import instantiate, select
from rotated_det.data import MetadataCatalog
from rotated_det.evaluation.evaluator import inference_on_dataset
from rotated_det.modeling.config_checks import ModelConfigError, check_model_config
from rotated_det.solver import LRMultiplier
from rotated_det.utils import comm
from rotated_det.utils.events import CommonMetricPrinter, JSONWriter, TensorboardXWriter
from rotated_det.utils.logger import setup_logger

from . import hooks
from .defaults import convert_sync_bn, create_ddp_model, freeze_parameters
from .model_ema import ModelEMA
from .test_time_augmentation import build_tta_model
from .train_loop import AMPTrainer, SimpleTrainer, TrainerBase

__all__ = [
    "DefaultTrainer",
    "apply_auto_scale_lr",
    "check_model_against_datasets",
    "dataset_names",
]

logger = logging.getLogger(__name__)


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _put_model_in_optimizer_cfg(opt_cfg: Any, model: torch.nn.Module) -> Any:
    """Return a copy of the optimizer config whose parameters come from ``model``:
    ``params.model = model`` when ``params`` is a LazyCall (e.g. get_default_optimizer_params),
    ``params = model.parameters()`` when it is missing/None; wrappers (an ``optimizer`` key,
    e.g. maybe_add_gradient_clipping) are followed."""
    opt_cfg = copy.deepcopy(opt_cfg)
    node = opt_cfg
    while "params" not in node and isinstance(node.get("optimizer"), (Mapping, DictConfig)):
        node = node["optimizer"]
    params = node.get("params", None)
    if isinstance(params, (Mapping, DictConfig)) and "_target_" in params:
        node["params"]["model"] = model
    elif params is None:
        node["params"] = list(model.parameters())
    else:
        raise ValueError(
            "optimizer.params must be a LazyCall taking `model` (e.g. "
            "get_default_optimizer_params) or null, got " + repr(params)
        )
    return opt_cfg


def dataset_names(loader_cfg: Any) -> list[str]:
    """Names of the registered datasets a (lazy) data loader config reads: every ``names``
    argument (``get_detection_dataset_dicts(names=...)``, usually at ``dataset.names``) found
    below ``loader_cfg``, in order, without duplicates. ``[]`` when there is none (e.g. a loader
    over an in-memory list)."""
    found: list[str] = []

    def walk(node: Any, depth: int) -> None:
        if depth > 8:
            return
        if isinstance(node, (Mapping, DictConfig)):
            for key in list(node.keys()):
                try:
                    value = node[key]
                except Exception:  # noqa: BLE001 - unresolvable interpolation / missing value
                    continue
                if key == "names":
                    values = [value] if isinstance(value, str) else value
                    if isinstance(values, (list, tuple)) or type(values).__name__ == "ListConfig":
                        for v in values:
                            if isinstance(v, str) and v not in found:
                                found.append(v)
                    continue
                walk(value, depth + 1)
        elif isinstance(node, (list, tuple)) or type(node).__name__ == "ListConfig":
            for value in node:
                walk(value, depth + 1)

    walk(loader_cfg, 0)
    return found


def check_model_against_datasets(model: Any, cfg: DictConfig, split: str) -> list[str]:
    """Run :func:`rotated_det.modeling.check_model_config` on ``model`` (the lazy ``cfg.model``
    or a built model) against the ``thing_classes`` in the metadata of each dataset that
    ``cfg.dataloader.<split>`` reads. Datasets whose metadata has no ``thing_classes`` (not
    registered yet, or unlabeled) are left out; the model is still checked for internal
    consistency. Returns the names checked against.

    Raises:
        ModelConfigError: naming the config keys that disagree and the dataset.
    """
    names = dataset_names(select(cfg, f"dataloader.{split}", None))
    registered = set(MetadataCatalog.list())
    checked = []
    for name in names:
        classes = MetadataCatalog.get(name).get("thing_classes") if name in registered else None
        if classes is None:
            logger.info(
                "Dataset '%s' (dataloader.%s) has no thing_classes in its metadata yet; the "
                "model's class count is not checked against it.",
                name,
                split,
            )
            continue
        try:
            check_model_config(model, thing_classes=list(classes), prefix="model")
        except ModelConfigError as e:
            raise ModelConfigError(
                f"{e}\n(dataset '{name}' read by dataloader.{split}; fix the model's num_classes "
                f"keys or the dataset names, e.g. on the command line: "
                f"model.roi_heads.num_classes={len(classes)})"
            ) from None
        checked.append(name)
    if not checked:
        check_model_config(model, prefix="model")
    return checked


def apply_auto_scale_lr(cfg: DictConfig, optimizer: torch.optim.Optimizer) -> float:
    """
    The linear scaling rule, opt-in (``train.auto_scale_lr=dict(enabled=True,
    base_batch_size=B)``, as MMEngine's ``auto_scale_lr``): multiply the lr of every param group
    of ``optimizer`` by ``dataloader.train.total_batch_size * train.grad_accum_steps / B``, the
    images per optimizer step over the batch size the config's lr was chosen for. Call once,
    before the LR scheduler is built (it records the scaled lr as its base). Logs the old and
    new lr.

    Returns:
        the factor applied (1.0 when disabled).

    Raises:
        ValueError: naming the missing or invalid key.
    """
    spec = select(cfg, "train.auto_scale_lr", None)
    if spec is None or spec is False:
        return 1.0
    if not isinstance(spec, (Mapping, DictConfig)):
        raise ValueError(
            f"train.auto_scale_lr must be a dict(enabled=..., base_batch_size=...), got {spec!r}"
        )
    if not spec.get("enabled", False):
        return 1.0
    base = spec.get("base_batch_size", None)
    if not base or int(base) <= 0:
        raise ValueError(
            "train.auto_scale_lr.base_batch_size must be set to the total batch size (images "
            f"per optimizer step) that optimizer.lr was chosen for, got {base!r}"
        )
    total = select(cfg, "dataloader.train.total_batch_size", None)
    if not total:
        raise ValueError(
            "train.auto_scale_lr needs dataloader.train.total_batch_size (images per step "
            "over all processes); this config's dataloader.train has none"
        )
    accum = int(select(cfg, "train.grad_accum_steps", 1) or 1)
    factor = int(total) * accum / int(base)
    group = optimizer.param_groups[hooks.LRScheduler.get_best_param_group_id(optimizer)]
    old_lr = group["lr"]
    for g in optimizer.param_groups:
        g["lr"] = g["lr"] * factor
    logger.info(
        "train.auto_scale_lr: %d images per optimizer step (dataloader.train.total_batch_size="
        "%d x train.grad_accum_steps=%d) vs base_batch_size=%d: lr %g -> %g (x%g, all %d "
        "param groups).",
        int(total) * accum,
        int(total),
        accum,
        int(base),
        old_lr,
        group["lr"],
        factor,
        len(optimizer.param_groups),
    )
    return factor


class DefaultTrainer(TrainerBase):
    """
    A trainer with the standard behaviour, built from a LazyConfig with keys:

    * ``model``: the model (LazyCall); moved to ``train.device`` (default: cuda if available).
    * ``dataloader.train``, ``dataloader.test``, ``dataloader.evaluator``.
    * ``optimizer``: its ``params`` (LazyCall of get_default_optimizer_params, or null) gets
      the model.
    * ``lr_multiplier``: an fvcore ParamScheduler over training progress, e.g.
      ``L(multistep_with_warmup)(...)``.
    * ``train``: ``output_dir``, ``init_checkpoint``, ``max_iter``, ``amp.enabled``, ``ddp``
      (DDP kwargs), ``checkpointer.period/max_to_keep``, ``eval_period``, ``log_period``,
      ``device``, ``seed`` (used by default_setup), optional ``best_checkpointer``
      (``val_metric``, ``mode``), ``precise_bn`` (``enabled``, ``num_iter``),
      ``tensorboard`` (bool), and the options below (all off by default).
    * ``train.grad_accum_steps``: N micro-batches per optimizer step (see SimpleTrainer);
      ``max_iter`` counts optimizer steps.
    * ``train.auto_scale_lr``: the linear lr scaling rule (:func:`apply_auto_scale_lr`).
    * ``train.model_ema``: ``enabled``, ``decay``, ``tau``: an EMA of the weights
      (:mod:`rotated_det.engine.model_ema`), saved as ``model_ema`` in checkpoints and used by
      evaluation.
    * ``train.sync_bn``: BatchNorm -> SyncBatchNorm when several CUDA processes train
      (:func:`~rotated_det.engine.defaults.convert_sync_bn`).
    * ``train.freeze``: parameter-name prefixes to freeze
      (:func:`~rotated_det.engine.defaults.freeze_parameters`).
    * ``train.pipeline_switch``: ``last_iters``, ``mapper``: the last ``last_iters`` iterations
      map their images with ``mapper`` (a LazyCall), e.g. without mosaic and mixup
      (:class:`~rotated_det.engine.hooks.PipelineSwitchHook`); PreciseBN's own loader switches
      at the same iteration.

    Hooks: IterationTimer, LRScheduler, [PipelineSwitchHook], [ModelEMAHook], [PreciseBN, after
    a PipelineSwitchHook of its loader], PeriodicCheckpointer (main process), EvalHook,
    [BestCheckpointer], PeriodicWriter (console, metrics.json, TensorBoard).

    Usage::

        trainer = DefaultTrainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        trainer.train()
    """

    def __init__(self, cfg: DictConfig):
        super().__init__()
        if not logging.getLogger("rotated_det").handlers:
            setup_logger()
        self.cfg = cfg
        # Fail on a model that cannot match its data before building anything (the test split
        # too: better now than at the first evaluation, hours into training).
        self.check_config(cfg, splits=("train", "test"))
        model = self.build_model(cfg)
        model = convert_sync_bn(model, bool(select(cfg, "train.sync_bn", False)))
        freeze_parameters(model, select(cfg, "train.freeze", None))
        optimizer = self.build_optimizer(cfg, model)
        self.lr_scale = apply_auto_scale_lr(cfg, optimizer)
        self.model_ema = self.build_model_ema(cfg, model)
        data_loader = self.build_train_loader(cfg)
        ddp_kwargs = dict(select(cfg, "train.ddp", None) or {})
        ddp_kwargs.setdefault("broadcast_buffers", False)
        model = create_ddp_model(model, **ddp_kwargs)
        accum = select(cfg, "train.grad_accum_steps", 1)
        if select(cfg, "train.amp.enabled", False):
            self._trainer: SimpleTrainer = AMPTrainer(
                model, data_loader, optimizer, grad_accum_steps=accum
            )
        else:
            self._trainer = SimpleTrainer(model, data_loader, optimizer, grad_accum_steps=accum)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        extra: dict[str, Any] = {}
        if self.model_ema is not None:
            extra["model_ema"] = self.model_ema
        self.checkpointer = DetectionCheckpointer(
            model,
            cfg.train.output_dir,
            allow_unsafe=bool(select(cfg, "train.allow_unsafe_checkpoint", False)),
            optimizer=optimizer,
            trainer=weakref.proxy(self),
            **extra,
        )
        self.start_iter = 0
        self.max_iter = int(cfg.train.max_iter)
        self._last_eval_results: dict = {}
        self.register_hooks(self.build_hooks())
        # the inner trainer's run_step calls after_backward: let it run this trainer's hooks
        self._trainer._hooks = self._hooks

    # --------------------------------------------------------------- building blocks
    @classmethod
    def check_config(
        cls, cfg: DictConfig, splits: tuple[str, ...] = ("train", "test")
    ) -> list[str]:
        """Check ``cfg.model`` (class counts, box coder weights) against the metadata of the
        datasets that ``dataloader.<split>`` reads for each split in the config; see
        :func:`check_model_against_datasets`. Called by ``__init__`` (train and test) and by
        ``tools/lazyconfig_train_net.py --eval-only`` (test). Returns the dataset names checked.

        Raises:
            ModelConfigError: the message names the keys that disagree and the dataset.
        """
        if select(cfg, "model", None) is None:
            return []
        present = [s for s in splits if select(cfg, f"dataloader.{s}", None) is not None]
        if not present:
            check_model_config(cfg.model, prefix="model")
        checked: list[str] = []
        for split in present:
            checked += check_model_against_datasets(cfg.model, cfg, split)
        return checked

    @classmethod
    def build_model(cls, cfg: DictConfig) -> torch.nn.Module:
        model = instantiate(cfg.model)
        device = select(cfg, "train.device", None) or _default_device()
        model.to(device)
        logger.info("Model:\n%s", model)
        return model

    @classmethod
    def build_optimizer(cls, cfg: DictConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
        return instantiate(_put_model_in_optimizer_cfg(cfg.optimizer, model))

    @classmethod
    def build_model_ema(cls, cfg: DictConfig, model: torch.nn.Module) -> ModelEMA | None:
        """A :class:`ModelEMA` of ``model`` when ``train.model_ema.enabled`` (``decay``,
        ``tau``), else None."""
        if not select(cfg, "train.model_ema.enabled", False):
            return None
        return ModelEMA(
            model,
            decay=float(select(cfg, "train.model_ema.decay", 0.9998)),
            tau=float(select(cfg, "train.model_ema.tau", 2000)),
        )

    @classmethod
    def build_train_loader(cls, cfg: DictConfig):
        return instantiate(cfg.dataloader.train)

    @classmethod
    def build_pipeline_switch(cls, cfg: DictConfig, max_iter: int):
        """A :class:`~rotated_det.engine.hooks.PipelineSwitchHook` at iteration
        ``max_iter - train.pipeline_switch.last_iters`` with ``train.pipeline_switch.mapper``, or
        None when the config has no ``train.pipeline_switch`` (or it is null).

        Raises:
            ValueError: naming the key, when ``last_iters`` or ``mapper`` is missing or invalid.
        """
        spec = select(cfg, "train.pipeline_switch", None)
        if spec is None:
            return None
        last = spec.get("last_iters", None)
        if last is None or int(last) != last or not 0 <= int(last) <= max_iter:
            raise ValueError(
                "train.pipeline_switch.last_iters must be an integer in [0, train.max_iter="
                f"{max_iter}], got {last!r}"
            )
        if spec.get("mapper", None) is None:
            raise ValueError(
                "train.pipeline_switch.mapper must be the mapper of the last iterations (a "
                "LazyCall, e.g. L(DatasetMapper)(...)); set train.pipeline_switch=None to train "
                "without a switch"
            )
        return hooks.PipelineSwitchHook(max_iter - int(last), instantiate(spec.mapper))

    @classmethod
    def build_lr_scheduler(cls, cfg: DictConfig, optimizer: torch.optim.Optimizer):
        multiplier = select(cfg, "lr_multiplier", None)
        if multiplier is None:
            from fvcore.common.param_scheduler import ConstantParamScheduler

            multiplier = ConstantParamScheduler(1.0)
        else:
            multiplier = instantiate(multiplier)
        return LRMultiplier(optimizer, multiplier=multiplier, max_iter=int(cfg.train.max_iter))

    def build_writers(self) -> list:
        out = self.cfg.train.output_dir
        writers = [
            CommonMetricPrinter(self.max_iter),
            JSONWriter(os.path.join(out, "metrics.json")),
        ]
        if select(self.cfg, "train.tensorboard", True):
            writers.append(TensorboardXWriter(out))
        return writers

    def build_hooks(self) -> list[hooks.HookBase]:
        cfg = self.cfg
        eval_period = int(select(cfg, "train.eval_period", 0) or 0)
        ret: list = [hooks.IterationTimer(), hooks.LRScheduler(scheduler=self.scheduler)]
        switch = self.build_pipeline_switch(cfg, self.max_iter)
        if switch is not None:
            ret.append(switch)
        if self.model_ema is not None:  # before the hooks that save or evaluate
            ret.append(hooks.ModelEMAHook(self.model_ema))
        if select(cfg, "train.precise_bn.enabled", False):
            precise_bn_loader = self.build_train_loader(cfg)
            if switch is not None:  # BN statistics of the images the model trains on by then
                ret.append(
                    hooks.PipelineSwitchHook(
                        switch.switch_iter, switch.mapper, data_loader=precise_bn_loader
                    )
                )
            ret.append(
                hooks.PreciseBN(
                    eval_period,
                    self.model,
                    precise_bn_loader,
                    int(select(cfg, "train.precise_bn.num_iter", 200)),
                )
            )
        if comm.is_main_process():
            ret.append(
                hooks.PeriodicCheckpointer(
                    self.checkpointer,
                    period=int(select(cfg, "train.checkpointer.period", 5000)),
                    max_iter=self.max_iter,
                    max_to_keep=select(cfg, "train.checkpointer.max_to_keep", None),
                )
            )
        ret.append(hooks.EvalHook(eval_period, self._eval_and_remember))
        val_metric = select(cfg, "train.best_checkpointer.val_metric", None)
        if val_metric and comm.is_main_process():
            ret.append(
                hooks.BestCheckpointer(
                    eval_period,
                    self.checkpointer,
                    val_metric,
                    mode=select(cfg, "train.best_checkpointer.mode", "max"),
                )
            )
        if comm.is_main_process():
            period = int(select(cfg, "train.log_period", 20))
            ret.append(hooks.PeriodicWriter(self.build_writers(), period=period))
        return ret

    def _eval_and_remember(self) -> dict:
        if self.model_ema is None:
            self._last_eval_results = self.test(self.cfg, self.model)
        else:
            logger.info("Evaluating the EMA weights (%d updates).", self.model_ema.updates)
            with self.model_ema.swapped_in():
                self._last_eval_results = self.test(self.cfg, self.model)
        return self._last_eval_results

    # --------------------------------------------------------------- running
    @property
    def model(self) -> torch.nn.Module:
        return self._trainer.model

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self._trainer.optimizer

    @property
    def data_loader(self):
        return self._trainer.data_loader

    def resume_or_load(self, resume: bool = True) -> None:
        """
        With ``resume`` and a ``last_checkpoint`` in ``train.output_dir``: restore model,
        optimizer, scheduler, iteration, RNG and data loader state (if it has one) and continue
        at the next iteration. Otherwise load only weights from ``train.init_checkpoint``.
        """
        had = resume and self.checkpointer.has_checkpoint()
        self.checkpointer.resume_or_load(
            select(self.cfg, "train.init_checkpoint", "") or "", resume=resume
        )
        if had:
            self.start_iter = self.iter + 1
            logger.info("Resuming at iteration %d", self.start_iter)
            if not hasattr(self.data_loader, "load_state_dict"):
                logger.info(
                    "The train data loader has no state_dict()/load_state_dict(): its data "
                    "order restarts on resume (weights, optimizer, lr and RNG are restored "
                    "exactly)."
                )

    # Detectron2's API: train() runs the configured schedule (TrainerBase.train takes the range).
    def train(self) -> dict:  # type: ignore[override]
        """Train from ``start_iter`` to ``train.max_iter``; returns the last eval results."""
        super().train(self.start_iter, self.max_iter)
        return self._last_eval_results

    def run_step(self) -> None:
        self._trainer.iter = self.iter
        self._trainer.run_step()

    def state_dict(self) -> dict:
        ret = self._trainer.state_dict()
        ret.update(super().state_dict())
        return ret

    def load_state_dict(self, state_dict: Mapping) -> None:
        super().load_state_dict(state_dict)
        self._trainer.load_state_dict(state_dict)

    @classmethod
    def test(cls, cfg: DictConfig, model: torch.nn.Module) -> dict:
        """
        Evaluate ``model`` on ``dataloader.test`` with ``dataloader.evaluator``; return the
        results (on the main process; ``{}`` if the config has no test loader/evaluator). With
        ``train.tta.enabled``, ``model`` is evaluated with test-time augmentation
        (:func:`~rotated_det.engine.test_time_augmentation.build_tta_model`).
        """
        dl = select(cfg, "dataloader", None)
        if dl is None or "test" not in dl or "evaluator" not in dl:
            logger.warning("No dataloader.test / dataloader.evaluator in the config; skip eval.")
            return {}
        data_loader = instantiate(dl.test)
        evaluator = instantiate(dl.evaluator)
        model = build_tta_model(model, select(cfg, "train.tta", None))
        results = inference_on_dataset(model, data_loader, evaluator)
        if comm.is_main_process() and results:
            logger.info("Evaluation results:\n%s", _format_results(results))
        return results


def _format_results(results: Mapping, indent: int = 0) -> str:
    lines = []
    for k, v in results.items():
        if isinstance(v, Mapping):
            lines.append(" " * indent + f"{k}:")
            lines.append(_format_results(v, indent + 2))
        elif isinstance(v, float):
            lines.append(" " * indent + f"{k}: {v:.4f}")
        else:
            lines.append(" " * indent + f"{k}: {v}")
    return "\n".join(lines)
