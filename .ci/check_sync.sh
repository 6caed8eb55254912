#!/usr/bin/env bash
# Fails when hier_repro/ is not what nbdev_export makes of nbs/ (notebooks are the source).
set -euo pipefail
venv=${1:-.venv}
before=$(mktemp -d)
cp -r hier_repro "$before/"
"$venv/bin/nbdev_export"
if ! diff -r -q -x __pycache__ "$before/hier_repro" hier_repro >/dev/null; then
  echo "ERROR: hier_repro/ was out of sync with nbs/ (the notebooks are the source of the library)." >&2
  diff -r -q -x __pycache__ "$before/hier_repro" hier_repro >&2 || true
  echo "nbdev_export has now rewritten hier_repro/ from nbs/: review the diff, then commit nbs/ and hier_repro/ together." >&2
  rm -rf "$before"
  exit 1
fi
rm -rf "$before"
echo "hier_repro/ is in sync with nbs/"
