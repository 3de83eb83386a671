#!/usr/bin/env bash
# Dependency licences and sources against deny.toml, with no network.
#
#   checks/licences.sh        # make licences; the flake's checks.adp-licences
#
# checks/licences.py applies deny.toml (cargo-deny's format) with cargo
# metadata and Python's standard library: it reads every dependency's
# manifest from cargo's registry cache (filled by any build or test of the
# workspace) or, in Nix, from the vendored crates. Advisories are not
# checked: their database is a download.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v python3 >/dev/null || { echo "licences: python3 not found (make setup)" >&2; exit 2; }
export CARGO_NET_OFFLINE=true
python3 checks/licences.py --self-test
python3 checks/licences.py
