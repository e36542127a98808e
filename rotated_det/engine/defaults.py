"""Command-line entry helpers: argument parser, process setup, DDP wrapping."""

import argparse
import logging
import os
import sys
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from rotated_det.config import LazyConfig, select
from rotated_det.utils import comm
from rotated_det.utils.collect_env import collect_env_info
from rotated_det.utils.env import seed_all_rng
from rotated_det.utils.file_io import PathManager
from rotated_det.utils.logger import setup_logger

__all__ = [
    "default_argument_parser",
    "default_setup",
    "create_ddp_model",
    "convert_sync_bn",
    "freeze_parameters",
]


def default_argument_parser(epilog: str | None = None) -> argparse.ArgumentParser:
    """
    The common command line of the tools::

        --config-file FILE [--resume] [--eval-only] [--num-gpus N] [--num-machines M]
        [--machine-rank R] [--dist-url URL] [key=value overrides ...]

    Overrides use Hydra's grammar (``train.max_iter=300 optimizer.lr=0.01``).
    """
    parser = argparse.ArgumentParser(
        epilog=epilog
        or (
            "Examples:\n"
            "  Train on 1 machine with 8 GPUs:\n"
            "    $ tools/lazyconfig_train_net.py --num-gpus 8 --config-file cfg.py\n"
            "  Evaluate a model:\n"
            "    $ tools/lazyconfig_train_net.py --config-file cfg.py --eval-only "
            "train.init_checkpoint=/path/to/model.pth\n"
            "  Two machines:\n"
            "    (machine0)$ tools/lazyconfig_train_net.py --machine-rank 0 --num-machines 2 "
            "--dist-url tcp://MACHINE0:PORT [...]\n"
            "    (machine1)$ tools/lazyconfig_train_net.py --machine-rank 1 --num-machines 2 "
            "--dist-url tcp://MACHINE0:PORT [...]\n"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to config file")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last checkpoint in train.output_dir (if any); otherwise "
        "start from train.init_checkpoint",
    )
    parser.add_argument("--eval-only", action="store_true", help="only evaluate")
    parser.add_argument(
        "--num-gpus",
        type=int,
        default=1,
        help="processes per machine (one GPU each; on a CPU-only machine, CPU processes)",
    )
    parser.add_argument("--num-machines", type=int, default=1, help="total number of machines")
    parser.add_argument(
        "--machine-rank", type=int, default=0, help="the rank of this machine (unique per machine)"
    )
    parser.add_argument(
        "--dist-url",
        default="auto",
        help="initialization URL for torch.distributed, e.g. tcp://HOST:PORT; 'auto' picks a "
        "free local port (single machine only)",
    )
    parser.add_argument(
        "opts",
        help="config overrides in Hydra's grammar, e.g. train.max_iter=300 optimizer.lr=0.01",
        default=None,
        nargs=argparse.REMAINDER,
    )
    return parser


def default_setup(cfg: Any, args: argparse.Namespace | None = None) -> None:
    """
    Prepare a run: create ``train.output_dir``, log to ``log.txt`` there (rank 0 also to the
    console), log the environment, command line and config, save the config
    (``config.yaml``), and seed all RNGs with ``train.seed`` (+ rank; a negative or missing
    seed draws one).
    """
    output_dir = select(cfg, "train.output_dir")
    rank = comm.get_rank()
    if comm.is_main_process() and output_dir:
        PathManager.mkdirs(output_dir)
    setup_logger(output_dir, distributed_rank=rank, name="fvcore")
    logger = setup_logger(output_dir, distributed_rank=rank)
    logger.info("Rank of current process: %d. World size: %d", rank, comm.get_world_size())
    logger.info("Environment info:\n%s", collect_env_info())
    logger.info("Command line: %s", " ".join(sys.argv))
    if args is not None:
        logger.info("Command line arguments: %s", args)
        if getattr(args, "config_file", ""):
            with PathManager.open(args.config_file, "r") as f:
                logger.info("Contents of config file %s:\n%s", args.config_file, f.read())
    if comm.is_main_process() and output_dir:
        path = LazyConfig.save(cfg, os.path.join(output_dir, "config.yaml"))
        logger.info("Full config saved to %s", path)
    seed = select(cfg, "train.seed", -1)
    seed_all_rng(None if seed is None or seed < 0 else seed + rank)
    cudnn_benchmark = select(cfg, "train.cudnn_benchmark", False)
    if not (args is not None and getattr(args, "eval_only", False)):
        torch.backends.cudnn.benchmark = bool(cudnn_benchmark)


def create_ddp_model(
    model: torch.nn.Module, *, fp16_compression: bool = False, **kwargs: Any
) -> torch.nn.Module:
    """
    Wrap ``model`` in DistributedDataParallel when running distributed (else return it).

    Args:
        fp16_compression: compress gradients to float16 for the all-reduce (NCCL).
        kwargs: passed to DistributedDataParallel (e.g. ``find_unused_parameters``,
            ``broadcast_buffers``).
    """
    if comm.get_world_size() == 1:
        return model
    if "device_ids" not in kwargs and torch.cuda.is_available():
        kwargs["device_ids"] = [comm.get_local_rank()]
    ddp = DistributedDataParallel(model, **kwargs)
    if fp16_compression:
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

        ddp.register_comm_hook(state=None, hook=default_hooks.fp16_compress_hook)
    logging.getLogger(__name__).info("Model wrapped in DistributedDataParallel (%s)", kwargs)
    return ddp


def _model_device(model: torch.nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def _sync_bn_to_bn(module: torch.nn.Module) -> tuple[torch.nn.Module, int]:
    """Replace every SyncBatchNorm below (or at) ``module`` by a BatchNorm2d that holds the same
    parameter objects and copies of the statistics. Returns the new root and the count."""
    if isinstance(module, torch.nn.SyncBatchNorm):
        bn = torch.nn.BatchNorm2d(
            module.num_features,
            eps=module.eps,
            momentum=module.momentum,
            affine=module.affine,
            track_running_stats=module.track_running_stats,
        ).to(module.running_mean.device if module.running_mean is not None else "cpu")
        if module.affine:
            bn.weight, bn.bias = module.weight, module.bias
        if module.track_running_stats:  # then both layers hold the three statistics buffers
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                getattr(bn, name).copy_(getattr(module, name))
        bn.train(module.training)
        return bn, 1
    count = 0
    for name, child in module.named_children():
        new, n = _sync_bn_to_bn(child)
        count += n
        if new is not child:
            module.add_module(name, new)
    return module, count


def convert_sync_bn(model: torch.nn.Module, enabled: bool) -> torch.nn.Module:
    """
    Batch statistics over all processes when they can be synchronised (``train.sync_bn``).

    * ``enabled``, several processes, model on CUDA: every BatchNorm becomes a
      ``torch.nn.SyncBatchNorm`` (``convert_sync_batchnorm``), which computes the batch
      statistics over all processes' images.
    * Otherwise nothing can be synchronised: one process (SyncBN would equal BN), or CPU
      processes (SyncBatchNorm needs CUDA; with Gloo it raises at the first forward). BatchNorm
      layers stay per-process, and SyncBatchNorm layers that the config asked for
      (``norm="SyncBN"``) are replaced by BatchNorm2d; a log line says so.

    Call before the optimizer is built and before DDP wraps the model (the parameters are kept;
    only the modules change). Returns the model (a new object only if the model itself is a
    batch norm layer).
    """
    world = comm.get_world_size()
    device = _model_device(model)
    log = logging.getLogger(__name__)
    can_sync = world > 1 and device.type == "cuda"
    if can_sync:
        if enabled:
            n = sum(
                isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                and not isinstance(m, torch.nn.SyncBatchNorm)
                for m in model.modules()
            )
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            log.info("train.sync_bn: %d BatchNorm layers converted to SyncBatchNorm.", n)
        return model
    why = (
        "one process"
        if world == 1
        else f"{world} processes on {device.type} (SyncBatchNorm needs CUDA)"
    )
    if enabled:
        log.info("train.sync_bn=True but %s: BatchNorm layers stay per-process BatchNorm.", why)
    model, n = _sync_bn_to_bn(model)
    if n:
        log.log(
            logging.WARNING if world > 1 else logging.INFO,
            "%d SyncBatchNorm layers (norm='SyncBN') replaced by BatchNorm2d: %s.",
            n,
            why,
        )
    return model


def freeze_parameters(model: torch.nn.Module, prefixes: Any) -> list[str]:
    """
    Stop gradients (``requires_grad=False``) of the parameters whose name is one of
    ``prefixes`` or starts with one followed by "." (``train.freeze``, e.g.
    ``["backbone.bottom_up.stem", "backbone.bottom_up.res2"]``). Call before the optimizer is
    built: frozen parameters get no optimizer group. Only parameters are frozen: BatchNorm
    layers under a prefix still update their running statistics in training mode (use
    FrozenBN, or the ResNet's ``freeze_at``, to fix those too).

    Returns:
        the names of the parameters frozen.

    Raises:
        ValueError: naming a prefix that matches no parameter.
    """
    if not prefixes:
        return []
    if isinstance(prefixes, str):
        prefixes = [prefixes]
    names = [n for n, _ in comm.unwrap_model(model).named_parameters()]
    frozen: list[str] = []
    for prefix in prefixes:
        prefix = str(prefix).rstrip(".")
        hits = [n for n in names if n == prefix or n.startswith(prefix + ".")]
        if not hits:
            modules = list(dict.fromkeys(n.rsplit(".", 1)[0] for n in names))
            raise ValueError(
                f"train.freeze: {prefix!r} matches no parameter of the model; parameter names "
                f"start with e.g. {modules[:8]}"
            )
        frozen += [n for n in hits if n not in frozen]
    params = dict(comm.unwrap_model(model).named_parameters())
    for name in frozen:
        params[name].requires_grad_(False)
    logging.getLogger(__name__).info(
        "train.freeze: %d parameters frozen (%s).", len(frozen), ", ".join(map(str, prefixes))
    )
    return frozen
