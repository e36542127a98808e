#!/usr/bin/env bash
# The main job of the README: set up the environment, then run the quickstart end to end on the
# CPU (synthetic data -> split -> train -> evaluate mAP50 -> draw predictions -> summary).
#   bash dev/quickstart.sh                  # everything (re-runs reuse the env and the dataset)
#   bash dev/quickstart.sh --skip-train     # only evaluate and draw the last trained model
#   bash dev/quickstart.sh --help           # options (dev/quickstart.py)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash dev/setup_env.sh
PY="${ROTATED_DET_VENV:-$ROOT/.venv}/bin/python"
exec "$PY" dev/quickstart.py "$@"
