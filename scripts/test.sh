#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs the whole suite.
# Run from anywhere; CI runs it through .ci/run on a fresh machine as root.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== formatting"
cargo fmt --all --check

echo "== lints"
cargo clippy --all-targets --locked -- -D warnings

echo "== tests"
cargo test --locked --all-targets
