#!/usr/bin/env bash
# Benchmark `mailplan apply` on a generated wave: N persons (default 1000) against 3×N destination
# objects, applied from a fresh copy at each parallelism (default 1 and 10), R runs each (default 3).
# Prints actions per second per run. Usage: scripts/bench-apply.sh [N] [R] [PARALLELISM ...]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/mailplan
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
n=${1:-1000}
runs=${2:-3}
shift $(( $# > 2 ? 2 : $# ))
levels=("$@")
[ ${#levels[@]} -gt 0 ] || levels=(1 10)
"$bin" generate --persons "$n" --destination-objects $((n * 3)) --seed 5 --out "$work/pristine" 2>/dev/null
printf '%-12s %-8s %-10s %-10s\n' parallelism actions seconds actions/s
for p in "${levels[@]}"; do
  for _ in $(seq "$runs"); do
    rm -rf "$work/run" && cp -r "$work/pristine" "$work/run"
    start=$(date +%s.%N)
    "$bin" apply "$work/run/plan.yaml" --auto-approve --parallelism "$p" > /dev/null 2> "$work/log"
    end=$(date +%s.%N)
    actions=$(grep -c '^applied ' "$work/log")
    awk -v p="$p" -v a="$actions" -v s="$start" -v e="$end" \
      'BEGIN { printf "%-12s %-8s %-10.2f %-10.0f\n", p, a, e - s, a / (e - s) }'
  done
done
