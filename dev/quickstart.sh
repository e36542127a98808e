#!/usr/bin/env bash
# The main job of the README. Until the end-to-end quickstart lands it runs the op benchmark.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash dev/setup_env.sh
PY="${ROTATED_DET_VENV:-$ROOT/.venv}/bin/python"
exec "$PY" dev/bench_ops.py "$@"
