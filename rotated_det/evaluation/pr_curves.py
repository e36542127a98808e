"""Precision-recall curves as PNG files (matplotlib, headless)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from rotated_det.utils.file_io import safe_path

__all__ = ["save_pr_curves"]


def save_pr_curves(
    output_dir: str,
    class_names: Sequence[str],
    curves: Sequence[tuple[np.ndarray, np.ndarray]],
    aps: Sequence[float] | np.ndarray,
    iou_threshold: float,
) -> list[str]:
    """Save one PNG per class with a GT (``pr_<class>.png``, the class name escaped by
    :func:`rotated_det.utils.file_io.safe_path`: distinct names give distinct files inside
    ``output_dir``) and one with every class (``pr_all.png``) in ``output_dir``.

    Args:
        class_names: C names.
        curves: per class, ``(recall [D], precision [D])`` in decreasing-score order.
        aps: per class AP (NaN for classes without GT; those are not plotted).
        iou_threshold: shown in the titles.

    Returns:
        Paths of the written files.
    """
    # Figure objects without pyplot: no global backend state, works headless and in threads.
    from matplotlib.figure import Figure

    os.makedirs(output_dir, exist_ok=True)
    paths = []
    fig_all = Figure(figsize=(7, 6))
    ax_all = fig_all.subplots()
    for name, (rec, prec), ap in zip(class_names, curves, aps):
        if not np.isfinite(ap):
            continue
        # The raw curve and the envelope the area metric integrates: on (r[i-1], r[i]] the
        # precision is the largest precision at recall >= r[i] (hence steps "pre").
        r = np.concatenate(([0.0], rec))
        p = np.concatenate(([prec[0] if len(prec) else 0.0], prec))
        env = np.maximum.accumulate(p[::-1])[::-1]
        fig = Figure(figsize=(5, 4.5))
        ax = fig.subplots()
        ax.plot(r, p, lw=1, alpha=0.5, label="precision")
        ax.step(r, env, where="pre", lw=1.5, label="envelope")
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision")
        ax.set_title(f"{name}: AP{iou_threshold * 100:.0f} = {ap:.4f}")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left")
        path = safe_path(output_dir, f"pr_{name}", ".png")
        fig.savefig(path, dpi=80, bbox_inches="tight")
        paths.append(path)
        ax_all.step(r, env, where="pre", lw=1.2, label=f"{name} ({ap:.3f})")
    ax_all.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision")
    ax_all.set_title(f"Precision-recall envelopes at IoU {iou_threshold:g}")
    ax_all.grid(alpha=0.3)
    if paths:
        ax_all.legend(loc="lower left", fontsize=7)
    path = os.path.join(output_dir, "pr_all.png")
    fig_all.savefig(path, dpi=80, bbox_inches="tight")
    paths.append(path)
    return paths
