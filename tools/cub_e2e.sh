#!/bin/bash
# The CUB end-to-end records (EfficientNet-Lite0, its last block trained on cached maps of 8 views): ProxyDR, DML-CRC and
# Average-K e2e grids on a CUB copy, seeds 1-3 then 4-5, two worker processes. Usage: tools/cub_e2e.sh [CUB root] [train flag]
set -e
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE
ROOT=${1:-../shared/data/cub/CUB_200_2011_subset100}
FLAG=${2:-0}
for s in 1-3 4-5; do
  for e in proxydr dmlcrc avgk; do
    echo "=== $e seeds $s $(date)"
    .venv/bin/hier-repro grid $e --profile e2e --dataset cub --root "$ROOT" --train-flag "$FLAG" --jobs 2 --seeds $s
  done
done
