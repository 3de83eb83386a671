#!/usr/bin/env bash
# Builds the reproducible ARMv7 release artifacts into result-adp-armv7/
# (the name of the flake output): the FHS tarball, the OCI image layout and
# its oci-archive, the separated debug info and SHA256SUMS.
#
#   checks/build-adp-armv7.sh                 # build (what `make adp-armv7` runs)
#   checks/build-adp-armv7.sh --out DIR       # write somewhere else
#   checks/build-adp-armv7.sh --refresh-lock  # re-pin packaging/debs.lock to the
#                                             # versions apt offers now, then exit
#
# Inputs that make the bytes (and nothing else does):
# - the source tree and Cargo.lock (the build is --locked);
# - SOURCE_DATE_EPOCH: the environment's if set (a rebuilder or Nix sets it),
#   else the last commit's committer time (`git log -1 --format=%ct`), else, in a
#   tree without commits (an unpacked source tarball), 315532800
#   (1980-01-01, nixpkgs' default) with a warning;
# - ADP_REVISION (full commit, `-dirty` appended when tracked files have
#   changes; "unknown" without git) and ADP_GIT_HASH (its first 8 hex digits,
#   embedded in the binary): the environment's if set, else from git;
# - the .debs pinned in packaging/debs.lock (verified by sha256);
# - the toolchain: Debian's Rust 1.85 + arm-linux-gnueabihf binutils/gcc 12.
#
# Environment: CARGO_TARGET_DIR (default <root>/target), ADP_DEB_CACHE (where
# .debs are kept, default <root>/.tmp/debs).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=armv7-unknown-linux-gnueabihf
LOCK=$ROOT/packaging/debs.lock
OUT=$ROOT/result-adp-armv7
REFRESH=0

say() { printf 'build-adp-armv7: %s\n' "$*"; }
die() { printf 'build-adp-armv7: error: %s\n' "$*" >&2; exit 1; }
run() { printf '+ %s\n' "$*" >&2; "$@"; }

while [ $# -gt 0 ]; do
    case $1 in
        --refresh-lock) REFRESH=1 ;;
        --out) OUT=$(realpath -m "$2"); shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
DEB_CACHE=${ADP_DEB_CACHE:-$ROOT/.tmp/debs}
mkdir -p "$DEB_CACHE"

# apt-get download drops privileges to _apt, which cannot write a root-owned
# cache directory; as root, download as root instead of warning about it.
APT_OPTS=()
[ "$(id -u)" = 0 ] && APT_OPTS=(-o APT::Sandbox::User=root)

# Lock lines: NAME ARCH VERSION SHA256 (comments and blank lines ignored).
lock_entries() { grep -Ev '^[[:space:]]*(#|$)' "$LOCK"; }

# The file name `apt-get download` writes (':' of an epoch becomes %3a).
deb_file() { printf '%s_%s_%s.deb' "$1" "${2//:/%3a}" "$3"; }

# `apt-get download` spec: arch-all packages are named without an arch.
apt_spec() { if [ "$2" = all ]; then printf '%s=%s' "$1" "$3"; else printf '%s:%s=%s' "$1" "$2" "$3"; fi; }

refresh_lock() {
    local tmp name arch version sum candidate file
    local -A seen=()
    tmp=$(mktemp)
    grep -E '^[[:space:]]*(#|$)' "$LOCK" >"$tmp"
    while read -r name arch version sum; do
        [ -z "${seen[$name:$arch]:-}" ] || continue
        seen[$name:$arch]=1
        if [ "$arch" = all ]; then
            candidate=$(apt-cache policy "$name" | awk '/Candidate:/ {print $2}')
        else
            candidate=$(apt-cache policy "$name:$arch" | awk '/Candidate:/ {print $2}')
        fi
        [ -n "$candidate" ] && [ "$candidate" != "(none)" ] ||
            die "apt has no candidate for $name:$arch (run 'dpkg --add-architecture armhf && apt-get update')"
        (cd "$DEB_CACHE" && run apt-get "${APT_OPTS[@]}" -q download "$(apt_spec "$name" "$arch" "$candidate")")
        file=$DEB_CACHE/$(deb_file "$name" "$candidate" "$arch")
        sum=$(sha256sum "$file" | cut -d' ' -f1)
        printf '%-17s %-6s %-19s %s\n' "$name" "$arch" "$candidate" "$sum" >>"$tmp"
        [ "$candidate" = "$version" ] || say "$name:$arch $version -> $candidate"
    done < <(lock_entries)
    mv "$tmp" "$LOCK"
    say "wrote $LOCK; review it (git diff packaging/debs.lock) and commit it"
}

# Fetches every locked package into the cache and verifies its sha256. A
# package may be pinned more than once, in order of preference: Debian mirrors
# at different point releases carry different versions (seen: ca-certificates
# 20250419~deb12u2 on one machine, only 20230311+deb12u1 on another), so the
# first pinned version the mirror still has is used, and always by its hash.
fetch_debs() {
    local name arch version sum file actual available key
    local -A done=() tried=()
    DEBS=()
    CA_DEB=
    while read -r name arch version sum; do
        key=$name:$arch
        [ -z "${done[$key]:-}" ] || continue
        file=$DEB_CACHE/$(deb_file "$name" "$version" "$arch")
        if [ ! -f "$file" ] &&
            ! (cd "$DEB_CACHE" && run apt-get "${APT_OPTS[@]}" -q download "$(apt_spec "$name" "$arch" "$version")"); then
            tried[$key]="${tried[$key]:-}$version "
            continue
        fi
        actual=$(sha256sum "$file" | cut -d' ' -f1)
        if [ "$actual" != "$sum" ]; then
            die "$file: sha256 $actual, but packaging/debs.lock pins $sum for $name:$arch=$version" \
                "(delete the file to re-download; if the archive really changed, refresh with --refresh-lock and review)"
        fi
        say "verified $name:$arch=$version sha256:$sum"
        done[$key]=1
        if [ "$name" = ca-certificates ]; then CA_DEB=$file; else DEBS+=(--deb "$file"); fi
    done < <(lock_entries)
    for key in "${!tried[@]}"; do
        [ -z "${done[$key]:-}" ] || continue
        name=${key%%:*} arch=${key#*:}
        available=$(apt-cache madison "$([ "$arch" = all ] && echo "$name" || echo "$key")" 2>/dev/null |
            awk '{print $3}' | sort -u | tr '\n' ' ')
        die "cannot download $key at any version pinned in packaging/debs.lock (${tried[$key]% })" \
            "(apt offers: ${available:-nothing; is armhf added and 'apt-get update' done?})." \
            "Add or refresh the pin with: checks/build-adp-armv7.sh --refresh-lock"
    done
    [ -n "$CA_DEB" ] || die "packaging/debs.lock pins no ca-certificates package"
}

if [ "$REFRESH" = 1 ]; then
    refresh_lock
    exit 0
fi

for tool in arm-linux-gnueabihf-objcopy arm-linux-gnueabihf-strip arm-linux-gnueabihf-readelf apt-get sha256sum; do
    command -v "$tool" >/dev/null || die "$tool not found; run 'make setup' (as root, on Debian bookworm)"
done

cd "$ROOT"
# shellcheck source=lib/build-inputs.sh
. checks/lib/build-inputs.sh
adp_build_inputs
say "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH ADP_GIT_HASH=${ADP_GIT_HASH:-<from build.rs>} ADP_REVISION=$ADP_REVISION"
say "CARGO_TARGET_DIR=$CARGO_TARGET_DIR"

fetch_debs

# 1. The armv7 release binary (cargo-armv7.sh remaps source, cargo home and
#    sysroot paths to /build, /cargo and /rustc).
run "$ROOT/checks/cargo-armv7.sh" build --release --locked -p agent-data-plane
BIN=$CARGO_TARGET_DIR/$TARGET/release/agent-data-plane
[ -f "$BIN" ] || die "cargo did not produce $BIN"

VERSION=$(PATH=/usr/bin:$PATH cargo pkgid --offline -p agent-data-plane)
VERSION=${VERSION##*[#@]}
STEM=agent-data-plane-$VERSION-linux-armv7
WORK=$CARGO_TARGET_DIR/adp-armv7-package
rm -rf "$WORK"
mkdir -p "$WORK"

# 2. Interpreter and rpath: the GNU cross toolchain already links with
#    /lib/ld-linux-armhf.so.3 and no rpath; patch only if that ever changes.
INTERP=$(arm-linux-gnueabihf-readelf -lW "$BIN" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
if [ "$INTERP" != /lib/ld-linux-armhf.so.3 ] || arm-linux-gnueabihf-readelf -dW "$BIN" | grep -qE '\((RPATH|RUNPATH)\)'; then
    command -v patchelf >/dev/null ||
        die "$BIN has interpreter '$INTERP' or an rpath, and patchelf is not installed to fix it"
    cp "$BIN" "$WORK/patched"
    run patchelf --set-interpreter /lib/ld-linux-armhf.so.3 --remove-rpath "$WORK/patched"
    BIN=$WORK/patched
else
    say "interpreter $INTERP, no RPATH/RUNPATH: no patching needed"
fi

# 3. Split the debug info, strip, and link the two (the flake does the same
#    with the same script).
DEBUG=$WORK/$STEM.debug
"$ROOT/checks/split-debug.sh" "$BIN" "$WORK/agent-data-plane" "$DEBUG"

# 4. The crates built into the binary, for the SBOM.
(cd "$ROOT" && PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc run cargo tree --locked --offline \
    -p agent-data-plane -e normal --target "$TARGET" --prefix none --format '{p}') >"$WORK/cargo-tree.txt"

# 5. The packaging tool, for the host, with the same pinned toolchain.
(cd "$ROOT" && PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc run cargo build --locked -q -p adp-package)
PACKAGER=$CARGO_TARGET_DIR/debug/adp-package

rm -rf "$OUT"
run "$PACKAGER" build \
    --binary "$WORK/agent-data-plane" \
    --debug-file "$DEBUG" \
    --version "$VERSION" \
    --revision "$ADP_REVISION" \
    --source-date-epoch "$SOURCE_DATE_EPOCH" \
    "${DEBS[@]}" \
    --ca-deb "$CA_DEB" \
    --cargo-lock "$ROOT/Cargo.lock" \
    --cargo-tree "$WORK/cargo-tree.txt" \
    --packaging-dir "$ROOT/packaging" \
    --license "$ROOT/LICENSE" \
    --out "$OUT"
say "wrote $OUT (verify with: cd $OUT && sha256sum -c SHA256SUMS)"
