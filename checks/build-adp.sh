#!/usr/bin/env bash
# Builds one architecture's reproducible release artifacts into
# result-adp-ARCH/ (the name of the flake output): the FHS tarball, the .deb,
# the OCI image layout and its oci-archive, the separated debug info, the
# provenance statement and SHA256SUMS. ARCH is armv7, arm64 or amd64
# (checks/lib/arch.sh); amd64 is built natively, still by Debian's Rust 1.85.
#
#   checks/build-adp.sh ARCH                  # build (what `make adp-ARCH` runs)
#   checks/build-adp.sh ARCH --out DIR        # write somewhere else
#   checks/build-adp.sh ARCH --refresh-lock   # re-pin packaging/debs.lock (every
#                                             # line) to the versions apt offers now
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
# - the .debs pinned in packaging/debs.lock for the architecture (verified by sha256);
# - the toolchain: Debian's Rust 1.85 + the architecture's binutils/gcc 12,
#   named with their versions in the provenance.
#
# Environment: CARGO_TARGET_DIR (default <root>/target), ADP_DEB_CACHE (where
# .debs are kept, default <root>/.tmp/debs), ADP_DEB_REVISION (the .deb's
# Debian revision, default 1).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib/arch.sh
. "$ROOT/checks/lib/arch.sh"
adp_arch "${1:-}" || { echo "usage: checks/build-adp.sh {$ADP_ARCHES} [--out DIR | --refresh-lock]" >&2; exit 2; }
shift
TARGET=$ADP_TARGET
LOCK=$ROOT/packaging/debs.lock
OUT=$ROOT/result-adp-$ADP_ARCH
REFRESH=0

say() { printf 'build-adp-%s: %s\n' "$ADP_ARCH" "$*"; }
die() { printf 'build-adp-%s: error: %s\n' "$ADP_ARCH" "$*" >&2; exit 1; }
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
# The lines this architecture's image uses: its Debian architecture and `all`.
arch_lock_entries() { lock_entries | awk -v a="$ADP_DEB_ARCH" '$2 == a || $2 == "all"'; }

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
            die "apt has no candidate for $name:$arch (run 'make setup': it adds the armhf and arm64 architectures and updates apt)"
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
    done < <(arch_lock_entries)
    for key in "${!tried[@]}"; do
        [ -z "${done[$key]:-}" ] || continue
        name=${key%%:*} arch=${key#*:}
        available=$(apt-cache madison "$([ "$arch" = all ] && echo "$name" || echo "$key")" 2>/dev/null |
            awk '{print $3}' | sort -u | tr '\n' ' ')
        die "cannot download $key at any version pinned in packaging/debs.lock (${tried[$key]% })" \
            "(apt offers: ${available:-nothing; is $arch added and 'apt-get update' done (make setup)?})." \
            "Add or refresh the pin with: checks/build-adp.sh $ADP_ARCH --refresh-lock"
    done
    [ -n "$CA_DEB" ] || die "packaging/debs.lock pins no ca-certificates package"
}

if [ "$REFRESH" = 1 ]; then
    refresh_lock
    exit 0
fi

for tool in "$ADP_GNU-objcopy" "$ADP_GNU-strip" "$ADP_GNU-readelf" apt-get sha256sum dpkg-query; do
    command -v "$tool" >/dev/null || die "$tool not found; run 'make setup' (as root, on Debian bookworm)"
done

cd "$ROOT"
# shellcheck source=lib/build-inputs.sh
. checks/lib/build-inputs.sh
adp_build_inputs
say "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH ADP_GIT_HASH=${ADP_GIT_HASH:-<from build.rs>} ADP_REVISION=$ADP_REVISION"
say "CARGO_TARGET_DIR=$CARGO_TARGET_DIR"

fetch_debs

# 1. The release binary (cargo-cross.sh remaps source, cargo home and
#    sysroot paths to /build, /cargo and /rustc).
run "$ROOT/checks/cargo-cross.sh" "$ADP_ARCH" build --release --locked -p agent-data-plane
BIN=$CARGO_TARGET_DIR/$TARGET/release/agent-data-plane
[ -f "$BIN" ] || die "cargo did not produce $BIN"

VERSION=$(PATH=/usr/bin:$PATH cargo pkgid --offline -p agent-data-plane)
VERSION=${VERSION##*[#@]}
STEM=agent-data-plane-$VERSION-linux-$ADP_ARCH
WORK=$CARGO_TARGET_DIR/adp-$ADP_ARCH-package
rm -rf "$WORK"
mkdir -p "$WORK"

# 2. Interpreter and rpath: the GNU toolchain already links with Debian's
#    interpreter and no rpath; patch only if that ever changes.
INTERP=$("$ADP_GNU-readelf" -lW "$BIN" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
if [ "$INTERP" != "$ADP_INTERP" ] || "$ADP_GNU-readelf" -dW "$BIN" | grep -qE '\((RPATH|RUNPATH)\)'; then
    command -v patchelf >/dev/null ||
        die "$BIN has interpreter '$INTERP' or an rpath, and patchelf is not installed to fix it"
    cp "$BIN" "$WORK/patched"
    run patchelf --set-interpreter "$ADP_INTERP" --remove-rpath "$WORK/patched"
    BIN=$WORK/patched
else
    say "interpreter $INTERP, no RPATH/RUNPATH: no patching needed"
fi

# 3. Split the debug info, strip, and link the two (the flake does the same
#    with the same script).
DEBUG=$WORK/$STEM.debug
ADP_BINUTILS_PREFIX="$ADP_GNU-" "$ROOT/checks/split-debug.sh" "$BIN" "$WORK/agent-data-plane" "$DEBUG"

# 4. The crates built into the binary, for the SBOM.
(cd "$ROOT" && PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc run cargo tree --locked --offline \
    -p agent-data-plane -e normal --target "$TARGET" --prefix none --format '{p}') >"$WORK/cargo-tree.txt"

# 5. The packaging tool, for the host, with the same pinned toolchain.
(cd "$ROOT" && PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc run cargo build --locked -q -p adp-package)
PACKAGER=$CARGO_TARGET_DIR/debug/adp-package

# 6. The toolchain packages that made the bytes, for the provenance: the
#    compiler, this architecture's std, gcc (the linker), binutils (strip,
#    objcopy) and the glibc the binary is linked against.
TOOLCHAIN=()
case $ADP_ARCH in
    armv7) tool_pkgs=("libstd-rust-web-dev:armhf" gcc-arm-linux-gnueabihf binutils-arm-linux-gnueabihf libc6-dev-armhf-cross) ;;
    arm64) tool_pkgs=("libstd-rust-web-dev:arm64" gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu libc6-dev-arm64-cross) ;;
    amd64) tool_pkgs=(libstd-rust-web-dev gcc binutils-x86-64-linux-gnu libc6-dev) ;;
esac
for pkg in rustc-web cargo-web "${tool_pkgs[@]}"; do
    case $pkg in
        # Extracted, not installed (checks/setup-debian.sh): the stamp has the version.
        libstd-rust-web-dev:*)
            v=$(cat "/usr/lib/rustlib/$TARGET/.adp-libstd-version" 2>/dev/null) ||
                die "no /usr/lib/rustlib/$TARGET/.adp-libstd-version (make setup)"
            TOOLCHAIN+=(--toolchain "$pkg=$v") ;;
        *)
            v=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null) || die "$pkg is not installed (make setup)"
            TOOLCHAIN+=(--toolchain "$pkg:$(dpkg-query -W -f='${Architecture}' "$pkg")=$v") ;;
    esac
done

rm -rf "$OUT"
run "$PACKAGER" build \
    --arch "$ADP_ARCH" \
    --binary "$WORK/agent-data-plane" \
    --debug-file "$DEBUG" \
    --version "$VERSION" \
    --revision "$ADP_REVISION" \
    --source-date-epoch "$SOURCE_DATE_EPOCH" \
    --deb-revision "${ADP_DEB_REVISION:-1}" \
    "${DEBS[@]}" \
    --ca-deb "$CA_DEB" \
    --cargo-lock "$ROOT/Cargo.lock" \
    --cargo-tree "$WORK/cargo-tree.txt" \
    --debs-lock "$LOCK" \
    "${TOOLCHAIN[@]}" \
    --builder-id urn:agent-data-plane:builder:make-debian-bookworm \
    --packaging-dir "$ROOT/packaging" \
    --license "$ROOT/LICENSE" \
    --out "$OUT"
say "wrote $OUT (verify with: cd $OUT && sha256sum -c SHA256SUMS)"
