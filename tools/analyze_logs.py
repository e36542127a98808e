#!/usr/bin/env python
"""Plot training curves from one or more runs' ``metrics.json``, runs overlaid, one PNG per key.

    python tools/analyze_logs.py output/quickstart/train --output plots
    python tools/analyze_logs.py runA/metrics.json runB/metrics.json --labels A B \
        --keys total_loss "loss_*" lr "rbox/mAP" time --output plots

A run is a ``metrics.json`` (one JSON object per line, as ``JSONWriter`` writes it:
``{"iteration": 19, "total_loss": 1.2, "lr": 0.01, "time": 0.9, ...}``; evaluation rows carry
``rbox/mAP`` and the like) or a folder holding one. ``--keys`` are names or shell-style patterns
(``loss_*``, ``*/mAP``) matched against the keys the runs logged; the default plots the total
loss, each loss term, the learning rate, seconds per iteration (``time``) and every ``*/mAP``,
``*/AP50`` and ``*/AP75``. Each PNG (``<key>.png`` in ``--output``, ``/`` written as ``_``) has one
curve per run that logged the key, against the iteration. A requested name or pattern that no
run logged, or a key some runs lack, is reported by name. Lines that are not JSON objects with an
integer ``iteration`` are skipped and counted in a warning naming the file and the first line; a
key logged twice for one iteration (an old resume) keeps the later value.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import os
import sys
from collections.abc import Sequence

import numpy as np

logger = logging.getLogger("rotated_det.analyze_logs")

DEFAULT_KEYS = ("total_loss", "loss_*", "lr", "time", "*/mAP", "*/AP50", "*/AP75")

#: key -> [(run label, iterations int64 [N], values float64 [N])]: what each PNG plots.
Series = dict[str, list[tuple[str, np.ndarray, np.ndarray]]]


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("runs", nargs="+", help="metrics.json files or folders holding one")
    p.add_argument(
        "--keys", nargs="+", help=f"names or patterns (default: {' '.join(DEFAULT_KEYS)})"
    )
    p.add_argument("--labels", nargs="+", help="legend label per run (default: its folder name)")
    p.add_argument("--output", required=True, help="folder for the PNG files")
    p.add_argument("--overwrite", action="store_true", help="replace existing PNG files")
    p.add_argument("--log-y", nargs="*", default=["lr"], help="keys drawn on a log scale")
    return p


def metrics_path(run: str) -> str:
    """``run`` itself, or ``run/metrics.json`` for a folder."""
    path = os.path.join(run, "metrics.json") if os.path.isdir(run) else run
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No metrics file: {path}")
    return path


def load_metrics(path: str) -> list[dict]:
    """Rows of a JSON-lines metrics file, in iteration order, one per iteration: rows of the same
    iteration are merged (training and evaluation scalars may come in separate rows), a key
    logged twice for an iteration (an old resume) keeps the later value, with a warning. Bad
    lines are skipped with one warning naming the file, their number and the first one."""
    rows: dict[int, dict] = {}
    bad: list[int] = []
    repeated = 0
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if not isinstance(row, dict) or not isinstance(row.get("iteration"), int):
                bad.append(number)
                continue
            itr = row["iteration"]
            old = rows.get(itr, {})
            repeated += bool((old.keys() & row.keys()) - {"iteration"})
            rows[itr] = {**old, **row}
    if bad:
        logger.warning(
            f"{path}: skipped {len(bad)} line(s) that are not JSON objects with an integer "
            f"'iteration' (first: line {bad[0]})"
        )
    if repeated:
        logger.warning(f"{path}: {repeated} iteration(s) logged twice; the later values are kept")
    return [rows[k] for k in sorted(rows)]


def _run_labels(paths: Sequence[str], labels: Sequence[str] | None) -> list[str]:
    if labels is not None:
        if len(labels) != len(paths):
            raise ValueError(f"{len(labels)} labels for {len(paths)} runs")
        return list(labels)
    names = [os.path.basename(os.path.dirname(os.path.abspath(p))) for p in paths]
    return names if len(set(names)) == len(names) else list(paths)


def collect_series(
    runs: Sequence[tuple[str, list[dict]]], keys: Sequence[str]
) -> tuple[Series, list[str]]:
    """The curves to plot and what is missing.

    Args:
        runs: ``(label, rows)`` per run (rows from :func:`load_metrics`).
        keys: names or ``fnmatch`` patterns.

    Returns:
        ``(series, missing)``: per matched key (in the order of ``keys``, then sorted), the
        runs that logged it with their iterations and values (non-numeric values dropped);
        ``missing`` lists ``"<key>"`` for a name or pattern no run logged and
        ``"<key> (not in <label>)"`` for a key a run lacks.
    """
    logged = [{k for r in rows for k in r if k != "iteration"} for _, rows in runs]
    every = set().union(*logged)
    missing: list[str] = []
    matched: list[str] = []
    for pattern in keys:
        found = sorted(k for k in every if fnmatch.fnmatchcase(k, pattern))
        if not found:
            missing.append(pattern)
        matched += [k for k in found if k not in matched]
    series: Series = {}
    for key in matched:
        for (label, rows), has in zip(runs, logged):
            if key not in has:
                missing.append(f"{key} (not in {label})")
                continue
            pts = [
                (r["iteration"], float(r[key]))
                for r in rows
                if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)
            ]
            it = np.array([p[0] for p in pts], dtype=np.int64)
            val = np.array([p[1] for p in pts], dtype=np.float64)
            series.setdefault(key, []).append((label, it, val))
    return series, missing


def key_file_name(key: str) -> str:
    """``<key>.png`` with path separators and other unsafe characters as ``_``."""
    safe = "".join(ch if ch.isalnum() or ch in "-_.+=" else "_" for ch in key).lstrip(".")
    return (safe or "_") + ".png"


def plot_series(series: Series, output: str, log_y: Sequence[str] = ()) -> list[str]:
    """One PNG per key in ``output``: a curve per run, with a legend. Returns the paths."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state (headless)

    names = {k: key_file_name(k) for k in series}
    clash = len(set(names.values())) < len(names)
    if clash:
        raise ValueError(f"Keys {sorted(names)} give clashing file names {sorted(names.values())}")
    os.makedirs(output, exist_ok=True)
    paths = []
    for key, curves in series.items():
        fig = Figure(figsize=(7, 4.2))
        ax = fig.subplots()
        for label, it, val in curves:
            ax.plot(it, val, marker="o" if len(it) <= 20 else None, ms=3, lw=1.2, label=label)
        if key in log_y and all((v > 0).all() for _, _, v in curves):
            ax.set_yscale("log")
        ax.set(xlabel="iteration", ylabel=key, title=key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(output, names[key])
        fig.savefig(path, dpi=90)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> tuple[list[str], Series, list[str]]:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        paths = [metrics_path(r) for r in args.runs]
        labels = _run_labels(paths, args.labels)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(str(e)) from None
    runs = [(label, load_metrics(p)) for label, p in zip(labels, paths)]
    for (label, rows), p in zip(runs, paths):
        if not rows:
            raise SystemExit(f"{p} ({label}) holds no metrics rows")
    series, missing = collect_series(runs, args.keys or DEFAULT_KEYS)
    for m in missing:
        logger.warning(f"Not plotted: {m}")
    if not series:
        raise SystemExit(f"None of the keys {args.keys or list(DEFAULT_KEYS)} is in the runs")
    targets = [os.path.join(args.output, key_file_name(k)) for k in series]
    existing = [t for t in targets if os.path.exists(t)]
    if existing and not args.overwrite:
        raise SystemExit(f"{existing} exist already; pass --overwrite to replace them")
    written = plot_series(series, args.output, args.log_y)
    print(f"Wrote {len(written)} plots of {len(runs)} run(s) to {args.output}")
    return written, series, missing


if __name__ == "__main__":
    main(sys.argv[1:])
