#!/usr/bin/env bash
# Generate the synthetic dataset (and its 512 px patches) under $ROTATED_DET_DATASETS/synthetic.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
export ROTATED_DET_DATASETS="${ROTATED_DET_DATASETS:-$ROOT/datasets}"
exec "$PY" "$ROOT/tools/generate_synthetic.py" "$@"
