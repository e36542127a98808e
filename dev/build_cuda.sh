#!/usr/bin/env bash
# Compile-only build of the CUDA kernels (FORCE_CUDA=1) into a scratch directory, so that they
# cannot rot on machines without a GPU. Does not touch the installed CPU build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash dev/setup_env.sh
PY="${ROTATED_DET_VENV:-$ROOT/.venv}/bin/python"
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
export CPATH="$SITE/nvidia/cu13/include${CPATH:+:$CPATH}"
export FORCE_CUDA=1 MAX_JOBS="${MAX_JOBS:-2}"
echo "[cuda] compiling CUDA kernels (compile only) into $OUT"
"$PY" setup.py -q build_ext --build-temp "$OUT/tmp" --build-lib "$OUT/lib"
so="$(find "$OUT/lib" -name '_C*.so' | head -n1)"
[ -n "$so" ] || { echo "[cuda] no library was produced" >&2; exit 1; }
# (grep reads all of nm's output: an early `grep -q` exit would SIGPIPE nm under pipefail)
grep -q "cuda" < <(nm -C -D "$so") || { echo "[cuda] $so has no CUDA symbols" >&2; exit 1; }
echo "[cuda] OK: $(basename "$so") built with CUDA kernels"
