"""Model EMA, gradient accumulation, auto_scale_lr, SyncBN fallback and train.freeze."""

import contextlib
import logging
import math
import os
import sys

import pytest
import torch
from engine_test_tools import StopTraining, stop_at
from engine_tiny_task import (
    FixedBatchLoader,
    SplitLoader,
    TestLoader,
    TinyRegressor,
    tiny_config,
)

from rotated_det.engine import (
    AMPTrainer,
    DefaultPredictor,
    DefaultTrainer,
    SimpleTrainer,
    default_setup,
    hooks,
    launch,
)
from rotated_det.engine.defaults import convert_sync_bn, freeze_parameters
from rotated_det.engine.model_ema import ModelEMA, load_inference_weights
from rotated_det.layers import get_norm
from rotated_det.solver import LRMultiplier, multistep_with_warmup
from rotated_det.utils import comm

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@contextlib.contextmanager
def _capture(caplog, level=logging.INFO):
    """caplog for the "rotated_det" logger, which default_setup() stops from propagating."""
    lg = logging.getLogger("rotated_det")
    lg.addHandler(caplog.handler)
    old = lg.level
    lg.setLevel(min(level, old or level))
    try:
        yield
    finally:
        lg.removeHandler(caplog.handler)
        lg.setLevel(old)


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _mse(model, state=None):
    """The evaluator's mse of ``model`` (with ``state`` loaded into a copy, if given)."""
    if state is not None:
        model = TinyRegressor(hidden=16, dropout=0.2)
        model.load_state_dict(state)
    model.eval()
    errs = []
    with torch.no_grad():
        for batch in TestLoader(num_batches=3):
            for inp, out in zip(batch, model(batch), strict=True):
                errs.append(float(((out["pred"] - inp["y"]) ** 2).mean()))
    return sum(errs) / len(errs)


# ----------------------------------------------------------------------------- model EMA
def test_ema_equals_hand_computed_average_after_k_steps():
    torch.manual_seed(0)
    model = TinyRegressor(use_bn=True)
    model.net[0].bias.requires_grad_(False)  # a frozen parameter stays bit-identical
    frozen = model.net[0].bias.detach().clone()
    decay, tau = 0.9, 2.0
    ema = ModelEMA(model, decay=decay, tau=tau)
    trainer = SimpleTrainer(
        model, FixedBatchLoader(), torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    )
    seen = []  # the raw state after each optimizer step
    trainer.register_hooks(
        [
            hooks.CallbackHook(before_train=lambda t: seen.append(_state(t.model))),
            hooks.ModelEMAHook(ema),
            hooks.CallbackHook(after_step=lambda t: seen.append(_state(t.model))),
        ]
    )
    trainer.train(0, 5)

    expected = {k: v.double() for k, v in seen[0].items() if v.is_floating_point()}
    for n, state in enumerate(seen[1:], start=1):
        d = decay * (1 - math.exp(-n / tau))
        for k in expected:
            expected[k] = d * expected[k] + (1 - d) * state[k].double()
    got = ema.ema_state_dict()
    assert ema.updates == 5
    for k, v in expected.items():
        torch.testing.assert_close(got[k].double(), v, rtol=0, atol=1e-6, msg=k)
        # the weights moved, and the EMA is not the last raw state
        if k == "net.0.weight":
            assert (seen[-1][k] - got[k]).abs().max() > 1e-3
    assert "net.1.running_mean" in expected  # BN statistics are averaged
    assert int(got["net.1.num_batches_tracked"]) == 5  # integers are copied
    assert torch.equal(got["net.0.bias"], frozen)


def test_ema_ramp_and_validation():
    ema = ModelEMA(TinyRegressor(), decay=0.9998, tau=2000)
    assert ema.decay_at(1) == pytest.approx(0.9998 * (1 - math.exp(-1 / 2000)))
    assert ema.decay_at(2000) == pytest.approx(0.9998 * (1 - math.exp(-1)))
    assert ModelEMA(TinyRegressor(), decay=0.5, tau=0).decay_at(1) == 0.5
    with pytest.raises(ValueError, match="decay"):
        ModelEMA(TinyRegressor(), decay=1.0)
    other = ModelEMA(TinyRegressor(hidden=8))
    other.reset()
    with pytest.raises(ValueError, match="shapes"):
        ema.load_state_dict(other.state_dict())


def _ema_config(out, max_iter=20, **kw):
    return tiny_config(
        str(out), max_iter=max_iter, model_ema=dict(enabled=True, decay=0.9, tau=3.0), **kw
    )


def test_ema_checkpoint_layout_and_exact_resume(tmp_path):
    cfg = _ema_config(tmp_path / "a")
    default_setup(cfg)
    straight = DefaultTrainer(cfg)
    straight.resume_or_load(resume=True)
    straight.train()

    cfg = _ema_config(tmp_path / "b")
    default_setup(cfg)
    first = DefaultTrainer(cfg)
    first.register_hooks([stop_at(10)])
    with pytest.raises(StopTraining):
        first.train()
    torch.manual_seed(999)
    second = DefaultTrainer(_ema_config(tmp_path / "b"))
    second.resume_or_load(resume=True)
    assert second.start_iter == 10 and second.model_ema.updates == 10
    second.train()
    assert second.model_ema.updates == straight.model_ema.updates == 20
    for k, v in straight.model_ema.ema_state_dict().items():
        torch.testing.assert_close(second.model_ema.ema_state_dict()[k], v, rtol=0, atol=0)

    ckpt = torch.load(tmp_path / "a" / "model_final.pth", weights_only=True)
    assert set(ckpt["model_ema"]) == {"model", "updates"} and ckpt["model_ema"]["updates"] == 20
    assert set(ckpt["model_ema"]["model"]) == set(ckpt["model"])
    # "model" holds the raw weights (what --resume continues from), "model_ema" the average
    for k, v in straight.model.state_dict().items():
        assert torch.equal(ckpt["model"][k], v)
        assert torch.equal(ckpt["model_ema"]["model"][k], straight.model_ema.ema_state_dict()[k])
    ema_w = ckpt["model_ema"]["model"]["net.0.weight"]
    assert not torch.equal(ckpt["model"]["net.0.weight"], ema_w)


def test_ema_resume_from_checkpoint_without_ema_starts_from_resumed_weights(tmp_path, caplog):
    cfg = tiny_config(str(tmp_path), max_iter=10)
    default_setup(cfg)
    DefaultTrainer(cfg).train()  # no EMA: model_final.pth (iteration 9) has no model_ema
    trainer = DefaultTrainer(_ema_config(tmp_path, max_iter=12))
    trainer.resume_or_load(resume=True)
    resumed = _state(trainer.model)
    with _capture(caplog, logging.WARNING):
        trainer.register_hooks([stop_at(11)])
        with pytest.raises(StopTraining):
            trainer.train()
    assert "no 'model_ema' entry" in caplog.text
    # one update (iteration 10) from the resumed weights, with d_1 = 0.9 * (1 - exp(-1/3))
    d = 0.9 * (1 - math.exp(-1 / 3))
    now = trainer.model.state_dict()
    k = "net.0.weight"
    torch.testing.assert_close(
        trainer.model_ema.ema_state_dict()[k], d * resumed[k] + (1 - d) * now[k], atol=1e-6, rtol=0
    )


def test_evaluation_eval_only_and_predictor_use_ema_weights(tmp_path):
    cfg = _ema_config(tmp_path, max_iter=12)
    cfg.train.eval_period = 0
    default_setup(cfg)
    trainer = DefaultTrainer(cfg)
    raw_before = _state(trainer.model)
    seen_in_eval = []
    original_test = DefaultTrainer.test

    def spy(cfg_, model):
        seen_in_eval.append(_state(model))
        return original_test(cfg_, model)

    trainer.test = spy
    results = trainer.train()
    ema_state = trainer.model_ema.ema_state_dict()
    raw_state = _state(trainer.model)
    assert not torch.equal(raw_state["net.0.weight"], raw_before["net.0.weight"])
    # the final evaluation ran on the EMA weights; the model holds its raw weights again
    for k, v in ema_state.items():
        assert torch.equal(seen_in_eval[-1][k], v), k
    ema_mse, raw_mse = _mse(None, ema_state), _mse(None, raw_state)
    assert abs(ema_mse - raw_mse) > 1e-4 * raw_mse
    assert results["regression"]["mse"] == pytest.approx(ema_mse, rel=1e-6)
    assert trainer.model.training

    final = str(tmp_path / "model_final.pth")
    # --eval-only (the train tool's do_test): EMA weights when enabled, raw ones when not
    sys.path.insert(0, os.path.join(REPO, "tools"))
    try:
        import lazyconfig_train_net as tool
    finally:
        sys.path.pop(0)
    cfg.train.init_checkpoint = final
    assert tool.do_test(cfg)["regression"]["mse"] == pytest.approx(ema_mse, rel=1e-6)
    cfg.train.model_ema.enabled = False
    assert tool.do_test(cfg)["regression"]["mse"] == pytest.approx(raw_mse, rel=1e-6)

    # DefaultPredictor (and export_model.py, which loads through it)
    cfg.train.model_ema.enabled = True
    predictor = DefaultPredictor(cfg)
    assert predictor.uses_ema_weights
    for k, v in ema_state.items():
        assert torch.equal(predictor.model.state_dict()[k], v), k
    cfg.train.model_ema.enabled = False
    predictor = DefaultPredictor(cfg)
    assert not predictor.uses_ema_weights
    assert torch.equal(predictor.model.state_dict()["net.0.weight"], raw_state["net.0.weight"])


def test_load_inference_weights_without_ema_entry_warns_and_uses_model(tmp_path, caplog):
    model = TinyRegressor()
    torch.save({"model": model.state_dict()}, tmp_path / "w.pth")
    other = TinyRegressor()
    with _capture(caplog, logging.WARNING):
        assert not load_inference_weights(other, str(tmp_path / "w.pth"), use_ema=True)
    assert "no 'model_ema' entry" in caplog.text
    assert torch.equal(other.net[0].weight, model.net[0].weight)


def test_swapped_in_restores_weights_on_exception():
    model = TinyRegressor()
    before = _state(model)
    ema = ModelEMA(model)
    ema.reset()
    for v in ema.ema_state_dict().values():
        v.add_(1.0)
    with pytest.raises(RuntimeError):
        with ema.swapped_in():
            assert torch.equal(model.net[0].weight, before["net.0.weight"] + 1)
            raise RuntimeError
    for k, v in before.items():
        assert torch.equal(model.state_dict()[k], v)


# ----------------------------------------------------------------------------- accumulation
def _run(trainer_cls, loader, accum, iters=5, **kw):
    torch.manual_seed(0)
    model = TinyRegressor(hidden=16, dropout=0.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    trainer = trainer_cls(model, loader, opt, grad_accum_steps=accum, **kw)
    sched = LRMultiplier(opt, multistep_with_warmup(iters, [3], 0.1, 2), iters)
    losses = []
    trainer.register_hooks(
        [
            hooks.LRScheduler(opt, sched),
            hooks.CallbackHook(
                after_step=lambda t: losses.append(t.storage.history("total_loss").latest())
            ),
        ]
    )
    trainer.train(0, iters)
    return model, losses, sched


def test_accumulating_n_micro_batches_equals_one_n_times_larger_batch():
    # the same 12 samples per step, drawn as 3 micro-batches of 4
    acc, acc_losses, sched = _run(SimpleTrainer, SplitLoader(4, 3, seed=3), 3)
    loader_12 = SplitLoader(12, splits=1, seed=3)
    big, big_losses, _ = _run(SimpleTrainer, loader_12, 1)
    for (k, a), b in zip(acc.state_dict().items(), big.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=k)
    assert acc_losses == pytest.approx(big_losses, rel=1e-6)
    assert sched.last_epoch == 5  # one scheduler step per optimizer step
    # without accumulation, 3x more optimizer steps on the small batches: visibly different
    small, _, _ = _run(SimpleTrainer, SplitLoader(4, 3, seed=3), 1, iters=15)
    assert (small.net[0].weight - big.net[0].weight).abs().max() > 1e-3


def test_accumulation_under_amp_with_grad_scaler():
    kw = dict(grad_scaler=torch.amp.GradScaler("cpu", init_scale=2.0**8))
    kw["precision"] = torch.float16
    acc, _, _ = _run(AMPTrainer, SplitLoader(4, 3, seed=3), 3, **kw)
    kw["grad_scaler"] = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    big, _, _ = _run(AMPTrainer, SplitLoader(12, 1, seed=3), 1, **kw)
    torch.manual_seed(0)
    init = TinyRegressor(hidden=16, dropout=0.0)  # the weights both runs started from
    moved = (big.net[0].weight - init.net[0].weight).abs().max()
    diff = (acc.net[0].weight - big.net[0].weight).abs().max()
    assert moved > 1e-2 and diff < 1e-2 * moved, (float(moved), float(diff))


def test_default_trainer_accumulation_counts_optimizer_steps(tmp_path):
    cfg = tiny_config(str(tmp_path), max_iter=6, grad_accum_steps=3, eval_period=0)
    trainer = DefaultTrainer(cfg)
    calls = []
    trainer.register_hooks([hooks.CallbackHook()])
    trainer._hooks[-1].after_backward = lambda: calls.append(trainer.iter)
    trainer.train()
    assert trainer.data_loader.position == 18  # 3 micro-batches per iteration
    assert trainer.scheduler.last_epoch == 6
    assert calls == list(range(6))  # after_backward once per iteration, after the last one
    with pytest.raises(ValueError, match="grad_accum_steps"):
        SimpleTrainer(TinyRegressor(), FixedBatchLoader(), None, grad_accum_steps=0)


def _ddp_worker(out_dir):
    rank = comm.get_rank()
    torch.manual_seed(0)
    from rotated_det.engine import create_ddp_model

    model = create_ddp_model(TinyRegressor(hidden=16, dropout=0.0), broadcast_buffers=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    # each rank: 2 micro-batches of 2 of the same 8-sample batch (rank 0: pieces 0, 2)
    loader = SplitLoader(2, splits=4, seed=3, offset=rank, stride=2)
    SimpleTrainer(model, loader, opt, grad_accum_steps=2).train(0, 4)
    # a config's norm="SyncBN" on CPU processes: replaced by BatchNorm2d (SyncBatchNorm
    # raises on CPU tensors), which then trains
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), get_norm("SyncBN", 4))
    net = convert_sync_bn(net, enabled=True)
    net(torch.randn(2, 3, 8, 8)).sum().backward()
    torch.save(
        {"state": model.module.state_dict(), "norm": type(net[1]).__name__},
        os.path.join(out_dir, f"rank{rank}.pt"),
    )


@pytest.mark.slow  # two processes
def test_ddp_accumulation_equals_single_process_big_batch_and_sync_bn_falls_back(tmp_path):
    launch(_ddp_worker, 2, num_machines=1, machine_rank=0, dist_url="auto", args=(str(tmp_path),))
    torch.manual_seed(0)
    ref = TinyRegressor(hidden=16, dropout=0.0)
    opt = torch.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9)
    SimpleTrainer(ref, SplitLoader(8, splits=1, seed=3), opt).train(0, 4)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got["norm"] == "BatchNorm2d"
        for k, v in ref.state_dict().items():
            torch.testing.assert_close(got["state"][k], v, rtol=0, atol=1e-6, msg=k)


# ----------------------------------------------------------------------------- auto_scale_lr
def _scaled_config(tmp_path, enabled=True, base=16, accum=3):
    cfg = tiny_config(
        str(tmp_path),
        max_iter=4,
        grad_accum_steps=accum,
        auto_scale_lr=dict(enabled=enabled, base_batch_size=base),
    )
    cfg.dataloader.train.total_batch_size = 8
    return cfg


def test_auto_scale_lr_scales_every_group_once_and_logs(tmp_path, caplog):
    cfg = _scaled_config(tmp_path)
    with _capture(caplog, logging.INFO):
        trainer = DefaultTrainer(cfg)
    assert trainer.lr_scale == 1.5  # 8 images x 3 accumulation steps / 16
    groups = trainer.optimizer.param_groups
    assert [g["initial_lr"] for g in groups] == [pytest.approx(0.075)] * len(groups)
    assert trainer.scheduler.base_lrs == [pytest.approx(0.075)] * len(trainer.scheduler.base_lrs)
    assert "lr 0.05 -> 0.075" in caplog.text and "24 images per optimizer step" in caplog.text
    # the config is not changed: a second trainer from it scales 0.05 again, not 0.075
    assert cfg.optimizer.lr == 0.05
    assert DefaultTrainer(cfg).scheduler.base_lrs[0] == pytest.approx(0.075)
    off = DefaultTrainer(_scaled_config(tmp_path, enabled=False))
    assert off.lr_scale == 1.0 and off.scheduler.base_lrs[0] == 0.05
    with pytest.raises(ValueError, match="base_batch_size"):
        DefaultTrainer(_scaled_config(tmp_path, base=None))


# ----------------------------------------------------------------------------- SyncBN, freeze
def test_sync_bn_on_one_process_stays_batch_norm_with_a_log_line(tmp_path, caplog):
    cfg = tiny_config(str(tmp_path), max_iter=4, sync_bn=True, eval_period=0)
    cfg.model.use_bn = True
    with _capture(caplog, logging.INFO):
        trainer = DefaultTrainer(cfg)
    assert type(trainer.model.net[1]) is torch.nn.BatchNorm1d
    assert "train.sync_bn=True but one process" in caplog.text
    # norm="SyncBN" layers of a config become BatchNorm2d, keeping their parameters
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), get_norm("SyncBN", 4))
    weight = net[1].weight
    net[1].running_mean.fill_(0.5)
    net = convert_sync_bn(net, enabled=False)
    assert type(net[1]) is torch.nn.BatchNorm2d and net[1].weight is weight
    assert float(net[1].running_mean[0]) == 0.5


def test_freeze_prefixes(tmp_path):
    cfg = tiny_config(str(tmp_path), max_iter=3, freeze=["net.0"], eval_period=0)
    trainer = DefaultTrainer(cfg)
    before = _state(trainer.model)
    trainer.train()
    after = trainer.model.state_dict()
    assert torch.equal(after["net.0.weight"], before["net.0.weight"])
    assert torch.equal(after["net.0.bias"], before["net.0.bias"])
    assert not torch.equal(after["net.3.weight"], before["net.3.weight"])
    in_optimizer = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert id(trainer.model.net[0].weight) not in in_optimizer
    with pytest.raises(ValueError, match=r"'net.9' matches no parameter.*'net.0', 'net.3'"):
        freeze_parameters(trainer.model, ["net.9"])
    # a prefix matches whole name components only ("net.3" is not a prefix of "net.30")
    with pytest.raises(ValueError, match="'net.3.w' matches no parameter"):
        freeze_parameters(trainer.model, ["net.3.w"])
    assert freeze_parameters(trainer.model, ["net.3."]) == ["net.3.weight", "net.3.bias"]


def test_common_train_config_has_the_new_keys():
    from rotated_det.config import LazyConfig

    cfg = LazyConfig.load(os.path.join(REPO, "configs", "common", "train.py"))
    cfg = LazyConfig.apply_overrides(
        cfg,
        [
            "train.model_ema.enabled=True",
            "train.grad_accum_steps=4",
            "train.auto_scale_lr.enabled=True",
            "train.auto_scale_lr.base_batch_size=16",
            "train.sync_bn=True",
            "train.freeze=[backbone.bottom_up.stem]",
        ],
    )
    t = cfg.train
    assert t.model_ema.decay == 0.9998 and t.model_ema.tau == 2000 and t.grad_accum_steps == 4
    assert t.auto_scale_lr.base_batch_size == 16 and list(t.freeze) == ["backbone.bottom_up.stem"]
