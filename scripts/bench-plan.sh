#!/usr/bin/env bash
# Benchmark `mailplan plan` on generated directories: N persons against 3×N destination objects.
# Prints wall time and peak memory per size. Usage: scripts/bench-plan.sh [N ...] (default 10000 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/mailplan
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 100000)
printf '%-10s %-12s %-10s %-12s\n' persons destination seconds peak_MiB
for n in "${sizes[@]}"; do
  "$bin" generate --persons "$n" --destination-objects $((n * 3)) --seed 1 --out "$work/$n" 2>/dev/null
  "$bin" plan "$work/$n/plan.yaml" > /dev/null  # warm the page cache
  /usr/bin/time -f '%e %M' -o "$work/time" "$bin" plan "$work/$n/plan.yaml" > /dev/null
  read -r secs kib < "$work/time"
  printf '%-10s %-12s %-10s %-12s\n' "$n" $((n * 3)) "$secs" $((kib / 1024))
done
