#!/usr/bin/env bash
# Train and evaluate on the real DOTA scene P0706 (531 ships; 512 px patches, merged back for
# evaluation) with configs/quickstart/dota_p0706_rotated_faster_rcnn_R_18_FPN.py on the CPU, then
# print AP50 for "ship" (target >= 85) and the time taken.
#   bash dev/train_p0706.sh [output_dir] [key=value overrides...]
# Reads the DOTA samples from tests/data/dota_samples (or $ROTATED_DET_SHARED_DATA).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${ROTATED_DET_VENV:-$ROOT/.venv}/bin/python"
OUT="$(realpath -m "${1:-output/p0706}")"
shift || true
CONFIG=configs/quickstart/dota_p0706_rotated_faster_rcnn_R_18_FPN.py
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
rm -f "$OUT/metrics.json" "$OUT/last_checkpoint"  # a fresh run
start=$(date +%s)
load="$(cut -d' ' -f1 /proc/loadavg)"
# All cores on an idle machine; 1 thread on a busy one (OpenMP threads spin-wait for each other
# when the cores are shared, which makes a step several times slower). OMP_NUM_THREADS wins.
if [ -z "${OMP_NUM_THREADS:-}" ]; then
  if awk -v l="$load" -v n="$(nproc)" 'BEGIN { exit !(l >= n) }'; then
    export OMP_NUM_THREADS=1
  else
    export OMP_NUM_THREADS="$(nproc)"
  fi
fi
echo "[train_p0706] load average $load, OMP_NUM_THREADS=$OMP_NUM_THREADS, output in $OUT"
"$PY" tools/lazyconfig_train_net.py --config-file "$CONFIG" train.output_dir="$OUT" \
  dataloader.evaluator.output_dir="$OUT/eval" "$@" 2>&1 | tee "$OUT/train_p0706.log"
end=$(date +%s)
"$PY" - "$OUT/metrics.json" "$((end - start))" "$load" <<'PYEOF'
import json
import statistics
import sys

path, seconds, load = sys.argv[1], int(sys.argv[2]), sys.argv[3]
evals, times = {}, []
with open(path) as f:
    for line in f:
        rec = json.loads(line)
        if "rbox/AP50" in rec:
            evals = rec
        if "time" in rec:
            times.append(rec["time"])
if not evals:
    sys.exit(f"train_p0706: no evaluation results in {path}")
ap50 = evals["rbox/AP-ship"]
print(f"P0706 ship AP50: {ap50:.1f} (target >= 85: {'met' if ap50 >= 85 else 'NOT met'}), "
      f"AP75: {evals.get('rbox/AP75', float('nan')):.1f}")
spi = statistics.median(times) if times else float("nan")
print(f"wall time {seconds / 60:.1f} min, {spi:.2f} s/iteration (median), "
      f"load average {load} at the start")
with open(path.replace("metrics.json", "summary.json"), "w") as f:
    json.dump({"AP50_ship": ap50, "AP75": evals.get("rbox/AP75"), "seconds": seconds,
               "sec_per_iter": spi, "load_average_start": float(load)}, f, indent=2)
PYEOF
