#!/usr/bin/env bash
# The entire workspace test suite compiled with the pinned Debian Rust 1.85 for
# armv7-unknown-linux-gnueabihf and run under qemu-arm (the cargo runner).
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
sandbox=$(mktemp -d /tmp/adp-sandbox.XXXXXX)
chmod 0755 "$sandbox"
trap 'rm -f "$log"; rm -rf "$sandbox"' EXIT
# Every test binary runs (under qemu-arm) with checks.adp-test-armv7's builder
# conditions and the tools checks/tools.json declares for "test-armv7".
ADP_SANDBOX_RUNNER=$(checks/lib/builder-sandbox.sh runner test-armv7 "$sandbox/tools")
export ADP_SANDBOX_RUNNER
checks/cargo-armv7.sh test --workspace --locked 2>&1 | tee "$log"
checks/test-summary.sh "armv7 tests (qemu-arm)" "$log"
