"""A tiny regression "task" (model, data, evaluator) to test the engine without detectors.

Batches follow the detector I/O convention: a list of dicts; in training the model returns a
dict of losses, in eval a list of dicts.
"""

import torch
import torch.nn.functional as F
from torch import nn

from rotated_det.evaluation import DatasetEvaluator
from rotated_det.utils import comm

IN_DIM, OUT_DIM = 4, 2


def _true_weight() -> torch.Tensor:
    g = torch.Generator().manual_seed(1234)
    return torch.randn(OUT_DIM, IN_DIM, generator=g)


def make_batch(index: int, batch_size: int, seed: int = 0) -> list[dict]:
    """Batch number ``index``: a pure function of (seed, index)."""
    g = torch.Generator().manual_seed(seed * 100003 + index)
    x = torch.randn(batch_size, IN_DIM, generator=g)
    y = x @ _true_weight().T + 0.01 * torch.randn(batch_size, OUT_DIM, generator=g)
    return [{"x": x[i], "y": y[i], "image_id": index * batch_size + i} for i in range(batch_size)]


class TinyRegressor(nn.Module):
    """MLP with optional BatchNorm / Dropout; losses ``loss_mse`` and ``loss_l1``."""

    def __init__(self, hidden: int = 16, use_bn: bool = False, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(IN_DIM, hidden)]
        if use_bn:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(hidden, OUT_DIM))
        self.net = nn.Sequential(*layers)
        self.nan_at_call: int | None = None  # make loss_l1 NaN at that training call
        self.calls = 0
        self.last_dtype = None

    @property
    def device(self) -> torch.device:
        return self.net[0].weight.device

    def forward(self, batch: list[dict]):
        x = torch.stack([d["x"] for d in batch]).to(self.device)
        out = self.net(x)
        self.last_dtype = out.dtype
        if not self.training:
            return [{"pred": p.float()} for p in out]
        y = torch.stack([d["y"] for d in batch]).to(self.device)
        losses = {
            "loss_mse": F.mse_loss(out.float(), y),
            "loss_l1": 0.1 * F.l1_loss(out.float(), y),
        }
        if self.nan_at_call is not None and self.calls == self.nan_at_call:
            losses["loss_l1"] = losses["loss_l1"] * float("nan")
        self.calls += 1
        return losses


class StatefulTrainLoader:
    """Infinite loader whose position is saved in checkpoints (exact resume).

    ``total_batch_size`` (the name DefaultTrainer's auto_scale_lr reads in the config) replaces
    ``batch_size`` when given."""

    def __init__(
        self,
        batch_size: int = 8,
        seed: int = 0,
        per_rank: bool = True,
        total_batch_size: int | None = None,
    ):
        self.batch_size = total_batch_size or batch_size
        self.seed = seed + (comm.get_rank() * 7919 if per_rank else 0)
        self.position = 0

    def __iter__(self):
        while True:
            batch = make_batch(self.position, self.batch_size, self.seed)
            self.position += 1
            yield batch

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = int(state["position"])


class FixedBatchLoader:
    """Yields the same batch forever (for overfitting tests)."""

    def __init__(self, batch_size: int = 8):
        self.batch = make_batch(0, batch_size, seed=99)

    def __iter__(self):
        while True:
            yield self.batch


class TestLoader:
    """Finite loader of ``num_batches`` batches, sharded across ranks (rank r: i % world == r)."""

    __test__ = False  # not a pytest class

    def __init__(self, num_batches: int = 4, batch_size: int = 4):
        world, rank = comm.get_world_size(), comm.get_rank()
        self.indices = [i for i in range(num_batches) if i % world == rank]
        self.batch_size = batch_size

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self):
        for i in self.indices:
            yield make_batch(1000 + i, self.batch_size, seed=5)


class MSEEvaluator(DatasetEvaluator):
    """Mean squared error of ``pred`` vs ``y``, gathered over all ranks."""

    def reset(self) -> None:
        self._items: list[tuple[int, float]] = []
        self.gathered_ids: list[int] = []

    def process(self, inputs, outputs) -> None:
        for inp, out in zip(inputs, outputs, strict=True):
            err = float(((out["pred"].cpu() - inp["y"]) ** 2).mean())
            self._items.append((inp["image_id"], err))

    def evaluate(self):
        all_items = comm.gather(self._items, dst=0)
        if not comm.is_main_process():
            return None
        items = [it for part in all_items for it in part]
        self.gathered_ids = sorted(i for i, _ in items)
        mse = sum(e for _, e in items) / max(len(items), 1)
        return {"regression": {"mse": mse, "count": float(len(items))}}


def tiny_config(output_dir: str, max_iter: int = 20, **train_kw):
    """A complete LazyConfig for DefaultTrainer on this task."""
    from omegaconf import DictConfig

    from rotated_det.config import LazyCall as L
    from rotated_det.solver import get_default_optimizer_params, multistep_with_warmup

    train = dict(
        output_dir=output_dir,
        init_checkpoint="",
        max_iter=max_iter,
        amp=dict(enabled=False),
        ddp=dict(broadcast_buffers=False),
        checkpointer=dict(period=10, max_to_keep=5),
        eval_period=5,
        log_period=5,
        device="cpu",
        seed=3,
        tensorboard=False,
    )
    train.update(train_kw)
    return DictConfig(
        dict(
            model=L("engine_tiny_task.TinyRegressor")(hidden=16, dropout=0.2),
            dataloader=dict(
                train=L("engine_tiny_task.StatefulTrainLoader")(batch_size=8),
                test=L("engine_tiny_task.TestLoader")(num_batches=3),
                evaluator=L("engine_tiny_task.MSEEvaluator")(),
            ),
            optimizer=L("torch.optim.SGD")(
                params=L(get_default_optimizer_params)(weight_decay_norm=0.0),
                lr=0.05,
                momentum=0.9,
                weight_decay=1e-4,
            ),
            lr_multiplier=L(multistep_with_warmup)(
                max_iter=max_iter, steps=[max_iter // 2, max_iter * 3 // 4], warmup_iters=4
            ),
            train=train,
        ),
        flags={"allow_objects": True},
    )


class SplitLoader:
    """Batch ``i`` of ``make_batch(i, batch_size * splits)`` cut into ``splits`` consecutive
    micro-batches: with ``splits=1`` the big batches, with ``splits=N`` the same samples in N
    pieces (for gradient accumulation). ``offset``/``stride`` pick which pieces of each big
    batch this loader yields (e.g. one rank's share)."""

    def __init__(self, batch_size: int, splits: int = 1, seed: int = 7, offset: int = 0,
                 stride: int = 1):  # fmt: skip
        self.batch_size, self.splits, self.seed = batch_size, splits, seed
        self.offset, self.stride = offset, stride

    def __iter__(self):
        index = 0
        while True:
            big = make_batch(index, self.batch_size * self.splits, self.seed)
            for j in range(self.offset, self.splits, self.stride):
                yield big[j * self.batch_size : (j + 1) * self.batch_size]
            index += 1
