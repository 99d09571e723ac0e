#!/usr/bin/env bash
# The other half of collect_results.sh: bring the records of runs that earlier sessions finished
# (docs/results/EXP/RUN/{final.json,metrics.jsonl,config.json}) back under runs/reproduce/EXP, so
# that `aae reproduce` counts them and trains only the runs still missing. No run already under
# runs/ is touched.
#   scripts/restore_results.sh semi-supervised [more experiment names...]
set -euo pipefail
cd "$(dirname "$0")/.."
for exp in "$@"; do
  src="docs/results/$exp"
  [ -d "$src" ] || { echo "no $src" >&2; exit 1; }
  while IFS= read -r -d '' final; do
    run=$(dirname "${final#"$src"/}")
    dst="runs/reproduce/$exp/$run"
    if [ -e "$dst" ]; then echo "kept $dst"; continue; fi
    mkdir -p "$dst"
    cp "$src/$run/final.json" "$src/$run/metrics.jsonl" "$src/$run/config.json" "$dst/"
    echo "restored $dst"
  done < <(find "$src" -name final.json -print0)
done
