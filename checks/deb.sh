#!/usr/bin/env bash
# The .deb of each result directory, read with Debian's own tools:
# `dpkg-deb --info/--contents`, the Architecture and the Depends checked
# against what binutils' readelf says the packaged binary needs (an
# independent reading of what adp-package computed from the ELF), the
# conffile and maintainer scripts present, then lintian: no error and no
# warning (overrides, each with its reason, are in
# packaging/deb/lintian-overrides and printed as O:).
#
#   checks/deb.sh RESULT_DIR...        # e.g. result-release, or result-adp-armv7 result-adp-arm64
#
# ADP_DEB_LINTIAN=absent: every check but lintian's, and a line saying it was
# skipped. Only the flake's checks.adp-deb sets it (checks/tools.json's
# "nixAbsent"): nixpkgs has no lintian. `make deb` always runs lintian.
set -euo pipefail

[ $# -gt 0 ] || { echo "usage: checks/deb.sh RESULT_DIR..." >&2; exit 2; }
LINTIAN=1
case ${ADP_DEB_LINTIAN:-} in
    '') ;;
    absent) LINTIAN=0 ;;
    *) echo "deb: ADP_DEB_LINTIAN='$ADP_DEB_LINTIAN': the only value is 'absent' (run without lintian)" >&2; exit 2 ;;
esac
for tool in dpkg-deb readelf $([ "$LINTIAN" = 0 ] || echo lintian); do
    command -v "$tool" >/dev/null || { echo "deb: $tool not found (make setup)" >&2; exit 2; }
done
say() { printf 'deb: %s\n' "$*"; }
fail=0
bad() { printf 'deb: FAIL  %s\n' "$*" >&2; fail=1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

highest() { sed -n "s/.*Name: $1\([0-9.]*\).*/\1/p" | sort -uV | tail -1; }

for dir in "$@"; do
    for deb in "$dir"/*.deb; do
        [ -e "$deb" ] || { bad "no .deb in $dir"; continue; }
        name=$(basename "$deb")
        say "$name"
        printf '+ dpkg-deb --info %s\n' "$name"
        dpkg-deb --info "$deb" | sed 's/^/  /'
        arch=$(dpkg-deb --field "$deb" Architecture)
        case $name in *"_$arch.deb") say "ok    Architecture: $arch (the file name's)" ;; *) bad "$name: Architecture $arch" ;; esac
        printf '+ dpkg-deb --contents %s\n' "$name"
        dpkg-deb --contents "$deb" | sed 's/^/  /'
        rm -rf "$work/x" && mkdir "$work/x"
        dpkg-deb -x "$deb" "$work/x"
        dpkg-deb -e "$deb" "$work/x/DEBIAN"
        bin=$work/x/usr/bin/agent-data-plane
        versions=$(readelf -W --version-info "$bin" | sed -n '/Version needs section/,$p')
        needed=$(readelf -dW "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
        want="libc6 (>= $(highest GLIBC_ <<<"$versions"))"
        if grep -qx libgcc_s.so.1 <<<"$needed"; then
            gcc=$(grep -A100 'File: libgcc_s.so.1' <<<"$versions" | sed '/File: lib[^g]/,$d' | highest GCC_)
            want="$want, libgcc-s1${gcc:+ (>= $gcc)}"
        fi
        got=$(dpkg-deb --field "$deb" Depends)
        if [ "$got" = "$want" ]; then say "ok    Depends: $got (readelf agrees)"; else bad "Depends: '$got', readelf says '$want'"; fi
        grep -qx /etc/datadog-agent/datadog.yaml "$work/x/DEBIAN/conffiles" && say "ok    conffile /etc/datadog-agent/datadog.yaml" ||
            bad "datadog.yaml is not in conffiles"
        for script in postinst prerm postrm; do
            [ -x "$work/x/DEBIAN/$script" ] && sh -n "$work/x/DEBIAN/$script" || bad "$script missing, not executable or not valid sh"
        done
        if [ "$LINTIAN" = 0 ]; then
            say "SKIPPED lintian: ADP_DEB_LINTIAN=absent (nixpkgs has no lintian; make deb runs it)"
            continue
        fi
        # The verdict from --fail-on; the listing with the overrides and their
        # reasons from a second run (lintian 2.116 exits 2 with --show-overrides
        # even when the only tags are overridden ones).
        printf '+ lintian --fail-on error,warning --display-info %s\n' "$name"
        if lintian --fail-on error,warning --display-info "$deb" >"$work/lintian.txt" 2>&1; then
            say "ok    lintian: no error or warning"
        else
            bad "lintian reports errors or warnings"
        fi
        printf '+ lintian --display-info --show-overrides %s\n' "$name"
        lintian --display-info --show-overrides "$deb" 2>&1 | grep -v '^running with root privileges' | sed 's/^/  /' || true
    done
done
[ "$fail" = 0 ] || { echo "deb: FAILED" >&2; exit 1; }
say "all passed"
