#!/usr/bin/env bash
# The test command of the README: sets up the environment if needed, lints, type-checks, runs the
# test suite in parallel with coverage. Stages: ruff check, ruff format --check, clang-format
# (csrc/), mypy (rotated_det/), pytest (2 workers; the layering contract is one of the tests).
#
# Without arguments: the whole suite, with a coverage report and its floor (--cov-fail-under).
# Extra arguments go to pytest instead, without coverage, e.g.
#   bash dev/run_tests.sh tests/layers -k iou
#   bash dev/run_tests.sh -m "not slow"      # the fast loop: skips training and subprocess tests
#   bash dev/run_tests.sh -n 0 tests/x.py    # one process (e.g. for pdb)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash dev/setup_env.sh
BIN="${ROTATED_DET_VENV:-$ROOT/.venv}/bin"
PY="$BIN/python"

# Coverage floor of the whole suite, a few points below what it measures (see DEVELOPERS.md).
COV_FLOOR=90
# Two test workers for two cores; one OpenMP thread each, as torch's threads spin-wait for each
# other on a busy machine (DEVELOPERS.md, "Threads on a busy CPU"). Subprocesses inherit it.
WORKERS="${ROTATED_DET_TEST_WORKERS:-2}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

echo "[lint] ruff check"
"$PY" -m ruff check .
echo "[lint] ruff format --check"
"$PY" -m ruff format --check .
echo "[lint] clang-format (csrc/)"
find csrc -name '*.h' -o -name '*.cpp' -o -name '*.cu' | sort \
  | xargs "$BIN/clang-format" --dry-run -Werror
echo "[types] mypy (rotated_det/, settings in pyproject.toml)"
"$PY" -m mypy
echo "[test] pytest"
# --dist loadfile: a test file runs whole in one worker, so module fixtures (a C++ build, a
# prepared dataset) run once and a file's process-global state (catalog registrations,
# environment variables) stays in one process.
PYTEST=("$PY" -m pytest -q -n "$WORKERS" --dist loadfile)
if [ "$#" -eq 0 ]; then
  exec "${PYTEST[@]}" --durations=15 --cov=rotated_det --cov-report=term \
    --cov-fail-under="$COV_FLOOR"
fi
exec "${PYTEST[@]}" "$@"
