#!/usr/bin/env bash
# The test command of the README: sets up the environment if needed, lints, runs the test suite.
# Extra arguments go to pytest (e.g. `bash dev/run_tests.sh tests/layers -k iou`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash dev/setup_env.sh
PY="${ROTATED_DET_VENV:-$ROOT/.venv}/bin/python"
echo "[lint] ruff check"
"$PY" -m ruff check .
echo "[test] pytest"
exec "$PY" -m pytest -q "$@"
