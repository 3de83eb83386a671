#!/usr/bin/env bash
# Size gate on the stripped armv7 binary: a 512 MiB board pays for every byte
# in page cache and flash. The threshold is the measured size plus ~10 %
# headroom; raise it deliberately (and say why in the commit) when a feature
# really needs the bytes.
#
#   checks/size.sh BINARY        # ADP_MAX_BINARY_BYTES=N overrides the threshold
set -euo pipefail

BIN=${1:?usage: checks/size.sh BINARY}
# Measured 2026-11-25: agent-data-plane 0.1.0 (9b9628ca), Debian Rust 1.85, fat LTO, stripped.
MEASURED_BYTES=4304084
MAX_BYTES=${ADP_MAX_BINARY_BYTES:-$((MEASURED_BYTES + MEASURED_BYTES / 10))}

[ -f "$BIN" ] || { echo "size: $BIN does not exist" >&2; exit 2; }
STRIP=arm-linux-gnueabihf-strip
command -v "$STRIP" >/dev/null || { echo "size: $STRIP not found (make setup)" >&2; exit 2; }

# Measure what ships: strip a copy (a no-op for the already stripped binary).
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
"$STRIP" --strip-all -o "$tmp" "$BIN"
size=$(stat -c %s "$tmp")
mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }
echo "size: $BIN stripped: $size bytes ($(mib "$size")); threshold $MAX_BYTES bytes ($(mib "$MAX_BYTES")) = measured $MEASURED_BYTES + 10 %"
if [ "$size" -gt "$MAX_BYTES" ]; then
    echo "size: FAIL: $size bytes exceeds the threshold by $((size - MAX_BYTES)) bytes;" \
        "find the growth with 'cargo bloat' or 'cargo tree', or raise MEASURED_BYTES in checks/size.sh deliberately" >&2
    exit 1
fi
echo "size: ok"
