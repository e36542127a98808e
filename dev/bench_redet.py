#!/usr/bin/env python
"""ReDet's hot paths (projects/ReDet) next to their plain counterparts, measured in the same run:

1. ``RegularConv2d`` (C8 filter expansion by einsum + conv2d) against ``nn.Conv2d`` with the same
   channels, forward and forward + backward, and the filter expansion alone;
2. ReResNet-50 + ReFPN against the library's ResNet-50 + FPN: inference on one 512 px image,
   and parameters;
3. a training step of the ReDet quickstart model against the RoI Transformer quickstart model
   (two 320 px crops, AdamW): the quickstart's s/iter.

    python dev/bench_redet.py [--threads 1] [--repeat 5]

Prints medians in ms (or s) and the load average; run it on idle cores for figures to quote.
"""

import argparse
import os
import statistics
import sys
import time
import warnings

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (ROOT, os.path.join(ROOT, "tests")):
    if path not in sys.path:
        sys.path.insert(0, path)


def median_ms(fn, repeat: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def bench_conv(repeat: int) -> None:
    from projects.ReDet.regular_layers import RegularConv2d

    print("1. 3x3 convolution, 256 -> 256 channels (32 fields of C8), batch 2 of 64 x 64")
    torch.manual_seed(0)
    ours = RegularConv2d(256, 256, 3, padding=1)
    plain = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False)
    x = torch.randn(2, 256, 64, 64, requires_grad=True)
    for name, conv in (("nn.Conv2d (baseline)", plain), ("RegularConv2d", ours)):
        params = sum(p.numel() for p in conv.parameters())
        with torch.no_grad():
            fwd = median_ms(lambda conv=conv: conv(x), repeat)
        both = median_ms(lambda conv=conv: conv(x).sum().backward(), repeat)
        print(f"   {name:22s} forward {fwd:7.1f} ms  fwd+bwd {both:7.1f} ms  weights {params}")
    with torch.no_grad():
        expand = median_ms(ours.expanded_filter, repeat)
    print(f"   filter expansion alone {expand:7.2f} ms")


def bench_backbones(repeat: int) -> None:
    from projects.ReDet.re_fpn import ReFPN
    from projects.ReDet.re_resnet import ReResNet
    from rotated_det.modeling import FPN, BasicStem, LastLevelMaxPool, ResNet

    print("2. backbone + pyramid, inference on one 512 x 512 image")
    torch.manual_seed(0)
    features = ["res2", "res3", "res4", "res5"]
    resnet = ResNet(
        stem=BasicStem(norm="FrozenBN"),
        stages=ResNet.make_default_stages(depth=50),
        out_features=features,
    )
    nets = {
        "ResNet-50 + FPN (baseline)": FPN(resnet, features, 256, top_block=LastLevelMaxPool()),
        "ReResNet-50 + ReFPN": ReFPN(ReResNet(50), features, 256, LastLevelMaxPool()),
    }
    x = torch.randn(1, 3, 512, 512)
    for name, net in nets.items():
        net.eval()
        with torch.no_grad():
            ms = median_ms(lambda net=net: net(x), repeat)
        params = sum(p.numel() for p in net.parameters()) / 1e6
        print(f"   {name:28s} {ms:8.1f} ms  {params:5.2f} M parameters")


def bench_quickstart_step(repeat: int) -> None:
    from modeling._helpers import make_batch

    from rotated_det.config import LazyConfig, instantiate

    print("3. training step of the quickstart models, two 320 x 320 images, AdamW")
    configs = {
        "RoI Transformer quickstart (baseline)": "configs/quickstart/synthetic_roi_transformer.py",
        "ReDet quickstart": "projects/ReDet/configs/synthetic_redet.py",
    }
    batch = make_batch(320)
    for name, path in configs.items():
        cfg = LazyConfig.load(os.path.join(ROOT, path))
        torch.manual_seed(0)
        model = instantiate(cfg.model).train()
        cfg.optimizer.optimizer.params.model = model
        optimizer = instantiate(cfg.optimizer)

        def step(model=model, optimizer=optimizer):
            loss = sum(model(batch).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        ms = median_ms(step, repeat, warmup=2)
        print(f"   {name:38s} {ms / 1000:6.2f} s/iter")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", choices=["conv", "backbones", "step"], nargs="*")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}, load average at start {os.getloadavg()[0]:.2f}")
    parts = {"conv": bench_conv, "backbones": bench_backbones, "step": bench_quickstart_step}
    for name in args.only or parts:
        parts[name](args.repeat)
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
