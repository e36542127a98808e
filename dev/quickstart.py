#!/usr/bin/env python
"""The quickstart, end to end on the CPU (run through ``bash dev/quickstart.sh``, which first sets
up the environment with dev/setup_env.sh).

Steps (each prints what it runs, and is skipped when its output is already there):

1. dataset   generate the synthetic DOTA-format dataset (``tools/generate_synthetic.py``; 48
             training and 12 validation scenes, some larger than a 512 px patch) unless present;
2. split     cut it into 512 px patches with a 128 px overlap (``tools/split_dota.py``) unless
             already split;
3. train     train ``configs/quickstart/synthetic_quickstart.py`` with
             ``tools/lazyconfig_train_net.py`` (a small Rotated Faster R-CNN, from scratch); the
             trainer then evaluates DOTA mAP on the validation patches merged back into full
             scenes. ``--skip-train`` reuses the last checkpoint and only evaluates it (the
             default retrains, so that a re-run measures the whole job);
4. draw      run ``demo/demo.py`` (sliding windows of 512 px) on a few validation scenes and save
             the drawings;
5. summary   print (and write to ``<output-dir>/summary.json``) mAP50, timings and where
             everything is.

Re-running reuses the environment and the dataset. Options shrink the job (used by the tests):
``--num-train/--num-val/--image-size`` for a new dataset root, ``--max-iter``, and trailing
``key=value`` config overrides passed to the train tool.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = "configs/quickstart/synthetic_quickstart.py"
# How the synthetic scenes are cut (the builtin synthetic_*_512 datasets: rotated_det.data
# .datasets.builtin.SYNTHETIC_SPLIT).
PATCH_SIZE, PATCH_GAP, IOF_THR = 512, 128, 0.7
TARGET_MAP50 = 80.0  # percent
TARGET_MINUTES = 15.0


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="rotated_det quickstart: synthetic data -> split -> train -> evaluate -> draw",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    p.add_argument("--output-dir", default="output/quickstart", help="where results go")
    p.add_argument(
        "--datasets-root",
        default=os.environ.get("ROTATED_DET_DATASETS", "datasets"),
        help="$ROTATED_DET_DATASETS: the dataset is in <root>/synthetic (default ./datasets)",
    )
    p.add_argument("--config-file", default=DEFAULT_CONFIG)
    p.add_argument("--skip-train", action="store_true", help="evaluate the last checkpoint")
    p.add_argument("--max-iter", type=int, default=None, help="override train.max_iter")
    p.add_argument("--num-train", type=int, default=48, help="scenes of a new dataset")
    p.add_argument("--num-val", type=int, default=12, help="validation scenes of a new dataset")
    p.add_argument("--image-size", type=int, default=640, help="typical scene side (new dataset)")
    p.add_argument("--num-draw", type=int, default=3, help="validation scenes to draw")
    p.add_argument(
        "--num-threads",
        type=int,
        default=0,
        help="torch CPU threads of the train/eval/draw processes; 0 (default): all cores on an "
        "idle machine, 1 when the load average already exceeds the core count (OpenMP threads "
        "then spin-wait for each other and a step gets several times slower)",
    )
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides key=value")
    return p


class Steps:
    """Runs and times the steps, printing a banner per step."""

    def __init__(self, total: int):
        self.total = total
        self.index = 0
        self.times: dict[str, float] = {}
        self.start = time.perf_counter()

    def begin(self, name: str, what: str) -> float:
        self.index += 1
        elapsed = time.perf_counter() - self.start
        print(
            f"\n=== [{self.index}/{self.total}] {name}: {what}  (elapsed {elapsed / 60:.1f} min)",
            flush=True,
        )
        return time.perf_counter()

    def end(self, name: str, t0: float) -> None:
        self.times[name] = round(time.perf_counter() - t0, 1)
        print(f"=== {name} done in {self.times[name]:.1f} s", flush=True)


def run(cmd: list[str], env: dict, log_path: str | None = None) -> None:
    """Run ``cmd`` from the repository root, echoing its output (and teeing it to log_path)."""
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    log = open(log_path, "w", encoding="utf-8") if log_path else None
    try:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if log:
                log.write(line)
        rc = proc.wait()
    finally:
        if log:
            log.close()
    if rc != 0:
        where = f" (log: {log_path})" if log_path else ""
        raise SystemExit(f"quickstart: command failed with exit code {rc}{where}: {cmd[1]}")


def choose_num_threads() -> int:
    """All cores, or 1 on a machine that is already busy (see --num-threads)."""
    cores = os.cpu_count() or 1
    return 1 if os.getloadavg()[0] >= cores else cores


def read_metrics(path: str) -> tuple[dict, float | None, int]:
    """The last evaluation results and the mean seconds per iteration in a metrics.json."""
    evals: dict = {}
    times: list[float] = []
    last_iter = -1
    if not os.path.isfile(path):
        return evals, None, last_iter
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            rec = json.loads(line)
            if any(k.startswith("rbox/") for k in rec):
                evals = {k: v for k, v in rec.items() if k.startswith("rbox/")}
            if "time" in rec:
                times.append(float(rec["time"]))
            if "total_loss" in rec:  # a training record (evaluations are logged after the end)
                last_iter = max(last_iter, int(rec.get("iteration", -1)))
    # the first logged window includes warm-up; the median is robust to it
    sec_per_iter = sorted(times)[len(times) // 2] if times else None
    return evals, sec_per_iter, last_iter


def read_eval_only_results(log_path: str) -> dict:
    """rbox/* metrics from the train tool's "Final results: ..." line (an --eval-only run)."""
    with open(log_path, encoding="utf-8") as f:
        lines = [ln for ln in f if "Final results:" in ln]
    if not lines:
        return {}
    # the line is the repr of {"rbox": {"mAP": 81.2, "AP50": 81.2, "AP-plane": ...}} (maybe
    # OrderedDict / np.float64 reprs)
    pairs = re.findall(
        r"'((?:m?AP[0-9-]*)|(?:AP-[^']+))'\s*[:,]\s*(?:np\.float\d+\()?([-+0-9.eE]+|nan)",
        lines[-1],
    )
    return {f"rbox/{k}": float(v) for k, v in pairs}


def main(argv: list[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    out = os.path.abspath(args.output_dir)
    datasets = os.path.abspath(args.datasets_root)
    syn = os.path.join(datasets, "synthetic")
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ, ROTATED_DET_DATASETS=datasets, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    threads = args.num_threads or choose_num_threads()
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    py = sys.executable
    steps = Steps(5)
    print(
        f"rotated_det quickstart: output in {out}, dataset in {syn}\n"
        f"machine: {os.cpu_count()} CPUs, load average {load_start[0]:.1f} "
        f"(other processes slow this run down); {threads} torch thread(s) per process",
        flush=True,
    )

    # 1. dataset
    t0 = steps.begin("dataset", f"synthetic DOTA-format scenes in {syn}")
    if os.path.isfile(os.path.join(syn, "meta.json")):
        print("already there: reused (delete the folder to regenerate)")
    else:
        run(
            [py, "tools/generate_synthetic.py", "--root", syn, "--no-split",
             "--num-train", str(args.num_train), "--num-val", str(args.num_val),
             "--image-size", str(args.image_size)],
            env,
        )  # fmt: skip
    steps.end("dataset", t0)

    # 2. split
    split_root = os.path.join(syn, "split_512")
    done = os.path.join(split_root, "DONE")  # the marker the builtin synthetic_*_512 loaders read
    t0 = steps.begin("split", f"{PATCH_SIZE} px patches, {PATCH_GAP} px overlap, in {split_root}")
    if os.path.isfile(done):
        print("already split: reused")
    else:
        for split in ("train", "val"):
            run(
                [py, "tools/split_dota.py",
                 "--img-dirs", os.path.join(syn, split, "images"),
                 "--ann-dirs", os.path.join(syn, split, "labelTxt"),
                 "--save-dir", os.path.join(split_root, split),
                 "--sizes", str(PATCH_SIZE), "--gaps", str(PATCH_GAP),
                 "--iof-thr", str(IOF_THR), "--no-progress"],
                env,
            )  # fmt: skip
        with open(done, "w") as f:
            f.write("ok\n")
    steps.end("split", t0)

    # 3. train (+ evaluate on the merged validation scenes)
    train_dir = os.path.join(out, "train")
    eval_dir = os.path.join(out, "eval")
    overrides = [
        f"train.output_dir={train_dir}",
        f"dataloader.evaluator.output_dir={eval_dir}",
    ]
    if args.max_iter is not None:
        overrides.append(f"train.max_iter={args.max_iter}")
    overrides += [o for o in args.opts if o != "--"]
    weights = os.path.join(train_dir, "model_final.pth")
    cmd = [py, "tools/lazyconfig_train_net.py", "--config-file", args.config_file]
    if args.skip_train:
        if not os.path.isfile(weights):
            raise SystemExit(f"quickstart: --skip-train needs {weights}; run once without it")
        t0 = steps.begin("evaluate", f"the checkpoint {weights} (--skip-train)")
        log_path = os.path.join(out, "eval_only.log")
        run(cmd + ["--eval-only", *overrides, f"train.init_checkpoint={weights}"], env, log_path)
        evals = read_eval_only_results(log_path)
        _, sec_per_iter, last_iter = read_metrics(os.path.join(train_dir, "metrics.json"))
        steps.end("evaluate", t0)
    else:
        t0 = steps.begin("train", f"{args.config_file} on the CPU, then evaluate (mAP50)")
        log_path = os.path.join(out, "train.log")
        # a fresh run: the trainer would otherwise append to the old metrics
        for old in ("metrics.json", "last_checkpoint"):
            if os.path.isfile(os.path.join(train_dir, old)):
                os.remove(os.path.join(train_dir, old))
        run(cmd + overrides, env, log_path)
        evals, sec_per_iter, last_iter = read_metrics(os.path.join(train_dir, "metrics.json"))
        steps.end("train", t0)
    if "rbox/AP50" not in evals:
        raise SystemExit(f"quickstart: no evaluation results found (log: {log_path})")

    # 4. draw predictions on a few validation scenes (the largest first: it needs splitting)
    draw_dir = os.path.join(out, "drawings")
    t0 = steps.begin("draw", f"detections on {args.num_draw} validation scenes -> {draw_dir}")
    val_images = sorted(glob.glob(os.path.join(syn, "val", "images", "*")))
    val_images.sort(key=lambda p: -os.path.getsize(p))
    chosen = sorted(val_images[: args.num_draw])
    if chosen:  # --num-draw 0: no drawing (dev/zoo.py)
        run(
            [py, "demo/demo.py", "--config-file", args.config_file, "--input", *chosen,
             "--output", draw_dir, "--huge", "--patch-size", str(PATCH_SIZE),
             "--overlap", str(PATCH_GAP), "--confidence-threshold", "0.5",
             f"train.init_checkpoint={weights}", "train.device=cpu"],
            env,
            os.path.join(out, "draw.log"),
        )  # fmt: skip
    drawings = sorted(glob.glob(os.path.join(draw_dir, "*.png")))
    steps.end("draw", t0)

    # 5. summary
    steps.begin("summary", "")
    total_min = (time.perf_counter() - t_start) / 60
    map50 = float(evals["rbox/AP50"])
    per_class = {k[len("rbox/AP-") :]: round(v, 2) for k, v in evals.items() if "/AP-" in k}
    summary = {
        "mAP50": round(map50, 2),
        "mAP75": round(float(evals["rbox/AP75"]), 2) if "rbox/AP75" in evals else None,
        "AP50_per_class": per_class,
        "target_mAP50": TARGET_MAP50,
        "iterations": last_iter + 1,
        "sec_per_iter": round(sec_per_iter, 3) if sec_per_iter else None,
        "step_seconds": steps.times,
        "total_minutes": round(total_min, 2),
        "target_minutes": TARGET_MINUTES,
        "load_average_start": round(load_start[0], 2),
        "load_average_end": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "torch_threads": threads,
        "config": args.config_file,
        "paths": {
            "dataset": syn,
            "patches": split_root,
            "checkpoint": weights,
            "train_log": log_path,
            "metrics": os.path.join(train_dir, "metrics.json"),
            "tensorboard": train_dir,
            "predictions": os.path.join(eval_dir, "rotated_predictions.pth"),
            "pr_curves": os.path.join(eval_dir, "pr_curves"),
            "drawings": draw_dir,
        },
        "drawings": drawings,
    }
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    ok = map50 >= TARGET_MAP50
    lines = [
        "",
        "rotated_det quickstart finished",
        f"  mAP50 on the merged validation scenes: {map50:.1f}%  (target >= {TARGET_MAP50:.0f}%: "
        + ("met)" if ok else "NOT met)"),
        "  AP50 per class: " + ", ".join(f"{k} {v:.1f}" for k, v in per_class.items()),
        f"  training: {summary['iterations']} iterations, "
        + (f"{sec_per_iter:.2f} s/iteration" if sec_per_iter else "s/iteration unknown"),
        f"  total time: {total_min:.1f} min (load average {load_start[0]:.1f} at the start on "
        f"{os.cpu_count()} CPUs); steps: "
        + ", ".join(f"{k} {v:.0f}s" for k, v in steps.times.items()),
        f"  dataset:     {syn}  (patches in {split_root})",
        f"  checkpoint:  {weights}",
        f"  train log:   {log_path}  (TensorBoard: tensorboard --logdir {train_dir})",
        f"  evaluation:  {eval_dir}  (merged predictions, PR curves)",
        f"  drawings:    {draw_dir}  ({len(drawings)} images)",
        f"  summary:     {os.path.join(out, 'summary.json')}",
        "Next: python demo/demo.py --config-file " + args.config_file + " --input <images> "
        f"--output <dir> --huge --patch-size 512 train.init_checkpoint={weights}",
    ]
    print("\n".join(lines), flush=True)
    return summary


if __name__ == "__main__":
    main()
