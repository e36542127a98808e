#!/usr/bin/env python
"""Timings of H2RBox-v2's training-only steps, each next to a baseline measured in the same run:

- the rotated view (``rotate_images``: one batched affine_grid + grid_sample) against
  torchvision's ``rotate`` called per image (a different angle per image);
- the symmetry losses: pairing each object's positive points across the three views, averaging
  their angle codes, decoding (``H2RBoxV2.symmetry_loss_terms``: index_add over (view, object)
  slots) against a loop over the objects (same values, checked).

    python dev/bench_h2rbox_v2.py --threads 1
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time

import torch
import torchvision.transforms.functional as TF

from rotated_det.config import LazyConfig, instantiate
from rotated_det.modeling.losses.symmetry_loss import symmetry_losses
from rotated_det.modeling.meta_arch.h2rbox_v2 import rotate_images
from rotated_det.structures import Instances, RotatedBoxes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timeit(fn, iters: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def rotate_per_image(images: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """torchvision's rotate, one call per image (it takes one angle per call)."""
    return torch.stack(
        [TF.rotate(img, float(a), TF.InterpolationMode.BILINEAR) for img, a in zip(images, angles)]
    )


def pairing_inputs(num_images: int, objects: int, points: int, encode: int, seed: int = 0):
    """Random assignments of ``points`` points per view image to ``objects`` objects each."""
    g = torch.Generator().manual_seed(seed)
    n3 = 3 * num_images
    assigned = torch.randint(-1, objects, (n3, points), generator=g)
    assigned[torch.rand(n3, points, generator=g) < 0.9] = -1  # ~10% positives
    codes = torch.randn(n3, points, encode, generator=g)
    return assigned, codes


def symmetry_inputs(assigned, num_images: int, objects: int, num_classes: int):
    """labels, view ground truth (only lengths and classes are read) and rotations."""
    labels = torch.where(assigned >= 0, 0, num_classes)
    inst = Instances(
        (1, 1),
        gt_boxes=RotatedBoxes(torch.zeros(objects, 5)),
        gt_classes=torch.zeros(objects, dtype=torch.long),
    )
    return labels, [inst] * (3 * num_images), torch.full((num_images,), 90.0)


def symmetry_loop(model, assigned, codes, num_images: int, objects: int, rotation):
    """The same losses with a loop over objects: mean code per view, decode, loss."""
    angles, rots = [], []
    for i in range(num_images):
        for k in range(objects):
            means = []
            for v in range(3):
                mask = assigned[v * num_images + i] == k
                if not mask.any():
                    break
                means.append(codes[v * num_images + i][mask].mean(dim=0))
            if len(means) == 3:
                angles.append(model.angle_coder.decode(torch.stack(means)))
                rots.append(rotation[i])
    a = torch.stack(angles, dim=1)
    loss_rot, loss_flip = symmetry_losses(a[0], a[1], a[2], torch.stack(rots))
    return {
        "loss_symmetry_rot": model.rotation_loss_weight * loss_rot.mean(),
        "loss_symmetry_flip": model.flip_loss_weight * loss_flip.mean(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--iters", type=int, default=5)
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; medians")

    for n, size in ((2, 512), (2, 1024)):
        images = torch.randn(n, 3, size, size)
        angles = torch.rand(n) * 90 + 45
        ours = timeit(functools.partial(rotate_images, images, angles, "zeros"), args.iters)
        ref = timeit(functools.partial(rotate_per_image, images, angles), args.iters)
        print(
            f"rotated view {n} x 3 x {size}^2: rotate_images {ours * 1e3:.1f} ms, "
            f"torchvision rotate per image {ref * 1e3:.1f} ms"
        )

    cfg = LazyConfig.load(os.path.join(ROOT, "configs", "common", "models", "h2rbox_v2.py"))
    model = instantiate(cfg.model)
    for objects, points in ((50, 20000), (500, 100000)):
        assigned, codes = pairing_inputs(2, objects, points, model.angle_coder.encode_size)
        labels, view_gt, rotation = symmetry_inputs(assigned, 2, objects, model.num_classes)
        ours = functools.partial(
            model.symmetry_loss_terms, labels, assigned, [codes], view_gt, rotation
        )
        ref = functools.partial(symmetry_loop, model, assigned, codes, 2, objects, rotation)
        a, b = ours(), ref()
        assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a), (a, b)
        t_ours = timeit(ours, args.iters)
        t_ref = timeit(ref, max(1, args.iters // 2))
        print(
            f"symmetry losses, 2 images x {objects} objects, {points} points per view image: "
            f"symmetry_loss_terms {t_ours * 1e3:.2f} ms, per-object loop {t_ref * 1e3:.1f} ms "
            f"({t_ref / t_ours:.0f}x)"
        )


if __name__ == "__main__":
    main()
