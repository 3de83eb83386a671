#!/usr/bin/env bash
# Reproducibility gate: builds the release twice (checks/build-release.sh:
# every architecture, then the release directory), from two clean copies of
# the source in different directories, under different build environments,
# and requires identical bytes.
#
#   checks/reproducibility.sh            # ADP_REPRO_DIR=DIR to build elsewhere
#                                        # (default a new /tmp/adp-repro.*; kept on failure)
#   ADP_RELEASE_ARCHES=armv7 checks/reproducibility.sh
#       only these architectures (no release directory then): CI compares
#       armv7 alone, a release build being ~8 minutes per architecture
#   ADP_REPRO_REUSE_A=1 checks/reproducibility.sh
#       build A is the work tree's own `make release` output (result-adp-ARCH/,
#       target/adp-ARCH-package/, result-release/), already built from this
#       clean clone by `make check`; only build B is made, from a fresh copy
#       elsewhere. This halves the check's cost in CI; the work tree itself is
#       then copy A.
#
# What differs between the two builds (what must not leak into the output):
#   build A: directory WORK/a,               umask 022, TZ=UTC,             LANG=C.UTF-8
#   build B: directory WORK/second-copy-b,   umask 077, TZ=Pacific/Chatham, LANG=fr_FR.UTF-8,
#            clock shifted 3 days ahead (faketime -f +3d)
# Each copy has its own CARGO_TARGET_DIR inside it: nothing is reused from
# <root>/target (the cargo registry and the verified .deb cache are shared).
# The copies are made from `git ls-files` (tracked + untracked, not ignored)
# of the work tree, so uncommitted changes are checked too.
#
# Compared, per architecture: the shipped (stripped) binary, the tarball,
# index.json and the manifest, then every file listed in SHA256SUMS; then the
# release directory's SHA256SUMS (its index, oci-archive, provenance). On a
# mismatch, a `diffoscope --text -` report of each differing file is printed
# (by checks/compare-builds.sh, the flake's comparison too).
# Fat-LTO release builds: expect ~8 minutes per architecture and build on 2 cores.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# Outside the repository, so that nothing in a copy can find the original's .git.
WORK=${ADP_REPRO_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/adp-repro.XXXXXX")}
say() { printf 'reproducibility: %s\n' "$*"; }
die() { printf 'reproducibility: FAIL: %s\n' "$*" >&2; exit 1; }

for tool in git faketime sha256sum; do
    command -v "$tool" >/dev/null || die "$tool not found (make setup)"
done

cd "$ROOT"
# shellcheck source=lib/arch.sh
. checks/lib/arch.sh
ARCHES=${ADP_RELEASE_ARCHES:-$ADP_ARCHES}
export ADP_RELEASE_ARCHES=$ARCHES
# Inputs that must be the same for both builds, taken once from the real tree
# (the copies are not git repositories), with the build script's rules.
# shellcheck source=lib/build-inputs.sh
. checks/lib/build-inputs.sh
adp_build_inputs
export ADP_DEB_CACHE=${ADP_DEB_CACHE:-$ROOT/.tmp/debs}
unset RUSTC_WRAPPER CARGO_BUILD_RUSTC_WRAPPER CARGO_TARGET_DIR
say "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH ADP_REVISION=$ADP_REVISION; work dir $WORK"

rm -rf "$WORK"
mkdir -p "$WORK"
A=$WORK/a
B=$WORK/second-copy-b

# Copies the work tree's files (tracked and untracked-but-not-ignored),
# creating them under umask $2 so that source file modes differ as well.
copy_tree() {
    local dest=$1 mask=$2
    mkdir -p "$dest"
    git ls-files -z --cached --others --exclude-standard |
        tar --null --ignore-failed-read -T - -cf - 2>/dev/null |
        (umask "$mask" && cd "$dest" && tar --no-same-permissions --no-same-owner -xf -)
}
if [ "${ADP_REPRO_REUSE_A:-0}" = 1 ]; then
    A=$ROOT
    for arch in $ARCHES; do
        [ -f "$A/result-adp-$arch/SHA256SUMS" ] && [ -f "$A/target/adp-$arch-package/agent-data-plane" ] ||
            die "ADP_REPRO_REUSE_A=1 needs a finished 'make release' (or 'make adp-$arch') in $ROOT"
    done
    copy_tree "$B" 077
    say "build A: the work tree's own results (result-adp-{${ARCHES// /,}}, umask $(umask), TZ=${TZ:-unset}, LANG=${LANG:-unset})"
    say "copied $(git ls-files --cached --others --exclude-standard | wc -l) files into $B"
else
    copy_tree "$A" 022
    copy_tree "$B" 077
    say "copied $(git ls-files --cached --others --exclude-standard | wc -l) files into $A and $B"
fi

build() {
    local name=$1 dir=$2 start
    shift 2
    start=$(date +%s)
    say "build $name in $dir: $*"
    if ! (cd "$dir" && "$@" env CARGO_TARGET_DIR="$dir/target" checks/build-release.sh --out "$dir/result-release") \
        >"$WORK/build-$name.log" 2>&1; then
        tail -n 40 "$WORK/build-$name.log" >&2
        die "build $name failed (full log: $WORK/build-$name.log)"
    fi
    say "build $name took $(($(date +%s) - start)) s"
}
if [ "${ADP_REPRO_REUSE_A:-0}" != 1 ]; then
    build A "$A" env -u LC_ALL TZ=UTC LANG=C.UTF-8 bash -c 'umask 022 && exec "$@"' umask-022
fi
build B "$B" env -u LC_ALL TZ=Pacific/Chatham LANG=fr_FR.UTF-8 faketime -f +3d bash -c 'umask 077 && exec "$@"' umask-077

# The comparison is the flake's own (checks.adp-reproducibility), run under
# the same builder conditions: each architecture's result, then the release.
compare_results() {
    "$ROOT/checks/lib/builder-sandbox.sh" run reproducibility --input a="$1" --input b="$2" -- \
        'checks/compare-builds.sh "$a" "$b"'
}
failed=()
for arch in $ARCHES; do
    say "--- result-adp-$arch"
    compare_results "$A/result-adp-$arch" "$B/result-adp-$arch" || failed+=("result-adp-$arch")
done
if [ "$ARCHES" = "$ADP_ARCHES" ]; then
    say "--- result-release"
    compare_results "$A/result-release" "$B/result-release" || failed+=(result-release)
fi
[ ${#failed[@]} -eq 0 ] || die "the two builds differ (${failed[*]}); both trees are kept in $WORK"
rm -rf "$WORK"
say "ok: two builds in different directories, umasks, TZ, LANG and clocks are bit-for-bit identical"
