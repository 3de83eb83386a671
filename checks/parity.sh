#!/usr/bin/env bash
# Flake <-> make parity (run by `make nix-check`): every flake package and
# check has its make twin and every make target has its flake twin, so the
# two build paths cannot drift apart silently.
#
# Naming rule: packages.<system>.NAME is `make NAME`; checks.<system>.adp-NAME
# is `make NAME`; overlays and nixosModules have no twin. docs/nix.md must
# list every output. The flake's output names are read by evaluating flake.nix
# itself (offline: the inputs are stand-ins that throw if touched, and only
# attribute names are forced). The make side is read from the Makefile.
# Targets that have no twin on purpose are listed below with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
export NIX_CONFIG='build-users-group ='

# Flake outputs without a make twin (name: reason).
flake_only=(
    "default: alias of adp-armv7"
    "agent-data-plane-armv7l: for NixOS boards: nixos-26.05's armv7 glibc and store interpreter; make builds only the FHS binary (agent-data-plane-armv7)"
    "adp-nixos-module: a NixOS VM test of nixosModules.default; runs only where KVM and the cache are available"
)
# Make targets without a flake twin (name: reason).
make_only=(
    "help: lists the make targets"
    "setup: installs the Debian toolchain; the flake pins its own"
    "check: runs every check; its twin is 'nix flake check'"
    "nix-check: these offline checks of the flake itself"
    "bench: measurements for docs/benchmarks.md, never a pass/fail check"
    "bench-codec: a measurement, never a pass/fail check"
    "fuzz: a long fuzzing run (cargo-fuzz, libFuzzer), never part of a check"
    "deb-install-test: installs the .deb in a debootstrapped armhf root as root (debootstrap from the Debian mirror, binfmt_misc, chroot), outside any build sandbox"
)

for tool in nix-instantiate jq; do
    command -v "$tool" >/dev/null || {
        echo "parity: $tool is not installed; run 'make setup' (Debian: nix-bin, jq)" >&2
        exit 1
    }
done

flake_names=$(nix-instantiate --eval --strict --json -E '
  let
    flake = import ./flake.nix;
    offline = name: throw "parity: input ${name} was evaluated; only output names may be";
    outputs = flake.outputs (builtins.mapAttrs (name: _: offline name) flake.inputs // { self = outputs; });
    names = set: builtins.concatMap builtins.attrNames (builtins.attrValues set);
  in
    map (n: "package ${n}") (names outputs.packages) ++ map (n: "check ${n}") (names outputs.checks)
    ++ map (n: "overlay ${n}") (builtins.attrNames outputs.overlays)
    ++ map (n: "module ${n}") (builtins.attrNames outputs.nixosModules)
' | jq -r '.[]' | sort -u)

make_targets=$(awk -F: '/^[a-zA-Z0-9][a-zA-Z0-9_-]*:([^=]|$)/ { print $1 }' Makefile | sort -u)

reason_for() { # NAME LIST... -> prints the reason if NAME is listed
    local name=$1 entry
    shift
    for entry in "$@"; do
        if [ "${entry%%:*}" = "$name" ]; then
            echo "${entry#*: }"
            return 0
        fi
    done
    return 1
}

problems=()
pairs=()
while read -r kind name; do
    [ -n "$name" ] || continue
    # Every output is in docs/nix.md's table, with its twin or why it has none.
    case $kind in
        package) attr=packages.$name ;;
        check) attr=checks.$name ;;
        overlay) attr=overlays.$name ;;
        module) attr=nixosModules.$name ;;
    esac
    grep -qF "\`$attr\`" docs/nix.md || problems+=("docs/nix.md does not list \`$attr\` (give its make twin or why it has none)")
    if [ "$kind" = overlay ] || [ "$kind" = module ]; then
        pairs+=("$kind $name -> (none: for Nix users, no artifact of its own)")
        continue
    fi
    if reason=$(reason_for "$name" "${flake_only[@]}"); then
        pairs+=("$kind $name -> (none: $reason)")
        continue
    fi
    if [ "$kind" = check ]; then
        [[ $name == adp-* ]] || { problems+=("check $name is not named adp-<make target>"); continue; }
        twin=${name#adp-}
    else
        twin=$name
    fi
    if grep -qx "$twin" <<<"$make_targets"; then
        pairs+=("$kind $name -> make $twin")
    else
        problems+=("flake $kind $name has no make target '$twin'")
    fi
done <<<"$flake_names"

for target in $make_targets; do
    if reason_for "$target" "${make_only[@]}" >/dev/null; then
        continue
    fi
    grep -qx -e "package $target" -e "check adp-$target" <<<"$flake_names" ||
        problems+=("make $target has no flake twin (packages.$target or checks.adp-$target)")
done

# Listed exceptions must still exist, or the list rots.
for entry in "${make_only[@]}"; do
    grep -qx "${entry%%:*}" <<<"$make_targets" || problems+=("make_only lists '${entry%%:*}', which the Makefile no longer has")
done

# One source of truth: every checks/ script the flake runs exists and is run
# by make too.
for script in $(grep -hv '^[[:space:]]*#' nix/*.nix | grep -o 'checks/[a-z0-9-]*\.sh' | sort -u); do
    [ -f "$script" ] || { problems+=("nix/ runs $script, which does not exist"); continue; }
    grep -q "$script" Makefile checks/*.sh ||
        problems+=("nix/ runs $script but make never does")
done

printf '  %s\n' "${pairs[@]}"
if [ ${#problems[@]} -gt 0 ]; then
    printf 'parity: %s\n' "${problems[@]}" >&2
    exit 1
fi
echo "parity: ${#pairs[@]} flake outputs have their make twins; every make target has its flake twin"
