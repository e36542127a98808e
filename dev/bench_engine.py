#!/usr/bin/env python
"""
Per-iteration overhead of the engine: SimpleTrainer + the standard hooks vs a bare hand-written
training loop, on the same tiny model and batch, measured in the same run (interleaved rounds,
median reported).

    .venv/bin/python dev/bench_engine.py [--iters 500] [--rounds 5] [--hidden 64]
"""

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rotated_det.checkpoint import DetectionCheckpointer  # noqa: E402
from rotated_det.engine import AMPTrainer, SimpleTrainer, hooks  # noqa: E402
from rotated_det.solver import LRMultiplier, multistep_with_warmup  # noqa: E402
from rotated_det.utils.events import CommonMetricPrinter, JSONWriter  # noqa: E402


class Tiny(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, hidden), nn.ReLU(), nn.Linear(hidden, 4))

    def forward(self, batch):
        x = torch.stack([d["x"] for d in batch])
        y = torch.stack([d["y"] for d in batch])
        out = self.net(x)
        return {"loss_mse": ((out - y) ** 2).mean(), "loss_l1": 0.1 * (out - y).abs().mean()}


def make_batch(n=16):
    g = torch.Generator().manual_seed(0)
    return [{"x": torch.randn(16, generator=g), "y": torch.randn(4, generator=g)} for _ in range(n)]


class Forever:
    def __init__(self, batch):
        self.batch = batch

    def __iter__(self):
        while True:
            yield self.batch


def build(hidden, iters):
    torch.manual_seed(0)
    model = Tiny(hidden)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sched = LRMultiplier(opt, multistep_with_warmup(iters, [iters // 2], 0.1, 10), iters)
    return model, opt, sched


def bare_loop(hidden, iters, batch):
    model, opt, sched = build(hidden, iters)
    it = iter(Forever(batch))
    start = time.perf_counter()
    for _ in range(iters):
        data = next(it)
        losses = model(data)
        total = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        sched.step()
    return (time.perf_counter() - start) / iters


def engine_loop(hidden, iters, batch, out_dir, trainer_cls=SimpleTrainer):
    model, opt, sched = build(hidden, iters)
    trainer = trainer_cls(model, Forever(batch), opt)
    trainer.register_hooks(
        [
            hooks.IterationTimer(),
            hooks.LRScheduler(opt, sched),
            # period beyond max_iter: measures the hook, not disk writes (only model_final)
            hooks.PeriodicCheckpointer(
                DetectionCheckpointer(model, out_dir), period=10**9, max_iter=10**9
            ),
            hooks.EvalHook(0, lambda: {}),
            hooks.PeriodicWriter(
                [CommonMetricPrinter(iters), JSONWriter(os.path.join(out_dir, "metrics.json"))],
                period=20,
            ),
        ]
    )
    start = time.perf_counter()
    trainer.train(0, iters)
    return (time.perf_counter() - start) / iters


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("rotated_det").setLevel(logging.WARNING)  # printer lines are not measured
    logging.getLogger("rotated_det").propagate = False
    batch = make_batch()
    bare, eng, amp = [], [], []
    with tempfile.TemporaryDirectory() as d:
        bare_loop(args.hidden, 50, batch)  # warm-up
        engine_loop(args.hidden, 50, batch, d)
        for _ in range(args.rounds):
            bare.append(bare_loop(args.hidden, args.iters, batch))
            eng.append(engine_loop(args.hidden, args.iters, batch, d))
            amp.append(engine_loop(args.hidden, args.iters, batch, d, AMPTrainer))
    b, e, a = (statistics.median(x) * 1e6 for x in (bare, eng, amp))
    print(f"torch {torch.__version__}, {args.threads} thread(s), MLP hidden={args.hidden}, "
          f"batch 16, {args.iters} iters x {args.rounds} rounds (median)")  # fmt: skip
    print(f"{'loop':44s} {'us/iter':>10s} {'vs bare':>10s}")
    print(f"{'bare hand-written loop (baseline)':44s} {b:10.1f}")
    for name, v in (
        ("SimpleTrainer + 5 standard hooks", e),
        ("AMPTrainer (bf16 autocast on CPU) + hooks", a),
    ):
        print(f"{name:44s} {v:10.1f} {v - b:+9.1f}us ({v / b:.2f}x)")


if __name__ == "__main__":
    main()
