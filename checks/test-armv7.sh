#!/usr/bin/env bash
# The entire workspace test suite compiled with the pinned Debian Rust 1.85 for
# armv7-unknown-linux-gnueabihf and run under qemu-arm (the cargo runner).
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
checks/cargo-armv7.sh test --workspace --locked 2>&1 | tee "$log"
checks/test-summary.sh "armv7 tests (qemu-arm)" "$log"
