#!/usr/bin/env bash
# The Nix flake's checks that need no network (run by `make nix-check`):
#   1. every .nix file parses (nix-instantiate --parse also rejects undefined
#      variables, so this is more than a syntax check);
#   2. flake.lock is complete: every node pinned with type, owner, repo, rev,
#      narHash and lastModified, and its root inputs are exactly flake.nix's;
#   3. flake.lock is consistent with flake.nix: `nix flake metadata --offline
#      --no-update-lock-file` succeeds only if Nix has nothing to re-lock (a
#      changed URL or `follows` makes it try to fetch, and fail);
#   4. Cargo.lock has only crates.io sources (no git dependency, which crane
#      could not vendor without outputHashes).
# What it cannot do offline: fetch the inputs, evaluate the outputs against
# them, or build anything. docs/nix.md lists what that leaves unverified.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's nix-bin has no nixbld group configured here; builds are not needed.
export NIX_CONFIG=$'experimental-features = nix-command flakes\nbuild-users-group =\nsandbox = false'

fail() {
    echo "nix-offline: $*" >&2
    exit 1
}
for tool in nix nix-instantiate jq; do
    command -v "$tool" >/dev/null || fail "$tool is not installed; run 'make setup' (Debian: nix-bin, jq)"
done

# 1. Parse every .nix file of the project: tracked or untracked but not
# ignored (build output and scratch copies in .tmp/ are ignored); outside a
# git work tree, every one but target/ and .tmp/.
list_nix_files() {
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files -z --cached --others --exclude-standard -- '*.nix'
    else
        find . \( -path ./target -o -path ./.tmp -o -path ./.git -o -name 'result*' \) -prune \
            -o -name '*.nix' -type f -print0
    fi
}
count=0
while IFS= read -r -d '' file; do
    [ -f "$file" ] || continue # deleted but still in the index
    nix-instantiate --parse "$file" >/dev/null || fail "$file does not parse (see above)"
    count=$((count + 1))
done < <(list_nix_files)
[ "$count" -gt 0 ] || fail "no .nix file found"
echo "nix-offline: $count .nix files parse"

# 2. Lock completeness.
[ -f flake.lock ] || fail "flake.lock is missing"
jq -e '.version == 7 and .root == "root"' flake.lock >/dev/null ||
    fail "flake.lock is not a version 7 lock with root node \"root\""
incomplete=$(jq -r '
    .nodes | to_entries[] | select(.key != "root") |
    .key as $name | .value.locked as $l |
    if $l == null then "\($name): not locked"
    elif $l.type != "github" then "\($name): type \($l.type), expected github"
    else
      ( [ ("owner", "repo", "rev", "narHash", "lastModified") | select($l[.] == null) ]
        | map("\($name): no \(.)")[] ),
      ( select(($l.rev // "") | test("^[0-9a-f]{40}$") | not) | "\($name): rev is not 40 hex digits" ),
      ( select(($l.narHash // "") | test("^sha256-[A-Za-z0-9+/]{43}=$") | not) | "\($name): narHash is not sha256 SRI" ),
      ( select(($l.lastModified | type) != "number") | "\($name): lastModified is not a number" )
    end' flake.lock)
[ -z "$incomplete" ] || fail "flake.lock is incomplete:"$'\n'"$incomplete"

# Every input reference (a node name, or a `follows` path from the root)
# must resolve to a node.
dangling=$(jq -r '
    .nodes as $n | $n | to_entries[] | .key as $from | (.value.inputs // {}) | to_entries[] |
    if (.value | type) == "string" then
      select($n[.value] == null) | "\($from).\(.key) -> \(.value)"
    else
      select(reduce .value[] as $step ("root"; if . == null then null else $n[.].inputs[$step] end) == null)
      | "\($from).\(.key) follows \(.value | join("/"))"
    end' flake.lock)
[ -z "$dangling" ] || fail "flake.lock has inputs that resolve to no node:"$'\n'"$dangling"
orphans=$(jq -r '
    .nodes as $n
    | {seen: ["root"], todo: ["root"]}
    | until(.todo == [];
        .todo[0] as $k
        | ([($n[$k].inputs // {})[] | select(type == "string")] - .seen) as $new
        | .todo = .todo[1:] + $new
        | .seen += $new)
    | ($n | keys) - .seen | .[]' flake.lock)
[ -z "$orphans" ] || fail "flake.lock has nodes no input leads to: $(echo $orphans)"

declared=$(nix-instantiate --eval --strict --json -E 'builtins.attrNames (import ./flake.nix).inputs' | jq -r '.[]' | sort)
locked=$(jq -r '.nodes.root.inputs | keys[]' flake.lock | sort)
[ "$declared" = "$locked" ] ||
    fail "flake.nix inputs ($(echo $declared)) differ from flake.lock's root inputs ($(echo $locked))"
echo "nix-offline: flake.lock pins $(jq '.nodes | length - 1' flake.lock) inputs with rev, narHash and lastModified"

# 3. Lock consistency, evaluated by Nix itself on a copy (a path: flake, so
# neither git state nor the target/ directory matter) in a throw-away store.
scratch=$(mktemp -d)
trap 'chmod -R u+w "$scratch" 2>/dev/null; rm -rf "$scratch"' EXIT
mkdir "$scratch/flake"
cp flake.nix flake.lock "$scratch/flake/"
if ! nix --store "$scratch/store" flake metadata --offline --no-update-lock-file \
    "path:$scratch/flake" >"$scratch/metadata.log" 2>&1; then
    cat "$scratch/metadata.log" >&2
    fail "flake.lock does not match flake.nix: Nix wants to re-lock (run 'nix flake lock' with network)"
fi
cmp -s flake.lock "$scratch/flake/flake.lock" || fail "nix flake metadata rewrote flake.lock"
echo "nix-offline: flake.lock matches flake.nix's inputs and follows (nix flake metadata --offline)"

# 4. Only crates.io in Cargo.lock.
others=$(grep '^source = ' Cargo.lock | grep -v '^source = "registry+https://github.com/rust-lang/crates.io-index"$' | sort -u || true)
[ -z "$others" ] || fail "Cargo.lock has non-crates.io sources (crane cannot vendor them offline):"$'\n'"$others"
echo "nix-offline: Cargo.lock has only crates.io sources ($(grep -c '^source = ' Cargo.lock) crates)"
