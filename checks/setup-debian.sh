#!/usr/bin/env bash
# Installs the Nix-free toolchain on Debian bookworm (run as root; idempotent).
#
# Rust 1.85 comes from Debian's rustc-web/cargo-web. The armv7 and aarch64
# standard libraries must be the *same* version, from libstd-rust-web-dev:armhf
# and :arm64; multiarch-installing them conflicts with the amd64 package, so
# each is downloaded and extracted into / (x86_64's std comes with rustc-web).
set -euo pipefail

say() { printf 'setup: %s\n' "$*"; }
run() { printf '+ %s\n' "$*"; "$@"; }

[ "$(id -u)" = 0 ] || { say "must run as root (apt-get, dpkg)"; exit 1; }
command -v apt-get >/dev/null || { say "needs Debian bookworm (apt-get not found)"; exit 1; }

export DEBIAN_FRONTEND=noninteractive

# Packages the build, tests, checks and benchmarks need.
PACKAGES=(
    rustc-web cargo-web
    gcc-arm-linux-gnueabihf libc6-dev-armhf-cross binutils-arm-linux-gnueabihf
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu
    gcc libc6-dev
    qemu-user qemu-user-static
    lintian debootstrap
    file binutils make git ca-certificates curl python3 python3-pip python3-venv
    faketime diffoscope-minimal skopeo umoci jq
    # The builder sandbox (checks/lib/builder-sandbox.sh): namespaces and
    # setpriv (util-linux), loopback (iproute2), and the Debian twins of
    # nixpkgs stdenv's tools (gawk is its awk; procps has kill).
    util-linux iproute2 gawk procps patch bzip2 xz-utils xxd
    nix-bin
    collectd-core valgrind
)
# Debian architecture -> Rust target of each extracted standard library.
declare -A STD_TARGETS=([armhf]=armv7-unknown-linux-gnueabihf [arm64]=aarch64-unknown-linux-gnu)
stamp() { echo "/usr/lib/rustlib/${STD_TARGETS[$1]}/.adp-libstd-version"; }

# Idempotent fast path: everything already installed (and the armhf std matches
# the installed rustc-web) means no package index refresh is needed.
already_installed() {
    local p
    local arch
    for arch in "${!STD_TARGETS[@]}"; do
        [ -f "$(stamp "$arch")" ] || return 1
        [ "$(dpkg-query -W -f='${Version}' rustc-web 2>/dev/null)" = "$(cat "$(stamp "$arch")")" ] || return 1
    done
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || return 1
    done
}

if already_installed && [ "${ADP_SETUP_FORCE:-0}" != 1 ]; then
    say "all packages already installed (ADP_SETUP_FORCE=1 reinstalls)"
    RUST_V=$(cat "$(stamp armhf)")
else
# armhf and arm64: the cross standard libraries, and the image runtimes
# (packaging/debs.lock) that `apt-get download` fetches.
for arch in "${!STD_TARGETS[@]}"; do
    if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
        run dpkg --add-architecture "$arch"
    fi
done

# The armhf security index is sometimes mid-sync ("File has unexpected size");
# retry the index rather than fail the whole setup on a transient mirror state.
apt_update() {
    local try
    for try in 1 2 3 4 5; do
        if apt-get update -q 2>&1 | tee /tmp/adp-apt-update.log; then
            if ! grep -qE '^(E:|W: Failed to fetch)' /tmp/adp-apt-update.log; then
                return 0
            fi
        fi
        say "apt-get update had errors (attempt $try/5); retrying in $((try * 5)) s"
        sleep $((try * 5))
    done
    say "apt-get update still failing; continuing with the indexes that did download"
}
run apt_update

# The project pins Rust 1.85 (MSRV, and the compiler the flake's fenix pin gives).
RUST_SERIES=${RUST_SERIES:-1.85.}

# Pick the rustc-web version of that series that exists for amd64 and for every
# architecture in STD_TARGETS: each std must match the host compiler exactly,
# and the indexes can disagree.
pick_rust_version() {
    local v arch ok
    for v in $(apt-cache madison rustc-web | awk '{print $3}' | grep -F "$RUST_SERIES" | sort -Vr | uniq); do
        ok=1
        for arch in "${!STD_TARGETS[@]}"; do
            apt-cache madison "libstd-rust-web-dev:$arch" 2>/dev/null | awk '{print $3}' | grep -qxF "$v" || ok=0
        done
        if [ "$ok" = 1 ]; then echo "$v"; return 0; fi
    done
    return 1
}

RUST_V=$(pick_rust_version) || {
    say "no rustc-web ${RUST_SERIES}x version exists for amd64 and all of: ${!STD_TARGETS[*]}."
    for arch in "${!STD_TARGETS[@]}"; do
        say "libstd-rust-web-dev:$arch versions: $(apt-cache madison "libstd-rust-web-dev:$arch" 2>/dev/null | awk '{print $3}' | tr '\n' ' ')"
    done
    say "rustc-web versions: $(apt-cache madison rustc-web | awk '{print $3}' | tr '\n' ' ')"
    exit 1
}
say "rustc-web version available for amd64, ${!STD_TARGETS[*]}: $RUST_V"

missing=()
for p in "${PACKAGES[@]}"; do
    apt-cache show "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "missing package(s) in the apt indexes: ${missing[*]}"
    exit 1
fi

pkgs=()
for p in "${PACKAGES[@]}"; do
    case "$p" in
        rustc-web|cargo-web) pkgs+=("$p=$RUST_V") ;;
        *) pkgs+=("$p") ;;
    esac
done
# libstd-rust-web-dev (amd64) comes with rustc-web; pin it to the same version.
pkgs+=("libstd-rust-web-dev=$RUST_V")
run apt-get install -y -q --no-install-recommends --allow-downgrades "${pkgs[@]}"

# Cross std: extract the .deb of exactly $RUST_V (idempotent: skip when present).
for arch in "${!STD_TARGETS[@]}"; do
    [ "$(cat "$(stamp "$arch")" 2>/dev/null)" != "$RUST_V" ] || continue
    tmp=$(mktemp -d)
    (cd "$tmp" && run apt-get download "libstd-rust-web-dev:$arch=$RUST_V") || {
        say "missing package: libstd-rust-web-dev:$arch=$RUST_V (apt-get download failed)"; exit 1; }
    run dpkg-deb -x "$tmp"/libstd-rust-web-dev_*_"$arch".deb /
    echo "$RUST_V" > "$(stamp "$arch")"
    rm -rf "$tmp"
done
fi # already_installed
for arch in "${!STD_TARGETS[@]}"; do
    ls "/usr/lib/rustlib/${STD_TARGETS[$arch]}/lib"/libstd-*.rlib >/dev/null 2>&1 ||
        { say "${STD_TARGETS[$arch]} std not found in /usr/lib/rustlib/${STD_TARGETS[$arch]}/lib after extraction"; exit 1; }
done

# Python packages for end-to-end tests (the real DogStatsD client). Installed for
# every python3 a test may find: Debian's and the first one on PATH.
PYTHONS=$(printf '%s\n' /usr/bin/python3 "$(command -v python3)" | sort -u)
for PY in $PYTHONS; do
    if ! "$PY" -c 'import datadog' 2>/dev/null; then
        run "$PY" -m pip install --break-system-packages -q 'datadog==0.52.1'
    fi
done
PY=$(command -v python3)

say "installed:"
printf '  %-28s %s\n' \
    "rustc (Debian)" "$(/usr/bin/rustc -V)" \
    "cargo (Debian)" "$(/usr/bin/cargo -V)" \
    "armv7 std" "$(ls /usr/lib/rustlib/armv7-unknown-linux-gnueabihf/lib/libstd-*.rlib | head -1)" \
    "aarch64 std" "$(ls /usr/lib/rustlib/aarch64-unknown-linux-gnu/lib/libstd-*.rlib | head -1)" \
    "arm-linux-gnueabihf-gcc" "$(arm-linux-gnueabihf-gcc -dumpversion)" \
    "aarch64-linux-gnu-gcc" "$(aarch64-linux-gnu-gcc -dumpversion)" \
    "glibc (armhf cross)" "$(dpkg-query -W -f='${Version}' libc6-dev-armhf-cross)" \
    "glibc (arm64 cross)" "$(dpkg-query -W -f='${Version}' libc6-dev-arm64-cross)" \
    "qemu-arm" "$(qemu-arm --version | head -1)" \
    "qemu-aarch64" "$(qemu-aarch64 --version | head -1)" \
    "lintian" "$(lintian --version)" \
    "skopeo" "$(skopeo --version)" \
    "umoci" "$(umoci --version)" \
    "nix" "$(nix-instantiate --version)" \
    "python datadog" "$("$PY" -c 'import datadog; print(datadog.__version__)')"
