"""Individual hooks: IterationTimer, PeriodicWriter, PeriodicCheckpointer, BestCheckpointer,
EvalHook, PreciseBN, TorchProfiler."""

import os

import pytest
import torch
from engine_tiny_task import FixedBatchLoader, StatefulTrainLoader, TinyRegressor

from rotated_det.checkpoint import DetectionCheckpointer
from rotated_det.engine import SimpleTrainer, hooks
from rotated_det.utils.events import EventWriter


def _trainer(model=None, loader=None):
    model = model or TinyRegressor()
    return SimpleTrainer(
        model, loader or FixedBatchLoader(), torch.optim.SGD(model.parameters(), lr=0.01)
    )


class _Recorder(EventWriter):
    def __init__(self):
        self.writes, self.closed = [], False

    def write(self):
        from rotated_det.utils.events import get_event_storage

        self.writes.append(get_event_storage().iter)

    def close(self):
        self.closed = True


def test_timer_writer_and_hook_order():
    t = _trainer()
    rec = _Recorder()
    calls = []
    t.register_hooks(
        [
            hooks.IterationTimer(warmup_iter=2),
            hooks.CallbackHook(
                before_train=lambda tr: calls.append("bt"),
                before_step=lambda tr: calls.append(f"bs{tr.iter}"),
                after_step=lambda tr: calls.append(f"as{tr.iter}"),
                after_train=lambda tr: calls.append(f"at{tr.iter}"),
            ),
            hooks.PeriodicWriter([rec], period=3),
            None,
        ]
    )
    t.train(0, 7)
    assert calls == ["bt"] + [x for i in range(7) for x in (f"bs{i}", f"as{i}")] + ["at7"]
    # every 3 iterations, at the last one, and once more when training ends
    assert rec.writes == [2, 5, 6, 7] and rec.closed
    times = t.storage.history("time").values()
    assert [it for _, it in times] == [2, 3, 4, 5, 6] and all(v > 0 for v, _ in times)
    with pytest.raises(TypeError):
        t.register_hooks([object()])


def test_periodic_and_best_checkpointer(tmp_path):
    t = _trainer()
    ckpt = DetectionCheckpointer(t.model, str(tmp_path))
    metric = iter([3.0, 1.0, 2.0, float("nan")])
    t.register_hooks(
        [
            hooks.PeriodicCheckpointer(ckpt, period=2, max_to_keep=2),
            hooks.EvalHook(2, lambda: {"val": {"loss": next(metric)}}),
            hooks.BestCheckpointer(2, ckpt, "val/loss", mode="min"),
        ]
    )
    t.train(0, 8)  # evaluations after iterations 1, 3, 5 and at the end (7)
    files = sorted(os.listdir(tmp_path))
    assert [f for f in files if f.startswith("model_0")] == [
        "model_0000005.pth",
        "model_0000007.pth",
    ]
    assert "model_final.pth" in files
    best = torch.load(tmp_path / "model_best.pth", weights_only=True)
    assert best["iteration"] == 3  # metric 1.0 at the second evaluation; NaN ignored
    assert t.storage.history("val/loss").values()[:3] == [(3.0, 1), (1.0, 3), (2.0, 5)]
    bc = t._hooks[2]
    assert bc.state_dict() == {"best_metric": 1.0, "best_iter": 3}


def test_eval_hook_rejects_non_numbers_and_keeps_rng():
    t = _trainer()

    def eval_fn():
        torch.rand(100)  # consumes RNG; must not influence training
        return {"a": {"b": "not a number"}}

    t.register_hooks([hooks.EvalHook(1, eval_fn)])
    with pytest.raises(ValueError, match="a/b"):
        t.train(0, 2)

    t2 = _trainer()
    torch.manual_seed(0)
    state = torch.get_rng_state()

    def eval_rand():
        torch.rand(50)
        return {}

    t2.register_hooks([hooks.EvalHook(1, eval_rand, eval_after_train=False)])
    t2.train(0, 2)  # evaluates after iteration 0 only (not at the last one)
    # training itself draws no random numbers here: the state is untouched by evaluation
    assert torch.equal(torch.get_rng_state(), state)


def test_precise_bn_recomputes_statistics():
    torch.manual_seed(0)
    model = TinyRegressor(use_bn=True)
    bn = model.net[1]
    bn.momentum = 0.001  # stale stats after training...
    t = _trainer(model, StatefulTrainLoader(batch_size=64))
    pbn = hooks.PreciseBN(0, model, StatefulTrainLoader(batch_size=64, seed=5), num_iter=20)
    t.register_hooks([pbn])
    before = bn.running_mean.clone()
    t.train(0, 3)  # PreciseBN runs after the last iteration
    # ...replaced by the true mean of the BN input over the data
    it = iter(StatefulTrainLoader(batch_size=64, seed=5))  # the same batches PreciseBN saw
    with torch.no_grad():
        x = torch.stack([d["x"] for _ in range(20) for d in next(it)])
        true_mean = model.net[0](x).mean(0)
    assert not torch.allclose(before, bn.running_mean, atol=1e-3)
    torch.testing.assert_close(bn.running_mean, true_mean, atol=1e-5, rtol=1e-5)


def test_precise_bn_disabled_without_bn():
    hook = hooks.PreciseBN(1, TinyRegressor(), FixedBatchLoader(), 2)
    assert hook._disabled


def test_torch_profiler_writes_trace(tmp_path):
    t = _trainer()
    t.register_hooks([hooks.TorchProfiler(lambda tr: tr.iter == 1, str(tmp_path))])
    t.train(0, 3)
    assert os.listdir(tmp_path) == ["profiler-trace-iter1.json"]
    assert (tmp_path / "profiler-trace-iter1.json").stat().st_size > 100
