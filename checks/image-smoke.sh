#!/usr/bin/env bash
# Runs the agent from the OCI image's own rootfs: the image's glibc and
# libgcc_s (from the pinned bookworm .debs), not the build host's. There is no
# container engine on the build machines; `qemu-arm -L ROOTFS` makes the
# rootfs the emulated program's root for library and interpreter lookups.
#
#   checks/image-smoke.sh [RESULT_DIR]     # default: result-adp-armv7
#   checks/image-smoke.sh result-adp-armv7/oci   # or the OCI layout itself
#
# Unpacks the image with `umoci unpack --rootless`, shows which libraries the
# dynamic loader picked, then runs checks/smoke.sh (the agent's smoke test)
# on ROOTFS/usr/bin/agent-data-plane with the runner `qemu-arm -L ROOTFS`.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RESULT=${1:-$ROOT/result-adp-armv7}
LAYOUT=$RESULT/oci
[ -f "$RESULT/index.json" ] && LAYOUT=$RESULT
[ -f "$LAYOUT/index.json" ] || { echo "image-smoke: no OCI layout at $LAYOUT; run 'make adp-armv7' first" >&2; exit 2; }
[ -x "$ROOT/checks/smoke.sh" ] || { echo "image-smoke: checks/smoke.sh (the agent's smoke test) is missing" >&2; exit 2; }
for tool in umoci qemu-arm python3; do
    command -v "$tool" >/dev/null || { echo "image-smoke: $tool not found (make setup)" >&2; exit 2; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tag=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"])' "$LAYOUT/index.json")
# A writable copy: umoci locks the layout, and the trap's rm must be able to
# remove the copy of a read-only input (a store path) as an unprivileged user.
cp -r --no-preserve=mode "$LAYOUT" "$work/layout"
printf '+ umoci unpack --rootless --image %s %s\n' "$work/layout:$tag" "$work/bundle"
umoci unpack --rootless --image "$work/layout:$tag" "$work/bundle" >/dev/null
ROOTFS=$work/bundle/rootfs
BIN=$ROOTFS/usr/bin/agent-data-plane

# The loader's own report: every library must come from the image.
echo "image-smoke: libraries loaded from the image rootfs $ROOTFS:"
loaded=$(qemu-arm -E LD_DEBUG=libs -L "$ROOTFS" "$BIN" version 2>&1 | sed -n 's/.*calling init: //p' | sort -u)
[ -n "$loaded" ] || { echo "image-smoke: FAIL: the binary did not start under qemu-arm -L $ROOTFS" >&2; exit 1; }
while read -r lib; do
    [ -e "$ROOTFS$lib" ] || { echo "image-smoke: FAIL: $lib is not in the image" >&2; exit 1; }
    echo "image-smoke:   $lib (sha256 $(sha256sum "$ROOTFS$lib" | cut -c1-16)...)"
done <<<"$loaded"

printf '+ %s\n' "checks/smoke.sh $BIN qemu-arm -L $ROOTFS"
"$ROOT/checks/smoke.sh" "$BIN" qemu-arm -L "$ROOTFS"
echo "image-smoke: ok: the image's own glibc runs the agent"
