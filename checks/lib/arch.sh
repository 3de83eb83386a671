# shellcheck shell=bash
# The release architectures, one table for every script that builds, checks or
# runs them (sourced). `adp_arch NAME` sets and exports:
#   ADP_ARCH        the name in make targets and file names: armv7, arm64, amd64
#   ADP_TARGET      the Rust target
#   ADP_DEB_ARCH    the Debian architecture (.deb, packaging/debs.lock)
#   ADP_GNU         the GNU triple of the binutils/gcc (arm-linux-gnueabihf-strip ...)
#   ADP_INTERP      the ELF interpreter the binary must request
#   ADP_QEMU        the qemu-user emulator that runs it here (empty: native)
#   ADP_TARGET_ENV  the upper-case target for cargo's CARGO_TARGET_<T>_* variables
#   ADP_CC_TARGET   the lower-case target for the cc crate's CC_<t> variables
ADP_ARCHES="armv7 arm64 amd64"

adp_arch() {
    case ${1:-} in
        armv7)
            ADP_TARGET=armv7-unknown-linux-gnueabihf ADP_DEB_ARCH=armhf ADP_GNU=arm-linux-gnueabihf
            ADP_INTERP=/lib/ld-linux-armhf.so.3 ADP_QEMU=qemu-arm ;;
        arm64)
            ADP_TARGET=aarch64-unknown-linux-gnu ADP_DEB_ARCH=arm64 ADP_GNU=aarch64-linux-gnu
            ADP_INTERP=/lib/ld-linux-aarch64.so.1 ADP_QEMU=qemu-aarch64 ;;
        amd64)
            ADP_TARGET=x86_64-unknown-linux-gnu ADP_DEB_ARCH=amd64 ADP_GNU=x86_64-linux-gnu
            ADP_INTERP=/lib64/ld-linux-x86-64.so.2 ADP_QEMU= ;;
        *)
            printf 'unknown architecture "%s" (one of: %s)\n' "${1:-}" "$ADP_ARCHES" >&2
            return 2 ;;
    esac
    ADP_ARCH=$1
    ADP_TARGET_ENV=$(tr 'a-z-' 'A-Z_' <<<"$ADP_TARGET")
    ADP_CC_TARGET=${ADP_TARGET//-/_}
    export ADP_ARCH ADP_TARGET ADP_DEB_ARCH ADP_GNU ADP_INTERP ADP_QEMU ADP_TARGET_ENV ADP_CC_TARGET
}
