#!/usr/bin/env bash
# Split DOTA into 1024 px patches, single scale (split_ss) and multi scale (split_ms).
#   bash datasets/prepare_dota.sh [DOTA-v1.0|DOTA-v1.5|DOTA-v2.0] [nproc]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
DATA="${ROTATED_DET_DATASETS:-$ROOT/datasets}"
VER="${1:-DOTA-v1.0}"
NPROC="${2:-$(nproc)}"
BASE="$DATA/$VER"
for d in train val test; do
  [ -d "$BASE/$d/images" ] || { echo "missing $BASE/$d/images (see datasets/README.md)"; exit 1; }
done
for mode in ss ms; do
  for split in train val; do
    "$PY" "$ROOT/tools/split_dota.py" --preset "$mode" --nproc "$NPROC" \
      --img-dirs "$BASE/$split/images" --ann-dirs "$BASE/$split/labelTxt" \
      --save-dir "$BASE/split_$mode/$split"
  done
  "$PY" "$ROOT/tools/split_dota.py" --preset "$mode" --nproc "$NPROC" \
    --img-dirs "$BASE/train/images" "$BASE/val/images" \
    --ann-dirs "$BASE/train/labelTxt" "$BASE/val/labelTxt" --save-dir "$BASE/split_$mode/trainval"
  "$PY" "$ROOT/tools/split_dota.py" --preset "$mode" --nproc "$NPROC" \
    --img-dirs "$BASE/test/images" --save-dir "$BASE/split_$mode/test"
done
