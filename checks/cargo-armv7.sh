#!/usr/bin/env bash
# Runs cargo for armv7-unknown-linux-gnueabihf with the pinned Debian Rust 1.85
# and the arm-linux-gnueabihf cross toolchain; test binaries run under qemu-arm.
#
#   checks/cargo-armv7.sh test --workspace
#   checks/cargo-armv7.sh build --release -p agent-data-plane
#
# rustup's newer rustc comes first on PATH and has no armv7 std; the Debian pair
# in /usr/bin is used explicitly (otherwise: error[E0463] can't find crate `std`).
set -euo pipefail

TARGET=armv7-unknown-linux-gnueabihf
DEB_CARGO=/usr/bin/cargo
DEB_RUSTC=/usr/bin/rustc
SYSROOT_LIBDIR=/usr/lib/rustlib/$TARGET/lib

missing=()
[ -x "$DEB_CARGO" ] || missing+=("$DEB_CARGO (cargo-web)")
[ -x "$DEB_RUSTC" ] || missing+=("$DEB_RUSTC (rustc-web)")
ls "$SYSROOT_LIBDIR"/libstd-*.rlib >/dev/null 2>&1 || missing+=("$SYSROOT_LIBDIR (armhf std)")
command -v arm-linux-gnueabihf-gcc >/dev/null || missing+=("arm-linux-gnueabihf-gcc")
command -v qemu-arm >/dev/null || missing+=("qemu-arm (qemu-user)")
if [ ${#missing[@]} -gt 0 ]; then
    echo "cargo-armv7: the armv7 toolchain is not installed: ${missing[*]}" >&2
    echo "cargo-armv7: run 'make setup' (as root, on Debian bookworm) first." >&2
    exit 2
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export PATH=/usr/bin:$PATH
export RUSTC=$DEB_RUSTC
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc
# ADP_SANDBOX_RUNNER (checks/test-armv7.sh) runs each one under builder conditions.
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUNNER="${ADP_SANDBOX_RUNNER:+$ADP_SANDBOX_RUNNER }qemu-arm -L /usr/arm-linux-gnueabihf"
export CC_armv7_unknown_linux_gnueabihf=arm-linux-gnueabihf-gcc
export CXX_armv7_unknown_linux_gnueabihf=arm-linux-gnueabihf-g++
export AR_armv7_unknown_linux_gnueabihf=arm-linux-gnueabihf-ar
# Tests that exec a built binary themselves (CARGO_BIN_EXE_*) read this to go
# through qemu-arm; there is no binfmt_misc on the build machines.
export ADP_TEST_RUNNER="qemu-arm -L /usr/arm-linux-gnueabihf"
# Reproducible paths in the binary: source, cargo home and sysroot.
CARGO_HOME_DIR=${CARGO_HOME:-$HOME/.cargo}
export RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$ROOT=/build --remap-path-prefix=$CARGO_HOME_DIR=/cargo --remap-path-prefix=/usr/lib/rustlib/src/rust=/rustc"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

cd "$ROOT"
printf '+ %s\n' "$DEB_CARGO $* --target $TARGET"
exec "$DEB_CARGO" "$@" --target "$TARGET"
