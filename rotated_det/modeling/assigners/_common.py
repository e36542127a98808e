"""Input checks, and the enumeration of (gt, point) pairs near each other, for the assigners."""

import math
from collections.abc import Iterator

import torch


def check_gt_boxes(gt_boxes: torch.Tensor) -> None:
    """Raises ValueError unless ``gt_boxes`` is a floating ``[G, 5]`` tensor of finite boxes with
    sides >= 0; the message names the first bad box."""
    if gt_boxes.dim() != 2 or gt_boxes.shape[1] != 5:
        raise ValueError(f"gt_boxes must have shape [G, 5], got {tuple(gt_boxes.shape)}")
    if not gt_boxes.is_floating_point():
        raise ValueError(f"gt_boxes must be floating point, got {gt_boxes.dtype}")
    bad = ~(torch.isfinite(gt_boxes).all(dim=1) & (gt_boxes[:, 2:4] >= 0).all(dim=1))
    if gt_boxes.shape[0] and bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"gt_boxes[{i}] = {gt_boxes[i].tolist()}: expected finite (cx, cy, w, h, angle) with "
            "w, h >= 0"
        )


def window_runs(
    points: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Points in axis-aligned windows, as runs of one sorted order of the points.

    The points are bucketed into about ``sqrt(P)`` vertical strips of equal width and sorted by
    (strip, y); the points of one strip within a window's y range are then one run of that
    order. Each window gets one run per strip it overlaps.

    Args:
        points: [P, 2] finite (x, y), P >= 1.
        lower, upper: [G, 2] the windows' (x0, y0) and (x1, y1).

    Returns:
        order [P] (int64, a permutation of the points), and per run ``start``, ``length`` and
        ``window`` (each [S] int64): the points ``order[start : start + length]`` of all runs of
        window ``g`` include every point inside it (borders included) once, and may include
        a few points beside it (up to one strip width away in x, or on the points' extreme y
        when the window lies beyond it): a superset, to be tested exactly by the caller.
    """
    x, y = points.double().unbind(1)
    lower, upper = lower.double(), upper.double()
    num_strips = math.ceil(math.sqrt(points.shape[0]))
    x_min, y_min = x.min(), y.min()
    strip_width = ((x.max() - x_min) / num_strips).clamp(min=1e-6)
    y_span = y.max() - y_min + 1.0  # keys of strip b lie in [b * y_span, (b + 1) * y_span)

    def strip(v: torch.Tensor) -> torch.Tensor:
        return ((v - x_min) / strip_width).floor().clamp(0, num_strips)

    key = strip(x) * y_span + (y - y_min)
    order = torch.argsort(key)
    keys = key[order].contiguous()
    first_strip = strip(lower[:, 0])
    strips = (strip(upper[:, 0]) - first_strip + 1).clamp(min=0).long()
    window = torch.arange(lower.shape[0], device=points.device).repeat_interleave(strips)
    run_strip = first_strip[window] + (
        torch.arange(window.shape[0], device=points.device) - (strips.cumsum(0) - strips)[window]
    )
    # clamped into the strip's own keys, so that runs never overlap (each point once per window)
    y0 = (lower[:, 1] - y_min).clamp(min=0).minimum(y_span - 1)[window]
    y1 = (upper[:, 1] - y_min).clamp(min=0).minimum(y_span - 1)[window]
    start = torch.searchsorted(keys, (run_strip * y_span + y0).contiguous())
    end = torch.searchsorted(keys, (run_strip * y_span + y1).contiguous(), right=True)
    return order, start, (end - start).clamp(min=0), window


def run_chunks(
    lengths: torch.Tensor, max_pairs: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Enumerates the elements of runs, in groups of consecutive runs.

    Args:
        lengths: [S] int64, number of elements of each run (>= 0).
        max_pairs: a group holds at most this many elements, plus those of its last run.

    Yields:
        ``(run, pos)``, both [T] int64: the run of each element of the group and the element's
        position in its run (0 .. lengths[run] - 1).
    """
    num_runs = lengths.shape[0]
    ends = lengths.cumsum(0)
    starts = ends - lengths
    total = int(ends[-1]) if num_runs else 0
    if total == 0:
        return
    bounds = [0, num_runs]
    if total > max_pairs:
        group = torch.div(starts, max_pairs, rounding_mode="floor")
        cuts = (group[1:] != group[:-1]).nonzero()[:, 0] + 1
        bounds = [0, *cuts.tolist(), num_runs]
    first = starts[bounds[:-1]].tolist()
    last = ends[[b - 1 for b in bounds[1:]]].tolist()
    for r0, r1, p0, p1 in zip(bounds[:-1], bounds[1:], first, last):
        if p1 == p0:
            continue
        runs = torch.arange(r0, r1, device=lengths.device)
        run = runs.repeat_interleave(lengths[r0:r1], output_size=p1 - p0)
        pos = torch.arange(p0, p1, device=lengths.device) - starts[run]
        yield run, pos
