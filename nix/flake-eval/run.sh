#!/usr/bin/env bash
# Offline evaluation of this project's flake: does its own Nix code evaluate?
#
# Run from a checkout of the project (the directory with flake.nix):
#   CRANE_REPO=/path/crane.git FENIX_REPO=/path/fenix.git \
#   NIXLIB_REPO=/path/nixpkgs.lib.git  path/to/flake_eval/run.sh [REGEX]
#
# CRANE_REPO, FENIX_REPO, NIXLIB_REPO: git directories (bare or .git) of
#   ipetkov/crane, nix-community/fenix and nix-community/nixpkgs.lib.
#   crane and fenix are checked out at the revisions flake.lock pins;
#   nixpkgs lib at NIXLIB_REV (default HEAD).
# JOBS: evaluations run at once (default 1). SYSTEMS: default
#   "x86_64-linux aarch64-linux". REGEX: only outputs whose name matches.
# FLAKE_EVAL_VERBOSE=1: the full trace of each failure on stderr.
# FLAKE_EVAL_NO_SHIMS="readFileType dotdot" (or 1): see compat.nix.
#
# An error line names where it was raised (file:line, prefixed crane:,
# fenix:, nixpkgs-lib: or flake_eval: for the stand-in) and the innermost
# frame in the project's own files when Nix's trace has one. A site in
# flake_eval:standin/ is either a gap in the stand-in or a project value
# that the stand-in builders reject as nixpkgs' would (a set where a string
# or a derivation belongs); the verbose trace tells which.
#
# stdout: "ok NAME" or "error NAME: message" per output (NAME like
# packages.x86_64-linux.adp or hydraJobs.checks.aarch64-linux.adp-fmt), and
# one for flake.lock (flake.nix's inputs against the lock). Exit status 0
# only if every line is ok. Notes (Nix version shims, evaluation warnings)
# go to stderr.
#
# Nothing is fetched or built: nix-instantiate --eval against the dummy://
# store. Files: eval.nix (calls flake.nix's outputs like Nix's call-flake,
# checks each output like `nix flake check`), standin/*.nix (the nixpkgs
# inputs: real lib, dummy packages, each attribute listed by hand),
# compat.nix (shims for what Nix 2.8 lacks).
#
# A pass means: with the real crane and fenix at the locked revisions, the
# real nixpkgs lib and the stand-in packages, every output's drvPath (an
# app's program path) can be computed, so the project's Nix code has no
# typo, missing attribute, wrong argument or type error on any path that
# evaluation reaches. It does not prove that nixpkgs 26.05 / 22.11 have the
# stand-in's packages with those attributes, that they are available
# (meta.platforms, broken, unfree) on both systems, that anything builds,
# or that Nix >= 2.31 agrees in every detail with 2.8 plus the shims.
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
checkout=$(pwd)
: "${CRANE_REPO:?set CRANE_REPO to a git dir of ipetkov/crane}"
: "${FENIX_REPO:?set FENIX_REPO to a git dir of nix-community/fenix}"
: "${NIXLIB_REPO:?set NIXLIB_REPO to a git dir of nix-community/nixpkgs.lib}"
NIXLIB_REV=${NIXLIB_REV:-HEAD}
JOBS=${JOBS:-1}
SYSTEMS=${SYSTEMS:-x86_64-linux aarch64-linux}
filter=${1:-}

if [ ! -f "$checkout/flake.nix" ] || [ ! -f "$checkout/flake.lock" ]; then
  echo "error flake.nix: run this from the project checkout (no flake.nix or flake.lock in $checkout)"
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/flake-eval.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src" "$work/crane" "$work/fenix" "$work/nixlib" "$work/res"

nixi() {
  nix-instantiate --option build-users-group '' --store dummy:// --eval --strict "$@"
}

# The flake's source as Nix sees a git flake: the tracked files only (with
# their work-tree contents), so a file the Nix code reads but git does not
# track is an error here too.
selfRev="" selfDirty=0 selfLastModified=0
if git -C "$checkout" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$checkout" && git ls-files -z --cached | while IFS= read -r -d '' f; do
    [ -e "$f" ] || [ -L "$f" ] || continue # deleted in the work tree
    [ -d "$f" ] && [ ! -L "$f" ] && continue # a submodule: not in the flake
    printf '%s\0' "$f"
  done | xargs -0 -r cp -P --parents -t "$work/src")
  if selfRev=$(git -C "$checkout" rev-parse --verify -q HEAD); then
    selfLastModified=$(git -C "$checkout" log -1 --format=%ct HEAD)
    [ -z "$(git -C "$checkout" status --porcelain --untracked-files=no)" ] || selfDirty=1
  else
    selfRev=""
  fi
else
  echo "note: $checkout is not a git checkout: every file is visible to the flake" >&2
  cp -a "$checkout/." "$work/src"
fi
selfNarHash=$(nix --extra-experimental-features nix-command --option build-users-group '' \
  --store dummy:// hash path --type sha256 "$work/src" 2>/dev/null || true)

# crane and fenix at the revisions flake.lock pins.
lockrev() {
  nixi --json -E "let l = builtins.fromJSON (builtins.readFile $work/src/flake.lock);
    in l.nodes.\${l.nodes.\${l.root}.inputs.\"$1\"}.locked.rev" 2>/dev/null | tr -d '"'
}
setup_ok=1
extract() { # NAME GITDIR REV DEST
  if [ -z "$3" ]; then
    echo "error inputs.$1: no revision for it (flake.lock / NIXLIB_REV)"
    setup_ok=0
  elif ! git --git-dir="$2" cat-file -e "$3^{commit}" 2>/dev/null; then
    echo "error inputs.$1: revision $3 is not in $2"
    setup_ok=0
  elif ! git --git-dir="$2" archive "$3" | tar -x -C "$4"; then
    echo "error inputs.$1: cannot extract $3 from $2"
    setup_ok=0
  fi
}
extract crane "$CRANE_REPO" "$(lockrev crane)" "$work/crane"
extract fenix "$FENIX_REPO" "$(lockrev fenix)" "$work/fenix"
extract nixpkgs-lib "$NIXLIB_REPO" \
  "$(git --git-dir="$NIXLIB_REPO" rev-parse --verify -q "$NIXLIB_REV^{commit}" 2>/dev/null)" "$work/nixlib"
[ "$setup_ok" = 1 ] || exit 1

# nix-instantiate arguments shared by every evaluation of eval.nix.
args=(
  --arg src "\"$work/src\""
  --arg craneSrc "\"$work/crane\""
  --arg fenixSrc "\"$work/fenix\""
  --arg nixlibSrc "\"$work/nixlib\""
  --argstr selfRev "$selfRev"
  --argstr selfDirty "$selfDirty"
  --argstr selfLastModified "$selfLastModified"
  --arg systems "[ $(for s in $SYSTEMS; do printf '"%s" ' "$s"; done)]"
)
[ -z "$selfNarHash" ] || args+=(--argstr selfNarHash "$selfNarHash")

rel() {
  sed -e "s|$work/src/||g; s|$work/crane/|crane:|g; s|$work/fenix/|fenix:|g" \
    -e "s|$work/nixlib/|nixpkgs-lib:|g; s|$here/|flake_eval:|g"
}

# One line for a failure: the message, where it was raised and, if that is
# not in the project, the innermost frame that is.
summarize() { # TRACEFILE
  local f=$1 msg site proj
  msg=$(sed -n '/^error: /{s/^error: //;p;q}' "$f")
  [ -n "$msg" ] || msg=$(grep -v '^trace: ' "$f" | grep -m1 . || echo "nix-instantiate failed")
  site=$(grep -m1 -oE '^ +at /[^ ]+:[0-9]+:[0-9]+' "$f" | sed -E 's/^ +at //')
  proj=$(grep -m1 -oE "^ +at $work/src/[^ ]+:[0-9]+:[0-9]+" "$f" | sed -E 's/^ +at //')
  printf '%s' "$msg" | rel
  # A file the code names that exists in the checkout but is not tracked.
  local p
  for p in $(printf '%s' "$msg" | grep -oE "$work/src/[^ )'\"]+" | sort -u); do
    [ -e "$p" ] || [ ! -e "$checkout/${p#"$work"/src/}" ] ||
      printf ' [%s exists in the checkout but git does not track it]' "${p#"$work"/src/}"
  done
  [ -z "$site" ] || printf ' (at %s)' "$(printf '%s' "$site" | rel)"
  [ -z "$proj" ] || [ "$proj" = "$site" ] || printf ' (project frame: %s)' "$(printf '%s' "$proj" | rel)"
}

# EVAL NAME ATTR [extra args]: prints "ok NAME" or "error NAME: ..."
evaluate() {
  local name=$1 attr=$2 out
  shift 2
  if out=$(nixi --show-trace "${args[@]}" "$@" "$here/eval.nix" -A "$attr" 2>"$work/res/$name.err"); then
    printf 'ok %s\n' "$name"
    printf '%s\n' "$out" >"$work/res/$name.out"
  else
    printf 'error %s: %s\n' "$name" "$(summarize "$work/res/$name.err")"
    if [ "${FLAKE_EVAL_VERBOSE:-0}" = 1 ]; then
      { echo "--- $name"; grep -v '^trace: ' "$work/res/$name.err" | rel; } >&2
    fi
    return 1
  fi
}

shims=$(nixi --json -E "(import $here/compat.nix).shimmed" 2>/dev/null | tr -d '[]"' | sed 's/,/, /g')
[ -z "$shims" ] || echo "note: $(nix-instantiate --version) lacks builtins behaviour the inputs rely on; shimmed: $shims (see compat.nix)" >&2

status=0
evaluate flake.lock lockCheck || status=1

# Every output's name, per group, so that one group that cannot be listed
# does not hide the others.
names=()
for group in packages checks apps devShells formatter hydraJobs overlays nixosModules; do
  if list=$(nixi --json --show-trace "${args[@]}" --argstr group "$group" \
    -E "{ group, ... }@a: (import $here/eval.nix (removeAttrs a [ \"group\" ])).names group" \
    2>"$work/res/list-$group.err"); then
    list=${list#[}
    list=${list%]}
    list=${list//\"/}
    IFS=, read -r -a more <<<"$list"
    names+=("${more[@]}")
  else
    printf 'error %s: cannot list: %s\n' "$group" "$(summarize "$work/res/list-$group.err")"
    status=1
  fi
done
if [ -n "$filter" ]; then
  kept=()
  for n in "${names[@]}"; do [[ $n =~ $filter ]] && kept+=("$n"); done
  names=("${kept[@]}")
fi

export -f nixi evaluate summarize rel
export work here checkout FLAKE_EVAL_VERBOSE="${FLAKE_EVAL_VERBOSE:-0}"
export args_file="$work/args"
printf '%s\0' "${args[@]}" >"$args_file"
check_one() {
  local args
  mapfile -d '' -t args <"$args_file"
  evaluate "$1" result --argstr name "$1" >"$work/res/$1.line"
}
export -f check_one
if [ "${#names[@]}" -gt 0 ]; then
  printf '%s\0' "${names[@]}" | xargs -0 -r -P "$JOBS" -I{} bash -c 'check_one "$1"' _ {}
fi
for n in "${names[@]}"; do
  if [ -f "$work/res/$n.line" ]; then cat "$work/res/$n.line"; else echo "error $n: not evaluated"; fi
  grep -q '^ok ' "$work/res/$n.line" 2>/dev/null || status=1
done

# Evaluation warnings (lib.warn; Nix 2.8 prints them as traces), once each.
cat "$work"/res/*.err 2>/dev/null | sed -n 's/^trace: //p' | sed 's/\x1b\[[0-9;]*m//g' | sort | uniq -c |
  while read -r count msg; do echo "note: $count evaluation(s) traced: $msg" >&2; done

ok=$(cat "$work"/res/*.line 2>/dev/null | grep -c '^ok ')
echo "note: $ok of ${#names[@]} outputs evaluate" >&2
exit "$status"
