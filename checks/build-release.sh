#!/usr/bin/env bash
# Builds the release: every architecture's artifacts (checks/build-adp.sh
# ARCH into result-adp-ARCH/), then one release directory with all of them,
# the multi-platform OCI layout (linux/arm/v7, linux/arm64, linux/amd64 in one
# image index), its oci-archive, one provenance statement naming every
# artifact and SHA256SUMS (`adp-package release`).
#
#   checks/build-release.sh                 # result-release/ (what `make release` runs)
#   checks/build-release.sh --out DIR       # DIR, with the per-architecture builds
#                                           # beside it in $(dirname DIR)/result-adp-ARCH
#
# Environment: ADP_RELEASE_ARCHES (default "armv7 arm64 amd64"): the
# architectures to build; the release is assembled only when all three are
# built. Each architecture's release build takes minutes (fat LTO).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib/arch.sh
. "$ROOT/checks/lib/arch.sh"
OUT=$ROOT/result-release
while [ $# -gt 0 ]; do
    case $1 in
        --out) OUT=$(realpath -m "$2"); shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-release: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
ARCHES=${ADP_RELEASE_ARCHES:-$ADP_ARCHES}
say() { printf 'build-release: %s\n' "$*"; }
run() { printf '+ %s\n' "$*" >&2; "$@"; }

cd "$ROOT"
# shellcheck source=lib/build-inputs.sh
. checks/lib/build-inputs.sh
adp_build_inputs
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

inputs=()
for arch in $ARCHES; do
    adp_arch "$arch"
    dir=$(dirname "$OUT")/result-adp-$arch
    start=$SECONDS
    run checks/build-adp.sh "$arch" --out "$dir"
    say "$arch built in $((SECONDS - start)) s into $dir"
    inputs+=(--input "$dir")
done
if [ "$ARCHES" != "$ADP_ARCHES" ]; then
    say "ADP_RELEASE_ARCHES=$ARCHES: not every architecture, so no release is assembled"
    exit 0
fi
(PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc run cargo build --locked -q -p adp-package)
rm -rf "$OUT"
run "$CARGO_TARGET_DIR/debug/adp-package" release "${inputs[@]}" --out "$OUT"
say "wrote $OUT (verify with: cd $OUT && sha256sum -c SHA256SUMS)"
