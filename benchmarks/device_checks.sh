#!/usr/bin/env bash
# The GPU checks of this project in one prepared call, for a session lent a GPU machine.
#
#   bash benchmarks/device_checks.sh --fetch-wheels   # here: the wheels that machine lacks
#                                                     # (zarr and its codecs, for Python 3.12) into .whl/
#   bash benchmarks/device_checks.sh                  # there (device run, carry [".whl"], timeout 600 s)
#   DEVICE=cpu bash benchmarks/device_checks.sh --quick   # a rehearsal of the same flow on a CPU
#   bash benchmarks/device_checks.sh --mps            # there, a second call if time is left:
#                                                     # the packing benchmark alone under CUDA MPS
#
# What it runs, each step under its own time limit so that the whole ends inside one call:
#   1. benchmarks/gpu_packing.py      aggregate steps/s of 1, 2, 4 concurrent trials; last line
#                                     `speedup 4/1: X` (goal ≥ 2.5)
#   2. benchmarks/trainer_overhead.py Lightning vs plain loop; GPU steps/s and TFLOP/s at batch 1/8/32
#   3. python -m pytest -m gpu        the CUDA tests (simulator, trials, memory estimate vs peak)
#   4. benchmarks/model_speed.py      steps/s of each INR variant at the anchor size
# Each step's output goes to the terminal and to $OUT/<step>.log (the files that come back);
# the last lines are a table of step, exit code and seconds. Ray is not needed: the packing
# benchmark runs its trials as processes, as Ray would.
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=(zarr numcodecs donfig google-crc32c)  # missing on the GPU image; versions as installed here

if [ "${1:-}" = "--fetch-wheels" ]; then
  specs=()
  for name in "${WHEELS[@]}"; do
    version=$(python -m pip show "$name" 2>/dev/null | awk '/^Version:/ {print $2}')
    [ -n "$version" ] || { echo "error: $name is not installed here; pip install -e . first" >&2; exit 2; }
    specs+=("$name==$version")
  done
  rm -rf .whl && mkdir -p .whl
  python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${specs[@]}" || exit 2
  echo "wrote $(ls .whl | wc -l) wheels to .whl/ (${specs[*]}); carry [\".whl\"] in the device run"
  exit 0
fi

QUICK="" MPS=""
[ "${1:-}" = "--quick" ] && QUICK="--quick"
[ "${1:-}" = "--mps" ] && MPS=1
DEVICE="${DEVICE:-cuda}"
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
PY="${PYTHON:-python3}"

if ! "$PY" -c "import zarr" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/inr_tune_site .whl/*.whl || { echo "error: installing .whl/ failed" >&2; exit 2; }
  export PYTHONPATH="/tmp/inr_tune_site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"  # the checkout itself, not an installed copy
export INR_TUNE_DATA="${INR_TUNE_DATA:-/tmp/inr_tune_datasets}"  # outside $OUT: not sent back

{
  date -u
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$PY" -c "import torch, lightning, zarr; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else ''); print('lightning', lightning.__version__, 'zarr', zarr.__version__)"
} 2>&1 | tee "$OUT/env.log"
if [ "$DEVICE" = cuda ] && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  echo "error: no CUDA device here; DEVICE=cpu rehearses the flow on a CPU" >&2
  exit 2
fi
# The default dataset once, before the timed steps (trainer_overhead reads it).
"$PY" -m inr_tune.data default mpm 2>&1 | tail -2 | tee "$OUT/dataset.log"

summary=()
step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s): $*"
  local t0=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  summary+=("$(printf '%-18s rc=%-4s %5ss' "$name" "$rc" "$((SECONDS - t0))")")
}

if [ -n "$MPS" ]; then
  # Processes on one GPU are time-sliced; the MPS server lets their kernels run side by side.
  command -v nvidia-cuda-mps-control >/dev/null || { echo "error: no nvidia-cuda-mps-control here" >&2; exit 2; }
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  nvidia-cuda-mps-control -d || { echo "error: the MPS server did not start" >&2; exit 2; }
  step gpu_packing_mps 300 "$PY" benchmarks/gpu_packing.py --device cuda
  echo quit | nvidia-cuda-mps-control
  cp "$CUDA_MPS_LOG_DIRECTORY/control.log" "$OUT/mps_control.log" 2>/dev/null || true
else
  # Limits add up to 520 s, plus ~30 s for the dataset: inside one 600-s call.
  speed_steps=10
  [ -n "$QUICK" ] && speed_steps=2
  step gpu_packing 170 "$PY" benchmarks/gpu_packing.py --device "$DEVICE" $QUICK
  step trainer_overhead 160 "$PY" benchmarks/trainer_overhead.py --device "$DEVICE" $QUICK
  step gpu_tests 140 "$PY" -m pytest -m gpu -p no:cacheprovider -q tests/test_gpu.py tests/test_mpm.py
  step model_speed 50 "$PY" benchmarks/model_speed.py --device "$DEVICE" --steps "$speed_steps"
fi

printf '%s\n' "== summary (logs in $OUT)" "${summary[@]}" | tee "$OUT/summary.log"
