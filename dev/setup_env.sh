#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment in .venv and installs rotated_det into it.
# Idempotent: a second run only checks that everything is in place, and rebuilds the compiled ops
# when a file under csrc/ is newer than the built library.
# Usage: source-free; other scripts call it and then use .venv/bin/python.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${ROTATED_DET_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
STAMP="$VENV/.requirements.sha"

if [ ! -x "$PY" ]; then
  echo "[setup] creating virtual environment in $VENV"
  python3 -m venv "$VENV"
fi

want_sha="$(sha256sum dev/requirements.txt | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want_sha" ]; then
  echo "[setup] installing pinned dependencies (dev/requirements.txt; torch is ~5 GB the first time)"
  "$PY" -m pip install -q --upgrade pip setuptools wheel
  "$PY" -m pip install -q -r dev/requirements.txt
  echo "$want_sha" > "$STAMP"
fi

# (Re)build the compiled ops when missing or older than any source file.
lib="$(ls rotated_det/_C*.so 2>/dev/null | head -n1 || true)"
newest_src="$(find csrc setup.py -type f -newer "${lib:-/nonexistent}" 2>/dev/null | head -n1 || true)"
if [ -z "$lib" ] || [ -n "$newest_src" ] || ! "$PY" -c "import rotated_det" 2>/dev/null; then
  echo "[setup] building rotated_det (pip install -e ., compiling csrc/)"
  MAX_JOBS="${MAX_JOBS:-2}" "$PY" -m pip install -q --no-build-isolation --no-deps -e .
fi
echo "[setup] environment ready: $PY"
