#!/usr/bin/env bash
# The Nix flake's checks that need no network (run by `make nix-check`):
#   1. every .nix file parses (nix-instantiate --parse also rejects undefined
#      variables, so this is more than a syntax check);
#   2. flake.lock is complete: every node pinned with type, owner, repo, rev,
#      narHash and lastModified, and its root inputs are exactly flake.nix's;
#      the nixpkgs pins are the (rev, narHash) pairs docs/nix.md confirms
#      with independent public lock files;
#   3. flake.lock is consistent with flake.nix: `nix flake metadata --offline
#      --no-update-lock-file` succeeds only if Nix has nothing to re-lock (a
#      changed URL or `follows` makes it try to fetch, and fail);
#   4. Cargo.lock has only crates.io sources (no git dependency, which crane
#      could not vendor without outputHashes);
#   5. crane's and fenix's narHash and lastModified recompute from their
#      commits (`git archive REV`, `nix hash path`, the committer time), from
#      a git copy: CRANE_REPO / FENIX_REPO (a git dir, as flake-eval takes
#      them), else the commit fetched from GitHub into .tmp/inputs/. Where
#      neither can be had, the line says SKIPPED and why. The two nixpkgs
#      pins are too large to fetch: docs/nix.md names public lock files that
#      record the same (rev, narHash);
#   6. the build identity (nix/build-info.nix) of a clean, a dirty and an
#      unversioned tree is what build.rs accepts: 8 hex digits or nothing,
#      never "<hash>-dirty".
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

# The nixpkgs pins are the (rev, narHash) pairs docs/nix.md confirms with an
# independent public lock: a new pin needs its confirmation there too.
for input in nixpkgs nixpkgs-2211; do
    read -r rev nar < <(jq -r --arg n "$input" '.nodes[.nodes.root.inputs[$n]].locked | "\(.rev) \(.narHash)"' flake.lock)
    grep -qF "$rev" docs/nix.md && grep -qF "$nar" docs/nix.md ||
        fail "$input is pinned at $rev ($nar), which docs/nix.md does not confirm with a public lock (see 'What is pinned')"
done
echo "nix-offline: the nixpkgs pins are the ones docs/nix.md confirms with public lock files"

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

# 5. crane's and fenix's narHash and lastModified, recomputed.
recompute() { # INPUT VARIABLE
    local input=$1 var=$2 owner repo rev nar modified gitdir got got_modified
    read -r owner repo rev nar modified < <(jq -r --arg n "$input" \
        '.nodes[.nodes.root.inputs[$n]].locked | "\(.owner) \(.repo) \(.rev) \(.narHash) \(.lastModified)"' flake.lock)
    gitdir=${!var:-}
    if [ -z "$gitdir" ]; then
        gitdir=.tmp/inputs/$owner+$repo.git
        if ! git --git-dir="$gitdir" cat-file -e "$rev^{commit}" 2>/dev/null; then
            [ -d "$gitdir" ] || git init -q --bare "$gitdir"
            if ! timeout 300 git --git-dir="$gitdir" fetch -q --depth 1 "https://github.com/$owner/$repo" "$rev" \
                >"$scratch/fetch-$input.log" 2>&1; then
                echo "nix-offline: SKIPPED $input's narHash: no git copy of $owner/$repo here" \
                    "(set $var to one, or allow https://github.com: $(tail -n 1 "$scratch/fetch-$input.log"))"
                return 0
            fi
        fi
    fi
    git --git-dir="$gitdir" cat-file -e "$rev^{commit}" 2>/dev/null || fail "$var=$gitdir has no commit $rev ($input)"
    mkdir "$scratch/$input"
    git --git-dir="$gitdir" archive "$rev" | tar -x -C "$scratch/$input"
    got=$(nix --store dummy:// hash path --type sha256 "$scratch/$input")
    got_modified=$(git --git-dir="$gitdir" log -1 --format=%ct "$rev")
    [ "$got" = "$nar" ] || fail "$input: flake.lock's narHash $nar, but $owner/$repo at $rev hashes to $got"
    [ "$got_modified" = "$modified" ] || fail "$input: flake.lock's lastModified $modified, but $rev was committed at $got_modified"
    echo "nix-offline: $input $owner/$repo@${rev:0:12}: narHash $got and lastModified $got_modified recomputed from the commit"
}
recompute crane CRANE_REPO
recompute fenix FENIX_REPO

# 6. The build identity a clean, a dirty and an unversioned tree get.
identity=$(nix-instantiate --eval --strict --json -E '
  let
    info = import ./nix/build-info.nix;
    rev = "0123456789abcdef0123456789abcdef01234567";
  in {
    clean = info { inherit rev; lastModified = 1; };
    dirty = info { dirtyRev = "${rev}-dirty"; lastModified = 1; };
    none = info { };
  }')
problems=$(jq -r '
  to_entries[] | .key as $tree | .value |
  (select(.gitHash | test("^([0-9a-f]{8})?$") | not) | "\($tree) tree: gitHash \(.gitHash | @json), which build.rs rejects"),
  (select($tree == "dirty" and (.revision | endswith("-dirty") | not)) | "dirty tree: revision \(.revision) does not say -dirty")' <<<"$identity")
[ -z "$problems" ] || fail "nix/build-info.nix:"$'\n'"$problems"
echo "nix-offline: build identity: $(jq -c 'map_values(.gitHash)' <<<"$identity") (8 hex digits, as build.rs wants)"
