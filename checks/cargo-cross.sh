#!/usr/bin/env bash
# Runs cargo for one release architecture (checks/lib/arch.sh) with the pinned
# Debian Rust 1.85 and the matching GNU toolchain; target binaries of the
# foreign architectures run under qemu-user.
#
#   checks/cargo-cross.sh armv7 test --workspace
#   checks/cargo-cross.sh arm64 build --release -p agent-data-plane
#   checks/cargo-cross.sh amd64 build --release -p agent-data-plane   # native, still Debian's 1.85
#
# rustup's newer rustc comes first on PATH and has no armv7/aarch64 std, and a
# release must be built by the pinned compiler anyway: the Debian pair in
# /usr/bin is used explicitly (otherwise: error[E0463] can't find crate `std`).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib/arch.sh
. "$ROOT/checks/lib/arch.sh"
adp_arch "${1:-}" || { echo "usage: checks/cargo-cross.sh {$ADP_ARCHES} CARGO_ARGS..." >&2; exit 2; }
shift
NAME=cargo-$ADP_ARCH
DEB_CARGO=/usr/bin/cargo
DEB_RUSTC=/usr/bin/rustc
SYSROOT_LIBDIR=/usr/lib/rustlib/$ADP_TARGET/lib

missing=()
[ -x "$DEB_CARGO" ] || missing+=("$DEB_CARGO (cargo-web)")
[ -x "$DEB_RUSTC" ] || missing+=("$DEB_RUSTC (rustc-web)")
ls "$SYSROOT_LIBDIR"/libstd-*.rlib >/dev/null 2>&1 || missing+=("$SYSROOT_LIBDIR ($ADP_DEB_ARCH std)")
command -v "$ADP_GNU-gcc" >/dev/null || missing+=("$ADP_GNU-gcc")
[ -z "$ADP_QEMU" ] || command -v "$ADP_QEMU" >/dev/null || missing+=("$ADP_QEMU (qemu-user)")
if [ ${#missing[@]} -gt 0 ]; then
    echo "$NAME: the $ADP_ARCH toolchain is not installed: ${missing[*]}" >&2
    echo "$NAME: run 'make setup' (as root, on Debian bookworm) first." >&2
    exit 2
fi

export PATH=/usr/bin:$PATH
export RUSTC=$DEB_RUSTC
export "CARGO_TARGET_${ADP_TARGET_ENV}_LINKER=$ADP_GNU-gcc"
export "CC_${ADP_CC_TARGET}=$ADP_GNU-gcc" "CXX_${ADP_CC_TARGET}=$ADP_GNU-g++" "AR_${ADP_CC_TARGET}=$ADP_GNU-ar"
if [ -n "$ADP_QEMU" ]; then
    # Bookworm's qemu 7.2 files translated code in a GTree, whose nodes come
    # from glib 2.74's GSlice. GSlice is not fork-safe: a child forked while
    # another thread held its lock hangs in g_slice_alloc before its exec
    # (seen as a secret backend test timing out, about 1 run in 100).
    # always-malloc puts GSlice on malloc, which glibc keeps fork-safe. qemu
    # 8.0 dropped the GTree (QTree), so the flake's qemu needs none of this.
    qemu="env G_SLICE=always-malloc $(command -v "$ADP_QEMU") -L /usr/$ADP_GNU"
    # ADP_SANDBOX_RUNNER (checks/test-armv7.sh) runs each one under builder conditions.
    export "CARGO_TARGET_${ADP_TARGET_ENV}_RUNNER=${ADP_SANDBOX_RUNNER:+$ADP_SANDBOX_RUNNER }$qemu"
    # Tests that exec a built binary themselves (CARGO_BIN_EXE_*) read this to
    # go through qemu; there is no binfmt_misc on the build machines.
    export ADP_TEST_RUNNER="$qemu"
fi
# Reproducible paths in the binary: source, cargo home and sysroot.
CARGO_HOME_DIR=${CARGO_HOME:-$HOME/.cargo}
export RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$ROOT=/build --remap-path-prefix=$CARGO_HOME_DIR=/cargo --remap-path-prefix=/usr/lib/rustlib/src/rust=/rustc"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

cd "$ROOT"
printf '+ %s\n' "$DEB_CARGO $* --target $ADP_TARGET"
exec "$DEB_CARGO" "$@" --target "$ADP_TARGET"
