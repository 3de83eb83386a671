#!/usr/bin/env bash
# Side-by-side benchmarks (`make bench`, which builds the host release binaries first):
# the agent per ADP memory-gate profile (host, then the armv7 binary under qemu-arm),
# the plain-StatsD zero-drop rate against Etsy statsd and collectd's statsd plugin,
# the heavy DogStatsD shape over UDP on one core, and endless new contexts against the
# default context limits (RSS over time, drops), and DHAT heap profiles of the agent
# per profile (allocations and the sites behind them; valgrind), and the idle agent with
# its system checks and host payload on vs off (`--only checks`). Regenerates
# docs/benchmarks.md (the generated section only), bench/results.json and
# docs/benchmarks-rss.png.
#
#   checks/bench.sh [bench.py options...]     e.g. --only profiles --profiles idle,low
#
# Installs on first use, into ignored directories: Etsy statsd 0.9.0 (npm, bench/.peers)
# and matplotlib (a venv, bench/.venv). collectd comes from `make setup`.
# Never part of `make check`: the numbers depend on the machine and its load.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
say() { echo "bench: $*"; }
run() { printf '+ %s\n' "$*"; "$@"; }

for bin in agent-data-plane adp-test-intake adp-loadgen; do
    [ -x "target/release/$bin" ] || { echo "bench: target/release/$bin missing: run 'make adp' (make bench does)" >&2; exit 2; }
done
for tool in python3 node npm taskset qemu-arm arm-linux-gnueabihf-strip valgrind; do
    command -v "$tool" >/dev/null || { echo "bench: $tool not found (make setup)" >&2; exit 2; }
done
[ -x /usr/sbin/collectd ] && [ -f /usr/lib/collectd/statsd.so ] || { echo "bench: collectd-core missing (make setup)" >&2; exit 2; }

if [ ! -f bench/.peers/node_modules/statsd/stats.js ]; then
    run npm install --no-audit --no-fund --prefix bench/.peers statsd@0.9.0
fi
if ! bench/.venv/bin/python -c 'import matplotlib' 2>/dev/null; then
    run python3 -m venv bench/.venv
    run bench/.venv/bin/pip install --quiet 'matplotlib>=3.6,<4'
fi

# The armv7 binary (Debian's Rust 1.85, cross); cargo makes this a no-op when up to date.
# ADP_BENCH_ARMV7_BUILD=0 measures the armv7 binary already built instead.
if [ "${ADP_BENCH_ARMV7_BUILD:-1}" = 0 ]; then
    say "ADP_BENCH_ARMV7_BUILD=0: using the existing armv7 binary"
elif [ -x /usr/bin/cargo ]; then
    run checks/cargo-armv7.sh build --release --locked -p agent-data-plane
else
    say "no /usr/bin/cargo: using the existing armv7 binary if any (make setup installs it)"
fi

say "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
run python3 bench/bench.py --chart-python bench/.venv/bin/python "$@"
say "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
