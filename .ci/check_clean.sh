#!/usr/bin/env bash
# Fails when a committed notebook is not what nbdev_clean makes of it (outputs, execution counts,
# metadata beyond settings.ini's allowed keys), naming each notebook to clean. Changes no file of the checkout.
set -euo pipefail
venv=${1:-.venv}
nbs=$(sed -n 's/^nbs_path *= *//p' settings.ini); nbs=${nbs:-nbs}
copy=$(mktemp -d); trap 'rm -rf "$copy"' EXIT
cp -r "$nbs" "$copy/nbs"
# run from the checkout so nbdev_clean reads this settings.ini (allowed metadata keys, clean_ids)
"$venv/bin/nbdev_clean" --fname "$copy/nbs"
dirty=()
while IFS= read -r -d '' nb; do
  rel=${nb#"$copy/nbs/"}
  cmp -s "$nb" "$nbs/$rel" || dirty+=("$nbs/$rel")
done < <(find "$copy/nbs" -name '*.ipynb' -not -path '*/.*' -print0 | sort -z)
if (( ${#dirty[@]} )); then
  echo "ERROR: these notebooks are not clean (outputs, execution counts or extra metadata would be committed):" >&2
  printf '  %s\n' "${dirty[@]}" >&2
  echo "run nbdev_clean (or: $venv/bin/nbdev_clean --fname <notebook>), then commit them." >&2
  exit 1
fi
echo "notebooks in $nbs/ are clean"
