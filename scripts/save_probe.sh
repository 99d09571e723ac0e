#!/usr/bin/env bash
# Copy a probe's record (config, per-epoch metrics, final metrics if it finished, and its console
# log from runs/logs/<name>.log) into docs/results/ablations/probes/<name>/ for committing.
# No weights.   scripts/save_probe.sh cl30-imsat10 [more probe names...]
set -euo pipefail
cd "$(dirname "$0")/.."
for name in "$@"; do
  src="runs/probe/$name" dst="docs/results/ablations/probes/$name"
  [ -f "$src/metrics.jsonl" ] || { echo "no $src/metrics.jsonl" >&2; exit 1; }
  mkdir -p "$dst"
  cp "$src/config.json" "$src/metrics.jsonl" "$dst/"
  [ -f "$src/final.json" ] && cp "$src/final.json" "$dst/"
  [ -f "runs/logs/$name.log" ] && cp "runs/logs/$name.log" "$dst/train.log"
  echo "$dst"
done
