#!/usr/bin/env bash
# Runs the agent from each OCI image's own rootfs: the image's glibc and
# libgcc_s (from the pinned bookworm .debs), not the build host's. There is no
# container engine on the build machines: arm/v7 runs under `qemu-arm -L
# ROOTFS` and arm64 under `qemu-aarch64 -L ROOTFS` (the rootfs is the emulated
# program's root for library and interpreter lookups); amd64 runs natively
# through the image's own loader, `ROOTFS/lib64/ld-linux-x86-64.so.2
# --library-path ROOTFS/lib/x86_64-linux-gnu` (on a machine that is not
# x86_64, such as an aarch64-linux Nix builder, under `qemu-x86_64 -L ROOTFS`).
#
#   checks/image-smoke.sh [RESULT_DIR]     # default: result-adp-armv7
#   checks/image-smoke.sh result-release   # every platform of the release's index
#   checks/image-smoke.sh result-adp-armv7/oci   # or the OCI layout itself
#
# Unpacks each image with `umoci unpack --rootless`, shows which libraries the
# dynamic loader picked, then runs checks/smoke.sh (the agent's smoke test)
# on ROOTFS/usr/bin/agent-data-plane with that runner.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RESULT=${1:-$ROOT/result-adp-armv7}
LAYOUT=$RESULT/oci
[ -f "$RESULT/index.json" ] && LAYOUT=$RESULT
[ -f "$LAYOUT/index.json" ] || { echo "image-smoke: no OCI layout at $LAYOUT; run 'make adp-armv7' first" >&2; exit 2; }
[ -x "$ROOT/checks/smoke.sh" ] || { echo "image-smoke: checks/smoke.sh (the agent's smoke test) is missing" >&2; exit 2; }
for tool in umoci python3; do
    command -v "$tool" >/dev/null || { echo "image-smoke: $tool not found (make setup)" >&2; exit 2; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$ROOT/checks/lib/oci_platforms.py" "$LAYOUT" "$work/platforms" >"$work/platforms.txt"
passed=()
while read -r arch layout tag _; do
    printf '+ umoci unpack --rootless --image %s %s\n' "$layout:$tag" "$work/bundle-$arch"
    umoci unpack --rootless --image "$layout:$tag" "$work/bundle-$arch" >/dev/null
    ROOTFS=$work/bundle-$arch/rootfs
    BIN=$ROOTFS/usr/bin/agent-data-plane
    case $arch in
        armv7) RUNNER=(qemu-arm -L "$ROOTFS") ;;
        arm64) RUNNER=(qemu-aarch64 -L "$ROOTFS") ;;
        amd64)
            if [ "$(uname -m)" = x86_64 ]; then
                RUNNER=("$ROOTFS/lib64/ld-linux-x86-64.so.2" --library-path "$ROOTFS/lib/x86_64-linux-gnu")
            else
                RUNNER=(qemu-x86_64 -L "$ROOTFS")
            fi ;;
    esac
    command -v "${RUNNER[0]}" >/dev/null || [ -x "${RUNNER[0]}" ] ||
        { echo "image-smoke: ${RUNNER[0]} not found (make setup)" >&2; exit 2; }

    # The loader's own report: every library must come from the image (under
    # qemu the paths are the -L root's, natively they are under ROOTFS).
    echo "image-smoke: $arch: libraries loaded from the image rootfs $ROOTFS:"
    # The image's own loader reads LD_DEBUG from the environment; qemu passes it with -E.
    if [ "${RUNNER[0]}" != "${RUNNER[0]#"$ROOTFS"}" ]; then
        loaded=$(env LD_DEBUG=libs "${RUNNER[@]}" "$BIN" version 2>&1 | sed -n 's/.*calling init: //p' | sort -u)
    else
        loaded=$("${RUNNER[0]}" -E LD_DEBUG=libs "${RUNNER[@]:1}" "$BIN" version 2>&1 | sed -n 's/.*calling init: //p' | sort -u)
    fi
    [ -n "$loaded" ] || { echo "image-smoke: FAIL: the $arch binary did not start with ${RUNNER[*]}" >&2; exit 1; }
    while read -r lib; do
        case $lib in "$ROOTFS"/*) path=$lib ;; /*) path=$ROOTFS$lib ;; *) path= ;; esac
        [ -n "$path" ] && [ -e "$path" ] || { echo "image-smoke: FAIL: $lib is not in the $arch image" >&2; exit 1; }
        echo "image-smoke:   ${path#"$ROOTFS"} (sha256 $(sha256sum "$path" | cut -c1-16)...)"
    done <<<"$loaded"

    printf '+ %s\n' "checks/smoke.sh $BIN ${RUNNER[*]}"
    "$ROOT/checks/smoke.sh" "$BIN" "${RUNNER[@]}"
    echo "image-smoke: ok: the $arch image's own glibc runs the agent"
    passed+=("$arch")
done <"$work/platforms.txt"
echo "image-smoke: ok: ${passed[*]}"
