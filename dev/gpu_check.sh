#!/usr/bin/env bash
# Everything a GPU can tell us about rotated_det, in one run of under 8 minutes on one GPU:
#
#   env         Python, torch, the GPU, and the packages rotated_det imports
#   build       compile the ops with their CUDA kernels (FORCE_CUDA=1 setup.py build_ext --inplace,
#               for the visible GPU's architecture only) and run them on CUDA tensors
#   data        the synthetic dataset and its 512 px patches (tools/generate_synthetic.py)
#   cpu_ref     the float32 CPU reference: each quickstart config trained ITERS iterations on the
#               CPU (dev/quickstart.py, in the background while the GPU stages run)
#   parity      the CUDA parity tests (pytest -m gpu: IoU, NMS, RoIAlignRotated and RiRoIAlign
#               forward and backward, float16/bfloat16, the chunked matcher on CUDA); none may be
#               skipped
#   train_<cfg> each quickstart config (configs/quickstart/<cfg>_R_18_FPN.py) trained ITERS=100
#               iterations with AMP (float16 + GradScaler) on the GPU, evaluated on the synthetic
#               val set (dev/quickstart.py)
#   half_formats_<cfg>  each device-trained model in float16 (eager, TorchScript, torch.export)
#               against float32: detections found at rotated IoU >= 0.9, extra detections, the
#               largest score difference (dev/bench_formats.py --precision float16)
#   map         their mAP50 against the CPU-trained models': same order of magnitude (10x)
#   timings     ops (IoU, NMS, RoIAlignRotated and RiRoIAlign fwd / fwd+bwd) and detectors
#               (train step, inference), GPU vs CPU, next to torchvision's axis-aligned box_iou /
#               nms / roi_align on the same work
#   matcher     dev/bench_matcher.py on the GPU: the 5,000-object 1024 px image, chunked vs dense
#
# Expected on one H200 (estimates, not yet measured): build ~1.5 min, data 20 s, parity 30 s,
# 3 x 40 s of training, 3 x ~20 s of half-precision formats, timings ~75 s, matcher ~25 s: about
# 7.5 minutes.
#
# Each stage prints its output and a PASS/FAIL line; the summary (stages, mAP, timings) goes to
# $OUT (when set, e.g. by the device tool) and to output/gpu_check/. Exit status: 1 if any stage
# failed.
#
# Usage:
#   bash dev/gpu_check.sh                 on a machine with a GPU
#   bash dev/gpu_check.sh --cpu-dry-run   the same plumbing on the CPU with tiny sizes and a few
#                                         iterations (AMP = bfloat16 autocast); no CUDA build
#   bash dev/gpu_check.sh --fetch-wheels  where pip reaches PyPI: put the wheels of the packages
#                                         the device image lacks into .whl/ (Python 3.12); carry
#                                         .whl with the run, this script installs it first
# Environment: PY (interpreter; default .venv/bin/python, else python3), GPU_CHECK_CONFIGS (which
# quickstart configs; the dry run takes one by default), GPU_CHECK_ITERS (training iterations),
# GPU_CHECK_BUDGET (seconds; stages that would start later are skipped and count as failed),
# GPU_CHECK_WORK (work folder).
# On the device tool: run(command="bash dev/gpu_check.sh", carry=[".whl"], timeout_s=600).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MODE=gpu
case "${1:-}" in
  "") ;;
  --cpu-dry-run) MODE=dry ;;
  --fetch-wheels) MODE=fetch ;;
  *) echo "usage: bash dev/gpu_check.sh [--cpu-dry-run | --fetch-wheels]" >&2; exit 2 ;;
esac

if [ -z "${PY:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi

# The device image has torch, torchvision, numpy, opencv, matplotlib, tensorboard, tqdm, PyYAML and
# pytest; these are what it lacks (versions of dev/requirements.txt).
WHEELS_PURE="fvcore==0.1.5.post20221221 iopath==0.1.10 omegaconf==2.3.1 hydra-core==1.3.8
antlr4-python3-runtime==4.9.3 yacs==0.1.8 termcolor==3.3.0 portalocker==4.4.2 tabulate==0.10.0"
WHEELS_BINARY="pycocotools==2.0.11 shapely==2.2.0"
if [ "$MODE" = fetch ]; then
  mkdir -p .whl
  # shellcheck disable=SC2086
  "$PY" -m pip wheel -q --no-deps -w .whl $WHEELS_PURE || exit 1
  for spec in $WHEELS_BINARY; do
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 -d .whl "$spec" || exit 1
  done
  ls -l .whl
  echo "wheels in .whl/ ($(du -sh .whl | cut -f1)); carry \".whl\" with the device run"
  exit 0
fi

WORK="${GPU_CHECK_WORK:-$ROOT/output/gpu_check}"
rm -rf "$WORK/logs" "$WORK/train" "$WORK/stages.tsv" "$WORK/map.json" "$WORK/timings.json"
mkdir -p "$WORK/logs" "$WORK/train"
LOG="$WORK/gpu_check.log"
exec > >(tee "$LOG") 2>&1
export PYTHONUNBUFFERED=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
NCPU="$(nproc)"
if [ "$MODE" = gpu ]; then
  CONFIGS="${GPU_CHECK_CONFIGS:-rotated_faster_rcnn rotated_retinanet oriented_rcnn}"
  ITERS="${GPU_CHECK_ITERS:-100}"
  BUDGET="${GPU_CHECK_BUDGET:-530}"
  DEVICE=cuda
  DATA_ARGS=(--num-train 24 --num-val 6)  # half the quickstart's set: generated in ~20 s
  CPU_REF_THREADS=$(( NCPU / 4 > 0 ? NCPU / 4 : 1 ))
  DEVICE_THREADS=4
  TIMINGS_ARGS=(--device cuda --repeat 5 --iters 2 --warmup 1)
  MATCHER_ARGS=(--device cuda --threads "$NCPU" --objects 5000)
else
  CONFIGS="${GPU_CHECK_CONFIGS:-rotated_faster_rcnn}"
  ITERS="${GPU_CHECK_ITERS:-2}"
  BUDGET="${GPU_CHECK_BUDGET:-900}"
  DEVICE=cpu
  DATA_ARGS=(--num-train 3 --num-val 2 --image-size 384 --large-fraction 0)
  CPU_REF_THREADS=1
  DEVICE_THREADS=1
  TIMINGS_ARGS=(--device cpu --small --repeat 1 --iters 1 --warmup 0)
  MATCHER_ARGS=(--device cpu --threads 1 --size 256 --objects 60)
fi
T0=$(date +%s)
FAILED=0

# stage NAME TIMEOUT_S COMMAND...: runs COMMAND (stdout+stderr to the console and
# logs/NAME.log), records PASS/FAIL and the seconds in stages.tsv. Within the time budget only:
# the timeout is cut to what is left, and a stage with nothing left is skipped (a failure).
stage() {
  local name="$1" limit="$2"; shift 2
  local start rc status note="" left
  start=$(date +%s)
  left=$(( BUDGET - (start - T0) ))
  if [ "$left" -le 5 ]; then
    FAILED=1
    record "$name" SKIP 0 "time budget (${BUDGET} s) spent"
    return 1
  fi
  [ "$left" -lt "$limit" ] && limit="$left"
  echo
  echo "=== [$name] $*   (elapsed $(( start - T0 )) s)"
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$WORK/logs/$name.log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 0 ]; then status=PASS; else status=FAIL; FAILED=1; note="exit $rc"; fi
  [ "$rc" -eq 124 ] && note="timed out after ${limit} s"
  record "$name" "$status" "$(( $(date +%s) - start ))" "$note"
  return "$rc"
}
record() {  # NAME STATUS SECONDS NOTE
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$WORK/stages.tsv"
  echo "=== [$1] $2 ($3 s)${4:+: $4}"
}
quickstart_cmd() {  # CONFIG RUN_NAME THREADS OVERRIDES... -> the command in QS
  local cfg="$1" run="$2" threads="$3"; shift 3
  QS=("$PY" dev/quickstart.py --config-file "configs/quickstart/${cfg}_R_18_FPN.py"
    --output-dir "$WORK/train/$run" --datasets-root "$WORK/datasets" --max-iter "$ITERS"
    --num-draw 1 --num-threads "$threads" "$@")
}
finish() {
  echo
  "$PY" dev/gpu_check.py summary --work "$WORK" --out "${OUT:-}" --mode "$MODE" \
    --elapsed "$(( $(date +%s) - T0 ))"
  [ -n "${OUT:-}" ] && cp "$LOG" "$OUT/gpu_check.log" 2>/dev/null
  exit "$FAILED"
}

echo "rotated_det GPU check, mode $MODE, $NCPU CPUs, work folder $WORK, python $PY"

# -- env: install carried wheels first (the device image lacks some packages)
if [ "$MODE" = gpu ] && compgen -G ".whl/*.whl" > /dev/null; then
  echo "installing the carried wheels (.whl/) into /tmp/gpu_check_site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/gpu_check_site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/gpu_check_site"
fi
dry_flag=(); [ "$MODE" = dry ] && dry_flag=(--cpu-dry-run)
stage env 60 "$PY" dev/gpu_check.py env "${dry_flag[@]}" || finish

# -- build
if [ "$MODE" = gpu ]; then
  ARCH="$("$PY" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability(0))')"
  # pip's CUDA wheels keep the CUDA headers in site-packages (as dev/build_cuda.sh finds them)
  SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  [ -d "$SITE/nvidia/cu13/include" ] && export CPATH="$SITE/nvidia/cu13/include${CPATH:+:$CPATH}"
  stage build 300 env FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$ARCH" MAX_JOBS="$NCPU" \
    "$PY" setup.py -q build_ext --inplace || finish
  stage cuda_kernels 60 "$PY" dev/gpu_check.py cuda-kernels || finish
else
  stage build 60 "$PY" -c "from rotated_det.layers.ops_library import library_path, load_library
load_library(); print('CPU library', library_path(), '(CUDA compile skipped in the dry run; dev/build_cuda.sh compiles it without a GPU)')" || finish
fi

# -- data, then the CPU reference trainings in the background
stage data 300 "$PY" tools/generate_synthetic.py --root "$WORK/datasets/synthetic" "${DATA_ARGS[@]}" || finish
declare -A REF_PID REF_START
# They must end before the timings (which want the CPU cores to themselves): ~150 s before the end.
REF_LIMIT=$(( BUDGET - ($(date +%s) - T0) - 150 ))
[ "$REF_LIMIT" -lt 30 ] && REF_LIMIT=30
for cfg in $CONFIGS; do
  quickstart_cmd "$cfg" "${cfg}_cpu" "$CPU_REF_THREADS" train.device=cpu
  timeout --kill-after=10 "$REF_LIMIT" "${QS[@]}" > "$WORK/logs/cpu_ref_$cfg.log" 2>&1 &
  REF_PID[$cfg]=$!
  REF_START[$cfg]=$(date +%s)
  echo "=== [cpu_ref_$cfg] started in the background (pid ${REF_PID[$cfg]}, log logs/cpu_ref_$cfg.log)"
done

# -- CUDA parity tests (they skip without a GPU; on the GPU a skip is an error)
require=(); [ "$MODE" = gpu ] && require=(env ROTATED_DET_REQUIRE_CUDA=1)
stage parity 240 "${require[@]}" "$PY" -m pytest -q -m gpu -p no:cacheprovider \
  tests/layers/test_ops_cuda_parity.py tests/layers/test_ri_roi_align_rotated.py \
  tests/modeling/test_matcher_crowded.py

# -- AMP training + evaluation of each quickstart config on the device
for cfg in $CONFIGS; do
  quickstart_cmd "$cfg" "${cfg}_device" "$DEVICE_THREADS" train.device="$DEVICE" \
    train.amp.enabled=True
  stage "train_$cfg" 300 "${QS[@]}"
done

# -- each exported format in half precision (float16 on the GPU, bfloat16 in the dry run) against
# float32: dev/bench_formats.py on the device-trained models (eager, TorchScript, torch.export;
# AOTI takes minutes to compile and is left out)
HALF=float16; [ "$MODE" = dry ] && HALF=bfloat16
VAL_IMAGE="$(find "$WORK/datasets" -path '*split_512/val/images/*.png' 2>/dev/null | sort | head -n1)"
for cfg in $CONFIGS; do
  stage "half_formats_$cfg" 60 "$PY" dev/bench_formats.py \
    "configs/quickstart/${cfg}_R_18_FPN.py=$WORK/train/${cfg}_device/train/model_final.pth" \
    --device "$DEVICE" --precision "$HALF" --image "$VAL_IMAGE" --threads "$DEVICE_THREADS" \
    --repeat 2 --json "$WORK/half_formats_$cfg.json"
done

# -- wait for the CPU references
for cfg in $CONFIGS; do
  wait "${REF_PID[$cfg]}"
  rc=$?
  secs=$(( $(date +%s) - ${REF_START[$cfg]} ))
  if [ "$rc" -eq 0 ]; then record "cpu_ref_$cfg" PASS "$secs" ""
  else
    FAILED=1
    note="exit $rc (logs/cpu_ref_$cfg.log)"
    [ "$rc" -eq 124 ] && note="timed out after $REF_LIMIT s (logs/cpu_ref_$cfg.log)"
    record "cpu_ref_$cfg" FAIL "$secs" "$note"
    tail -n 20 "$WORK/logs/cpu_ref_$cfg.log"
  fi
done
# shellcheck disable=SC2086
stage map 60 "$PY" dev/gpu_check.py compare --train-dir "$WORK/train" --configs $CONFIGS \
  --json "$WORK/map.json"

# -- timings (after the CPU references, so that the CPU timings have the cores to themselves)
stage timings 240 "$PY" dev/gpu_check.py timings "${TIMINGS_ARGS[@]}" --json "$WORK/timings.json"
stage matcher 180 "$PY" dev/bench_matcher.py "${MATCHER_ARGS[@]}"

finish
