#!/usr/bin/env bash
# Dependency licences, bans and sources against deny.toml, with no network.
#
#   checks/licences.sh        # make licences; the flake's checks.adp-licences
#
# cargo-deny reads every dependency's manifest from cargo's registry cache
# (filled by any build or test of the workspace) or, in Nix, from the
# vendored crates. Only the platforms deny.toml lists are resolved, so the
# sources of crates for other systems need not be there. Advisories are not
# checked: their database is a download.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deny >/dev/null || {
    echo "licences: cargo-deny not found; run 'make setup' (Debian) or use 'nix develop'" >&2
    exit 2
}
echo "licences: $(cargo-deny --version), policy deny.toml"

export CARGO_NET_OFFLINE=true
targets=$(sed -n '/^targets = \[/,/^\]/p' deny.toml | grep -o '"[^"]*"' | tr -d '"')
[ -n "$targets" ] || { echo "licences: deny.toml lists no [graph] targets" >&2; exit 1; }
platforms=() fetch_targets=()
for t in $targets; do
    platforms+=(--filter-platform "$t")
    fetch_targets+=(--target "$t")
done

# The resolution cargo-deny will make, checked first so that a missing crate
# gets a hint instead of an error from inside cargo-deny.
if ! err=$(cargo metadata --format-version 1 --locked --offline "${platforms[@]}" 2>&1 >/dev/null); then
    echo "$err" >&2
    echo "licences: a dependency's sources are not in cargo's cache; fetch them once with 'cargo fetch --locked' (online), then rerun" >&2
    exit 1
fi

# cargo-deny runs `cargo fetch` and `cargo metadata` for every platform in
# Cargo.lock, so offline it would need the sources of Windows-, WASI- and
# UEFI-only crates that no build here downloads. It runs both through
# $CARGO: this wrapper limits them to deny.toml's targets. (cargo-deny is
# called directly because `cargo deny` would point CARGO back at cargo.)
cargo=$(command -v cargo)
wrapper=$(mktemp -d)
trap 'rm -rf "$wrapper"' EXIT
{
    echo '#!/usr/bin/env bash'
    echo 'case "$1" in'
    echo "    metadata) exec '$cargo' \"\$@\" ${platforms[*]} ;;"
    echo "    fetch) exec '$cargo' \"\$@\" ${fetch_targets[*]} ;;"
    echo "    *) exec '$cargo' \"\$@\" ;;"
    echo 'esac'
} >"$wrapper/cargo"
chmod +x "$wrapper/cargo"

set -x
CARGO="$wrapper/cargo" cargo-deny --offline --locked check --show-stats licenses bans sources
