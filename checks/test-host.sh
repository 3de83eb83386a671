#!/usr/bin/env bash
# Host checks: formatting, clippy with warnings denied, the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
run() { printf '+ %s\n' "$*"; "$@"; }
run cargo fmt --all --check
run cargo clippy --workspace --all-targets --locked -- -D warnings
log=$(mktemp)
sandbox=$(mktemp -d /tmp/adp-sandbox.XXXXXX)
chmod 0755 "$sandbox"
trap 'rm -f "$log"; rm -rf "$sandbox"' EXIT
# Every test binary runs under checks.adp-test's builder conditions, with the
# tools checks/tools.json declares for "test" (cargo's target runner).
runner=$(checks/lib/builder-sandbox.sh runner test "$sandbox/tools")
host=$(rustc -vV | sed -n 's/^host: //p')
runner_var=CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$host")_RUNNER
set -o pipefail
printf '+ %s\n' "${runner:+$runner_var='$runner' }cargo test --workspace --locked"
env ${runner:+"$runner_var=$runner"} cargo test --workspace --locked 2>&1 | tee "$log"
checks/test-summary.sh "host tests" "$log"
