#!/usr/bin/env bash
# Redraws the charts the documentation shows: the tour's report into
# docs/tour/ (index.html and one SVG per chart, from the runs the tour
# prints), and a copy of each crate's most telling chart into its docs/
# folder, which its guide embeds. Counter and lateness charts measure this
# machine, so they change a little with every run.
#
# Usage: scripts/charts.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sysblocks/target}
cargo run --release -q -p sysblocks-examples --bin tour -- --report docs/tour >/dev/null
for pair in ratelimit:ratelimit-boundary consistent-hash:consistent-hash-vnodes \
  lru-cache:lru-cache-hit-ratio merkle:merkle-bytes \
  sharded-counter:sharded-counter-threads scheduler:scheduler-retries; do
  crate=${pair%%:*}
  chart=${pair#*:}
  mkdir -p "$crate/docs"
  cp "docs/tour/$chart.svg" "$crate/docs/"
done
echo "charts redrawn: docs/tour/index.html and each crate's docs/"
