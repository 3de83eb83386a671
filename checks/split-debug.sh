#!/usr/bin/env bash
# Splits a binary's debug info into its own file, strips the binary and links
# the two: the one way the release's shipped binary and .debug file are made,
# by `make adp-armv7`, `adp-arm64`, `adp-amd64` (checks/build-adp.sh) and by
# the flake's packages.adp-armv7 (nix/package.nix).
#
#   checks/split-debug.sh BINARY STRIPPED DEBUG_FILE
#
# Writes STRIPPED (BINARY with --strip-all and a .gnu_debuglink to DEBUG_FILE:
# the link holds the debug file's base name and CRC32) and DEBUG_FILE
# (--only-keep-debug, zlib-compressed sections). The GNU build-id note stays
# in both. objcopy and strip write no timestamps: the output is a function of
# the input.
#
# ADP_BINUTILS_PREFIX: what objcopy and strip are called with in front
# (default arm-linux-gnueabihf-, Debian's armv7 cross binutils; build-adp.sh
# passes each architecture's, the flake its binutils' absolute path prefix).
set -euo pipefail

usage="usage: checks/split-debug.sh BINARY STRIPPED DEBUG_FILE"
BIN=${1:?$usage}
STRIPPED=${2:?$usage}
DEBUG=${3:?$usage}
PREFIX=${ADP_BINUTILS_PREFIX:-arm-linux-gnueabihf-}

run() { printf '+ %s\n' "$*" >&2; "$@"; }
for tool in objcopy strip; do
    command -v "$PREFIX$tool" >/dev/null ||
        { echo "split-debug: $PREFIX$tool not found (make setup installs the cross binutils)" >&2; exit 2; }
done
[ -f "$BIN" ] || { echo "split-debug: $BIN does not exist" >&2; exit 2; }

run "${PREFIX}objcopy" --only-keep-debug --compress-debug-sections=zlib "$BIN" "$DEBUG"
run "${PREFIX}strip" --strip-all -o "$STRIPPED" "$BIN"
run "${PREFIX}objcopy" --add-gnu-debuglink="$DEBUG" "$STRIPPED"
