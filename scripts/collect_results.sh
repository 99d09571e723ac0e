#!/usr/bin/env bash
# Copy what `aae reproduce` wrote under runs/reproduce/ into docs/results/ for committing:
# each experiment's results.md (the table and the command), every run's metrics log, config and
# final metrics (final.json: what lets a later session count the run without its weights),
# and its figures. No weights: checkpoints stay in runs/.
#   scripts/collect_results.sh prior-match-mixture [more experiment names...]
set -euo pipefail
cd "$(dirname "$0")/.."
for exp in "$@"; do
  src="runs/reproduce/$exp"
  dst="docs/results/$exp"
  [ -f "$src/results.md" ] || { echo "no $src/results.md: has the run finished?" >&2; exit 1; }
  mkdir -p "$dst"
  cp "$src/results.md" "docs/results/$exp.md"
  while IFS= read -r -d '' log; do
    run=$(dirname "${log#"$src"/}")
    mkdir -p "$dst/$run"
    cp "$log" "$dst/$run/metrics.jsonl"
    cp "$(dirname "$log")/config.json" "$dst/$run/config.json"
    [ -f "$(dirname "$log")/final.json" ] && cp "$(dirname "$log")/final.json" "$dst/$run/final.json"
    for f in latent samples manifold map restyle cluster_heads; do
      [ -f "$(dirname "$log")/figures/$f.png" ] && cp "$(dirname "$log")/figures/$f.png" "$dst/$run/"
    done
  done < <(find "$src" -name metrics.jsonl -print0)
  echo "$dst"
done
