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
# mismatch, a `diffoscope --text -` report of each differing file is printed.
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

declare -a differing=()
compare() {
    local what=$1 fa=$2 fb=$3 sa sb
    sa=$(sha256sum "$fa" | cut -d' ' -f1)
    sb=$(sha256sum "$fb" 2>/dev/null | cut -d' ' -f1 || true)
    if [ "$sa" = "$sb" ]; then
        printf 'reproducibility: same      %s  %s\n' "$sa" "$what"
    else
        printf 'reproducibility: DIFFERENT %s  %s (B: %s)\n' "$sa" "$what" "${sb:-missing}"
        differing+=("$fa" "$fb")
    fi
}
# compare_sums NAME RA RB: every file listed in RA/SHA256SUMS.
compare_sums() {
    local name=$1 ra=$2 rb=$3
    if cmp -s "$ra/SHA256SUMS" "$rb/SHA256SUMS"; then
        say "same      $name/SHA256SUMS: all $(wc -l <"$ra/SHA256SUMS") artifacts are identical"
    else
        say "DIFFERENT $name/SHA256SUMS:"
        diff "$ra/SHA256SUMS" "$rb/SHA256SUMS" || true
        while read -r _ file; do
            case $file in oci/*) ;; *) cmp -s "$ra/$file" "$rb/$file" || differing+=("$ra/$file" "$rb/$file") ;; esac
        done <"$ra/SHA256SUMS"
    fi
}
for arch in $ARCHES; do
    RA=$A/result-adp-$arch
    RB=$B/result-adp-$arch
    stem=$(sed -n 's/^[0-9a-f]*  \(agent-data-plane-.*\)\.tar\.gz$/\1/p' "$RA/SHA256SUMS")
    [ -n "$stem" ] || die "no tarball listed in $RA/SHA256SUMS"
    manifest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"].split(":")[1])' "$RA/oci/index.json")
    compare "$arch binary (stripped)" "$A/target/adp-$arch-package/agent-data-plane" "$B/target/adp-$arch-package/agent-data-plane"
    compare "$stem.tar.gz" "$RA/$stem.tar.gz" "$RB/$stem.tar.gz"
    compare "$arch oci/index.json" "$RA/oci/index.json" "$RB/oci/index.json"
    compare "$arch manifest sha256:$manifest" "$RA/oci/blobs/sha256/$manifest" "$RB/oci/blobs/sha256/$manifest"
    compare_sums "result-adp-$arch" "$RA" "$RB"
done
if [ "$ARCHES" = "$ADP_ARCHES" ]; then
    compare "release oci/index.json" "$A/result-release/oci/index.json" "$B/result-release/oci/index.json"
    compare_sums result-release "$A/result-release" "$B/result-release"
fi

if [ ${#differing[@]} -gt 0 ]; then
    if command -v diffoscope >/dev/null; then
        for ((i = 0; i < ${#differing[@]}; i += 2)); do
            say "diffoscope ${differing[i]} ${differing[i + 1]} (first 200 lines):"
            timeout 900 diffoscope --text - "${differing[i]}" "${differing[i + 1]}" 2>&1 | head -n 200 || true
        done
    else
        say "diffoscope not installed (make setup installs diffoscope-minimal); no report"
    fi
    die "the two builds differ; both trees are kept in $WORK"
fi
rm -rf "$WORK"
say "ok: two builds in different directories, umasks, TZ, LANG and clocks are bit-for-bit identical"
