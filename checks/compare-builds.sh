#!/usr/bin/env bash
# Compares two builds of the release artifacts: the one comparison of the
# reproducibility gate, for `make reproducibility` (checks/reproducibility.sh,
# two Debian builds) and the flake's checks.adp-reproducibility (two Nix
# builds).
#
#   checks/compare-builds.sh RESULT_A RESULT_B
#
# Each result directory must verify against its own SHA256SUMS; then the
# shipped binary (taken out of each tarball: one per architecture in a
# release directory) and every file either
# SHA256SUMS lists are compared, one line each. On a difference, a
# `diffoscope --text -` report of each differing file (first 200 lines), and
# exit 1.
set -euo pipefail

A=${1:?usage: checks/compare-builds.sh RESULT_A RESULT_B}
B=${2:?usage: checks/compare-builds.sh RESULT_A RESULT_B}
say() { printf 'reproducibility: %s\n' "$*"; }
die() { printf 'reproducibility: FAIL: %s\n' "$*" >&2; exit 1; }

for r in "$A" "$B"; do
    [ -f "$r/SHA256SUMS" ] || die "$r/SHA256SUMS missing: not a result directory"
    (cd "$r" && sha256sum --check --quiet SHA256SUMS) || die "$r does not match its own SHA256SUMS"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
declare -a differing=()
compare() {
    local what=$1 fa=$2 fb=$3 sa sb
    sa=$(sha256sum "$fa" 2>/dev/null | cut -d' ' -f1 || true)
    sb=$(sha256sum "$fb" 2>/dev/null | cut -d' ' -f1 || true)
    if [ -n "$sa" ] && [ "$sa" = "$sb" ]; then
        printf 'reproducibility: same      %s  %s\n' "$sa" "$what"
    else
        printf 'reproducibility: DIFFERENT %s  %s (B: %s)\n' "${sa:-missing}" "$what" "${sb:-missing}"
        differing+=("$fa" "$fb")
    fi
}

# The stripped binary first: when it differs, the compile is not
# reproducible; when only the archives differ, the packaging is not.
stems=$(sed -n 's/^[0-9a-f]*  \(agent-data-plane-.*\)\.tar\.gz$/\1/p' "$A/SHA256SUMS")
[ -n "$stems" ] || die "no tarball listed in $A/SHA256SUMS"
for stem in $stems; do
    for side in A B; do
        dir=$A
        [ "$side" = A ] || dir=$B
        mkdir -p "$work/$side/$stem"
        tar -xzf "$dir/$stem.tar.gz" -C "$work/$side/$stem" usr/bin/agent-data-plane 2>/dev/null || true
    done
    compare "$stem: binary (stripped, from the tarball)" "$work/A/$stem/usr/bin/agent-data-plane" \
        "$work/B/$stem/usr/bin/agent-data-plane"
done

while read -r name; do
    compare "$name" "$A/$name" "$B/$name"
done < <(cat "$A/SHA256SUMS" "$B/SHA256SUMS" | awk '{ print $2 }' | sort -u)

if [ ${#differing[@]} -eq 0 ]; then
    say "ok: all $(wc -l <"$A/SHA256SUMS") artifacts of the two builds are identical"
    exit 0
fi
if command -v diffoscope >/dev/null; then
    # When the oci-archive differs, its report covers the layout's files.
    archive_differs=0
    for ((i = 0; i < ${#differing[@]}; i += 2)); do
        case ${differing[i]} in *.oci.tar) archive_differs=1 ;; esac
    done
    for ((i = 0; i < ${#differing[@]}; i += 2)); do
        case ${differing[i]} in */oci/*) [ "$archive_differs" = 0 ] || continue ;; esac
        say "diffoscope ${differing[i]} ${differing[i + 1]} (first 200 lines):"
        timeout 900 diffoscope --text - "${differing[i]}" "${differing[i + 1]}" 2>&1 | head -n 200 || true
    done
else
    say "diffoscope is not installed (make setup installs diffoscope-minimal): no report"
fi
die "the two builds differ"
