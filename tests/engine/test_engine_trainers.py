"""SimpleTrainer / AMPTrainer / DefaultTrainer behaviour on a tiny regression task."""

import copy
import json
import os

import numpy as np
import pytest
import torch
from engine_test_tools import StopTraining, stop_at
from engine_tiny_task import (
    FixedBatchLoader,
    StatefulTrainLoader,
    TinyRegressor,
    tiny_config,
)

from rotated_det.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, default_setup, hooks
from rotated_det.solver import LRMultiplier, multistep_with_warmup


def _train_simple(trainer_cls, model, loader, max_iter, lr=0.05, **kw):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    trainer = trainer_cls(model, loader, opt, **kw)
    losses = []
    trainer.register_hooks(
        [
            hooks.LRScheduler(
                opt,
                LRMultiplier(
                    opt, multistep_with_warmup(max_iter, [max_iter - 10], 0.1, 5), max_iter
                ),
            ),
            hooks.CallbackHook(
                after_step=lambda t: losses.append(t.storage.history("total_loss").latest())
            ),
        ]
    )
    trainer.train(0, max_iter)
    return trainer, losses


def test_overfit_fixed_batch_loss_goes_down():
    torch.manual_seed(0)
    trainer, losses = _train_simple(SimpleTrainer, TinyRegressor(), FixedBatchLoader(), 150)
    assert trainer.iter == 150
    assert losses[-1] < 0.05 * losses[0], (losses[0], losses[-1])
    # the storage holds both terms and their sum
    latest = trainer.storage.latest()
    total = latest["total_loss"][0]
    assert total == pytest.approx(latest["loss_mse"][0] + latest["loss_l1"][0], rel=1e-6)
    assert "data_time" in latest


def test_amp_trainer_cpu_bfloat16_trains():
    torch.manual_seed(0)
    model = TinyRegressor()
    trainer, losses = _train_simple(AMPTrainer, model, FixedBatchLoader(), 60)
    assert trainer.precision == torch.bfloat16 and trainer.grad_scaler is None
    assert model.last_dtype == torch.bfloat16  # the forward ran under bf16 autocast
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert losses[-1] < 0.2 * losses[0]


def test_non_finite_loss_names_term_and_iteration():
    torch.manual_seed(0)
    model = TinyRegressor()
    model.nan_at_call = 3
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    trainer = SimpleTrainer(model, FixedBatchLoader(), opt)
    with pytest.raises(FloatingPointError) as e:
        trainer.train(0, 10)
    msg = str(e.value)
    assert "iteration=3" in msg and "loss_l1" in msg and "loss_mse=" not in msg.split("All")[0]
    # the bad gradients were never applied
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_model_must_return_loss_dict():
    class Bad(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, batch):
            return [self.w]

    trainer = SimpleTrainer(Bad(), FixedBatchLoader(), torch.optim.SGD(Bad().parameters(), lr=1))
    with pytest.raises(TypeError, match="dict of scalar losses"):
        trainer.train(0, 1)


def _final_state(trainer):
    return (
        copy.deepcopy(trainer.model.state_dict()),
        copy.deepcopy(trainer.optimizer.state_dict()),
        [g["lr"] for g in trainer.optimizer.param_groups],
        trainer.data_loader.position,
    )


def test_exact_resume_20_straight_equals_10_plus_resume(tmp_path):
    # straight: 20 iterations
    cfg = tiny_config(str(tmp_path / "a"), max_iter=20)
    default_setup(cfg)
    straight = DefaultTrainer(cfg)
    straight.resume_or_load(resume=True)
    straight.train()
    ref = _final_state(straight)

    # interrupted after 10 iterations (checkpoint model_0000009), then resumed to 20
    cfg = tiny_config(str(tmp_path / "b"), max_iter=20)
    default_setup(cfg)
    first = DefaultTrainer(cfg)
    first.register_hooks([stop_at(10)])
    first.resume_or_load(resume=True)
    with pytest.raises(StopTraining):
        first.train()
    assert os.path.exists(tmp_path / "b" / "model_0000009.pth")
    torch.manual_seed(12345)  # a fresh process would have other RNG state: must not matter
    second = DefaultTrainer(tiny_config(str(tmp_path / "b"), max_iter=20))
    second.resume_or_load(resume=True)
    assert second.start_iter == 10
    second.train()
    got = _final_state(second)

    for k, v in ref[0].items():
        torch.testing.assert_close(got[0][k], v, rtol=0, atol=0, msg=k)
    for (ka, a), (kb, b) in zip(ref[1]["state"].items(), got[1]["state"].items(), strict=True):
        assert ka == kb
        torch.testing.assert_close(a["momentum_buffer"], b["momentum_buffer"], rtol=0, atol=0)
    assert ref[1]["param_groups"] == got[1]["param_groups"]
    assert ref[2] == got[2] and ref[2][0] == pytest.approx(0.05 * 0.01)
    assert ref[3] == got[3] == 20
    # metrics.json continued with the iterations after the resume point
    with open(tmp_path / "b" / "metrics.json") as f:
        iters = [json.loads(line)["iteration"] for line in f]
    # rows up to the last iteration; the final evaluation is logged at iteration max_iter
    assert iters[-2:] == [19, 20] and 14 in iters


def _rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def _median(storage, name, first, last):
    """What the writers report for ``name`` at iteration ``last``: the median of the values the
    run put from iteration ``first`` on (a window of 20 holds them all)."""
    return float(np.median([v for v, it in storage.history(name).values() if first <= it <= last]))


def test_resume_after_kill_writes_each_iteration_once(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    cfg = tiny_config(str(out), max_iter=20, tensorboard=True)  # checkpoint every 10, log every 5
    default_setup(cfg)
    first = DefaultTrainer(cfg)
    first.register_hooks([stop_at(15)])  # killed at 15: the checkpoint is at 9, rows up to 14
    first.resume_or_load(resume=True)
    with pytest.raises(StopTraining):
        first.train()
    # (15: the eta the console printer put when training stopped)
    assert [r["iteration"] for r in _rows(out / "metrics.json")] == [4, 9, 14, 15]
    killed_14 = _median(first.storage, "total_loss", 0, 14)

    second = DefaultTrainer(tiny_config(str(out), max_iter=20, tensorboard=True))
    second.resume_or_load(resume=True)
    assert second.start_iter == 10
    second.train()

    rows = _rows(out / "metrics.json")
    assert [r["iteration"] for r in rows] == [4, 9, 14, 19, 20]  # each once, in order
    by_iter = {r["iteration"]: r for r in rows}
    # the rows from 10 on are the resumed run's: its window starts at the checkpoint
    resumed_14 = _median(second.storage, "total_loss", 10, 14)
    assert by_iter[14]["total_loss"] == pytest.approx(resumed_14, rel=1e-6)
    assert by_iter[14]["total_loss"] != pytest.approx(killed_14, rel=1e-6)
    assert "regression/mse" in by_iter[14] and "regression/mse" in by_iter[20]
    # the killed run's rows from 10 on are kept aside, marked, not lost
    side = _rows(out / "metrics_superseded.json")
    assert [(r["iteration"], r["superseded_at"]) for r in side] == [(14, 10), (15, 10)]
    assert side[0]["total_loss"] == pytest.approx(killed_14, rel=1e-6)

    # TensorBoard: the resumed writer's purge_step hides the killed run's events from 10 on
    acc = EventAccumulator(str(out))
    acc.Reload()
    events = acc.Scalars("total_loss")
    assert [e.step for e in events] == [4, 9, 14, 19]
    assert events[2].value == pytest.approx(resumed_14, rel=1e-5)


def test_default_trainer_hooks_and_eval(tmp_path):
    cfg = tiny_config(str(tmp_path), max_iter=12)
    cfg.train.checkpointer.period = 4
    cfg.train.checkpointer.max_to_keep = 2
    cfg.train.best_checkpointer = dict(val_metric="regression/mse", mode="min")
    cfg.train.tensorboard = True
    default_setup(cfg)
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=False)
    results = trainer.train()
    assert results["regression"]["count"] == 12.0
    files = sorted(os.listdir(tmp_path))
    # periodic checkpoints pruned to the newest 2, plus final, best, tag, logs, config
    assert [f for f in files if f.startswith("model_0")] == [
        "model_0000007.pth",
        "model_0000011.pth",
    ]
    for f in ("model_final.pth", "model_best.pth", "last_checkpoint", "metrics.json", "log.txt"):
        assert f in files, files
    assert "config.yaml" in files
    assert any(f.startswith("events.out.tfevents") for f in files)
    with open(tmp_path / "metrics.json") as f:
        rows = [json.loads(line) for line in f]
    assert any("regression/mse" in r for r in rows)
    assert all("total_loss" in r and "lr" in r for r in rows if "regression/mse" not in r)
    with open(tmp_path / "log.txt") as f:
        log = f.read()
    assert "eta:" in log and "lr:" in log and "time:" in log and "data_time:" in log
    best = torch.load(tmp_path / "model_best.pth", weights_only=True)
    evals = [(r["regression/mse"], r["iteration"]) for r in rows if "regression/mse" in r]
    assert [it for _, it in evals] == [4, 9, 12]  # every 5 iterations and at the end
    assert best["iteration"] == min(evals)[1]
    # eval restored train mode
    assert trainer.model.training


def test_stateful_loader_position_in_checkpoint(tmp_path):
    cfg = tiny_config(str(tmp_path), max_iter=10)
    default_setup(cfg)
    trainer = DefaultTrainer(cfg)
    trainer.train()
    ckpt = torch.load(tmp_path / "model_final.pth", weights_only=True)
    assert ckpt["trainer"]["data_loader"]["position"] == 10
    assert ckpt["trainer"]["iteration"] == 9
    assert "rng" in ckpt["trainer"] and "optimizer" in ckpt


def test_loader_reproducible():
    a, b = StatefulTrainLoader(), StatefulTrainLoader()
    ia, ib = iter(a), iter(b)
    for _ in range(3):
        xa, xb = next(ia), next(ib)
        torch.testing.assert_close(xa[0]["x"], xb[0]["x"])


def test_default_trainer_amp_and_clipped_optimizer_from_config(tmp_path):
    from rotated_det.config import L
    from rotated_det.solver import maybe_add_gradient_clipping

    cfg = tiny_config(str(tmp_path), max_iter=3, eval_period=0)
    cfg.train.amp.enabled = True
    cfg.optimizer = L(maybe_add_gradient_clipping)(
        optimizer=cfg.optimizer, clip_type="norm", clip_value=0.01
    )
    trainer = DefaultTrainer(cfg)
    assert isinstance(trainer._trainer, AMPTrainer)
    assert trainer._trainer.precision == torch.bfloat16
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    # every step moved the weights by at most lr * clip_value (+ momentum build-up)
    delta = torch.cat([(trainer.model.state_dict()[k] - v).flatten() for k, v in before.items()])
    assert 0 < delta.norm() <= 3 * 3 * 0.05 * 0.01
    assert type(trainer.optimizer).__name__ == "SGDWithGradientClip"


def test_amp_trainer_grad_scaler_path_on_cpu_float16():
    # the float16 + GradScaler path used on GPUs, exercised on CPU
    torch.manual_seed(0)
    model = TinyRegressor()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    trainer, losses = _train_simple(
        AMPTrainer, model, FixedBatchLoader(), 40, grad_scaler=scaler, precision=torch.float16
    )
    assert model.last_dtype == torch.float16
    assert losses[-1] < 0.3 * losses[0]
    state = trainer.state_dict()
    assert state["grad_scaler"]["scale"] > 0
    fresh = AMPTrainer(
        model, FixedBatchLoader(), trainer.optimizer, grad_scaler=torch.amp.GradScaler("cpu")
    )
    fresh.load_state_dict(state)
    assert fresh.grad_scaler.get_scale() == scaler.get_scale()


def test_argument_parser_and_test_without_evaluator(tmp_path):
    from rotated_det.engine import create_ddp_model, default_argument_parser

    args = default_argument_parser().parse_args(
        ["--config-file", "c.py", "--resume", "--num-gpus", "2", "train.max_iter=3", "a.b=[1,2]"]
    )
    assert args.config_file == "c.py" and args.resume and not args.eval_only
    assert args.num_gpus == 2 and args.num_machines == 1 and args.machine_rank == 0
    assert args.dist_url == "auto" and args.opts == ["train.max_iter=3", "a.b=[1,2]"]

    cfg = tiny_config(str(tmp_path), max_iter=2)
    del cfg.dataloader["evaluator"]
    model = TinyRegressor()
    assert create_ddp_model(model) is model  # single process: no wrapper
    assert DefaultTrainer.test(cfg, model) == {}
