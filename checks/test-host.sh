#!/usr/bin/env bash
# Host checks: formatting, clippy with warnings denied, the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
run() { printf '+ %s\n' "$*"; "$@"; }
run cargo fmt --all --check
run cargo clippy --workspace --all-targets --locked -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set -o pipefail
printf '+ %s\n' "cargo test --workspace --locked"
cargo test --workspace --locked 2>&1 | tee "$log"
checks/test-summary.sh "host tests" "$log"
