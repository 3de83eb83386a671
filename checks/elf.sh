#!/usr/bin/env bash
# ELF gate for a shipped binary: it must load on any Linux of its
# architecture with glibc >= 2.36 (Debian bookworm, the Datadog IoT floor).
#
#   checks/elf.sh BINARY [ARCH]       # ARCH: armv7 (default), arm64, amd64
#
# Verifies: the ELF class and machine of ARCH (armv7: ELF32 ARM, "Version5
# EABI, hard-float ABI"); the Debian interpreter (/lib/ld-linux-armhf.so.3,
# /lib/ld-linux-aarch64.so.1, /lib64/ld-linux-x86-64.so.2); no RPATH/RUNPATH;
# NEEDED within libc, libm, libgcc_s (and ld-linux); no versioned glibc symbol
# newer than GLIBC_2.36.
set -euo pipefail

BIN=${1:?usage: checks/elf.sh BINARY [armv7|arm64|amd64]}
# shellcheck source=lib/arch.sh
. "$(dirname "$0")/lib/arch.sh"
adp_arch "${2:-armv7}" || exit 2
MAX_GLIBC=2.36
ALLOWED_NEEDED="libc.so.6 libm.so.6 libgcc_s.so.1 ${ADP_INTERP##*/}"
case $ADP_ARCH in
    armv7) WANT_CLASS=ELF32 WANT_MACHINE=ARM ;;
    arm64) WANT_CLASS=ELF64 WANT_MACHINE=AArch64 ;;
    amd64) WANT_CLASS=ELF64 WANT_MACHINE="Advanced Micro Devices X86-64" ;;
esac
READELF=$ADP_GNU-readelf
command -v "$READELF" >/dev/null || READELF=readelf
command -v "$READELF" >/dev/null || { echo "elf: readelf not found (install binutils-$ADP_GNU: make setup)" >&2; exit 2; }
[ -f "$BIN" ] || { echo "elf: $BIN does not exist" >&2; exit 2; }

fail=0
ok() { printf 'elf: ok    %s\n' "$*"; }
bad() { printf 'elf: FAIL  %s\n' "$*" >&2; fail=1; }

header=$("$READELF" -hW "$BIN")
class=$(awk -F: '/Class:/ {gsub(/ /, "", $2); print $2}' <<<"$header")
machine=$(awk -F: '/Machine:/ {sub(/^ +/, "", $2); print $2}' <<<"$header")
flags=$(awk -F: '/Flags:/ {sub(/^ +/, "", $2); print $2}' <<<"$header")
if [ "$class" = "$WANT_CLASS" ] && [ "$machine" = "$WANT_MACHINE" ]; then
    ok "$class $machine ($ADP_ARCH)"
else
    bad "class/machine is '$class $machine', want '$WANT_CLASS $WANT_MACHINE' for $ADP_ARCH"
fi
if [ "$ADP_ARCH" = armv7 ]; then
    if grep -q 'Version5 EABI' <<<"$flags" && grep -q 'hard-float ABI' <<<"$flags"; then
        ok "flags: $flags"
    else
        bad "flags '$flags' lack 'Version5 EABI, hard-float ABI' (built for the wrong target or float ABI?)"
    fi
fi

interp=$("$READELF" -lW "$BIN" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
if [ "$interp" = "$ADP_INTERP" ]; then ok "interpreter $interp"; else bad "interpreter '$interp', want $ADP_INTERP"; fi

dynamic=$("$READELF" -dW "$BIN")
if grep -qE '\((RPATH|RUNPATH)\)' <<<"$dynamic"; then
    bad "has $(grep -oE '\((RPATH|RUNPATH)\).*' <<<"$dynamic" | tr '\n' ' ')"
else
    ok "no RPATH/RUNPATH"
fi
needed=$(sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' <<<"$dynamic" | sort | tr '\n' ' ')
extra=
for lib in $needed; do
    case " $ALLOWED_NEEDED " in *" $lib "*) ;; *) extra="$extra $lib" ;; esac
done
if [ -z "$extra" ]; then
    ok "NEEDED: $needed"
else
    bad "NEEDED has$extra beyond {$ALLOWED_NEEDED}"
    if grep -qE 'libdl|libpthread|librt' <<<"$extra"; then
        printf 'elf:       libdl/libpthread/librt are merged into libc.so.6 since glibc 2.34: link against glibc 2.36 (make setup) and drop the explicit -l flags\n' >&2
    fi
fi

# Only the "version needs" section: what the binary requires from its libraries.
versions=$("$READELF" -W --version-info "$BIN" | sed -n '/Version needs section/,$p' | grep -o 'Name: GLIBC_[0-9.]*' | sed 's/Name: GLIBC_//' | sort -uV)
highest=$(tail -n1 <<<"$versions")
if [ -z "$highest" ]; then
    bad "no GLIBC_ version requirements found (not dynamically linked against glibc?)"
elif [ "$(printf '%s\n%s\n' "$highest" "$MAX_GLIBC" | sort -V | tail -n1)" = "$MAX_GLIBC" ]; then
    ok "highest glibc symbol version GLIBC_$highest <= GLIBC_$MAX_GLIBC (all: $(tr '\n' ' ' <<<"$versions"))"
else
    newer=$(while read -r v; do
        [ "$(printf '%s\n%s\n' "$v" "$MAX_GLIBC" | sort -V | tail -n1)" = "$MAX_GLIBC" ] || printf 'GLIBC_%s ' "$v"
    done <<<"$versions")
    symbols=$("$READELF" -W --dyn-syms "$BIN" | grep -oE '[A-Za-z_0-9]+@GLIBC_[0-9.]+' | sort -u |
        while IFS=@ read -r sym ver; do case " $newer " in *" $ver "*) printf '%s@%s ' "$sym" "$ver" ;; esac; done)
    bad "needs ${newer}newer than GLIBC_$MAX_GLIBC (highest GLIBC_$highest); symbols: $symbols"
fi

if [ "$fail" != 0 ]; then
    echo "elf: $BIN FAILED the ELF gate" >&2
    exit 1
fi
echo "elf: $BIN ($ADP_ARCH) passes"
