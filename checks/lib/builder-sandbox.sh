#!/usr/bin/env bash
# Runs a check under the Nix builder's conditions, so that what the sandbox of
# its flake twin (checks.adp-CHECK) would reject fails `make check` too:
#   - an unprivileged user: nobody, uid/gid 65534 (Nix: a nixbld user);
#   - read-only inputs: copies with the store's canonical modes (0444, or
#     0555 for directories and executables; owned by root, mtime 1), so a
#     `cp -r` of one is read-only as well;
#   - HOME=/homeless-shelter, which does not exist;
#   - no network: its own network namespace with loopback only, and its own
#     PID namespace, so nothing it starts outlives it;
#   - a fresh, empty TMPDIR (= NIX_BUILD_TOP) as the working directory;
#   - PATH: stdenv's tools and the tools checks/tools.json declares for the
#     check (plus crane's toolchain for cargo checks), each a link to the
#     Debian command. Every other command the host has answers with an error
#     naming the check and itself, and exits 127.
#
#   checks/lib/builder-sandbox.sh run CHECK [--input NAME=PATH[:PATH...]]... [--env NAME=VALUE]... -- COMMAND
#       COMMAND is bash, run with -euo pipefail (as stdenv runs a build) after
#       the prelude the flake's script checks share (tools.json "prelude":
#       checks/ copied writable into the working directory). Each input is
#       exported as $NAME, the path of its read-only copy (a directory of the
#       PATHs when there are several). $checksSource is the checks/ tree.
#   checks/lib/builder-sandbox.sh prepare CHECK DIR
#       DIR/bin: the declared commands; DIR/undeclared: the rest, failing.
#   checks/lib/builder-sandbox.sh exec DIR -- PROGRAM [ARGS...]
#       Runs PROGRAM under the conditions above with DIR's PATH, in the
#       current directory, keeping the CARGO_*, RUST_*, ADP_* and
#       LD_LIBRARY_PATH variables: cargo's target runner in `make test` and
#       `make test-armv7`, so each test binary runs as in checks.adp-test.
#   checks/lib/builder-sandbox.sh runner CHECK DIR
#       prepare CHECK DIR, then print "<this script> exec DIR --": the prefix
#       of cargo's target runner (nothing, with a warning, when
#       ADP_BUILDER_SANDBOX=off).
#   checks/lib/builder-sandbox.sh commands CHECK
#       The commands CHECK may call, with the Debian path each links to.
#
# Needs root (setpriv and unshare from util-linux, ip from iproute2: make
# setup). Not root: fails, unless ADP_BUILDER_SANDBOX=off, which runs the
# check without these conditions and says so.
set -euo pipefail

SELF=$(realpath "$0")
ROOT=$(cd "$(dirname "$SELF")/../.." && pwd)
TOOLS_JSON=$ROOT/checks/tools.json
BUILD_UID=65534
BUILD_GID=65534
# Where Debian's commands are; never a user's own PATH (pyenv, rustup, ...).
SYSTEM_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { printf 'builder-sandbox: %s\n' "$*" >&2; }
die() { printf 'builder-sandbox: error: %s\n' "$*" >&2; exit 2; }

# "COMMAND<TAB>PATH<TAB>TOOL" for every command CHECK may call; fails naming
# a tool, package or path that is not there.
commands() {
    local check=$1
    python3 - "$TOOLS_JSON" "$check" <<'PY'
import json, os, subprocess, sys

spec_path, check = sys.argv[1:]
spec = json.load(open(spec_path))
if check not in spec["checks"]:
    sys.exit(f"builder-sandbox: error: checks/tools.json has no check {check!r} (it has: {', '.join(sorted(spec['checks']))})")
entry = spec["checks"][check]
names = list(spec["stdenv"]) + (list(spec["crane"]) if entry.get("crane") else []) + list(entry["tools"])
problems, out = [], {}
for name in names:
    tool = spec["tools"].get(name)
    if tool is None:
        problems.append(f"checks.{check} names tool {name!r}, which tools.json does not define")
        continue
    for pkg in tool.get("debianPackages", []):
        run = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True)
        if run.returncode != 0:
            problems.append(f"tool {name}: Debian package {pkg} is not installed (make setup)")
            continue
        for path in run.stdout.split():
            if os.path.dirname(path) in ("/bin", "/usr/bin", "/sbin", "/usr/sbin") and os.path.isfile(path) and os.access(path, os.X_OK):
                out.setdefault(os.path.basename(path), (path, name))
    for command, path in tool.get("commands", {}).items():
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            problems.append(f"tool {name}: {path} (command {command}) is not installed (make setup)")
            continue
        out[command] = (path, name)
if problems:
    sys.exit("builder-sandbox: error: " + "\nbuilder-sandbox: error: ".join(problems))
for command in sorted(out):
    print(f"{command}\t{out[command][0]}\t{out[command][1]}")
PY
}

prelude() {
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["prelude"])' "$TOOLS_JSON"
}

# The probes of CHECK's declared tools (tools.json "probe"), one a line: what
# must hold of a tool beyond its presence (the flake runs them too).
probes() {
    python3 - "$TOOLS_JSON" "$1" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
for name in spec["checks"][sys.argv[2]]["tools"]:
    if "probe" in spec["tools"][name]:
        print(spec["tools"][name]["probe"])
PY
}

prepare() {
    local check=$1 dir=$2 listing
    listing=$(commands "$check") || exit 2
    # Every other command of the host (root's PATH and the system's) fails
    # loudly, so a missing declaration is named instead of "not found".
    ADP_SANDBOX_LISTING=$listing python3 - "$check" "$dir" "$PATH:$SYSTEM_PATH" <<'PY'
import os, sys

check, d, search = sys.argv[1:]
bin_dir, stub_dir = os.path.join(d, "bin"), os.path.join(d, "undeclared")
for p in (d, bin_dir, stub_dir):
    os.makedirs(p, exist_ok=True)
    os.chmod(p, 0o755)
with open(os.path.join(d, "check"), "w") as f:
    f.write(check + "\n")
declared = set()
for line in os.environ["ADP_SANDBOX_LISTING"].splitlines():
    name, path, _tool = line.split("\t")
    os.symlink(path, os.path.join(bin_dir, name))
    declared.add(name)
stub = os.path.join(stub_dir, ".stub")
with open(stub, "w") as f:
    f.write(f"""#!/bin/sh
echo "builder-sandbox: check '{check}' ran '${{0##*/}}', which checks/tools.json does not declare for it (its flake twin checks.adp-{check} would not have it either): add the tool that provides it to checks.\\"{check}\\".tools" >&2
exit 127
""")
os.chmod(stub, 0o755)
seen = set(declared)
for directory in search.split(":"):
    try:
        names = os.listdir(directory)
    except OSError:
        continue
    for name in names:
        path = os.path.join(directory, name)
        if name in seen or not (os.path.isfile(path) and os.access(path, os.X_OK)):
            continue
        seen.add(name)
        os.symlink(".stub", os.path.join(stub_dir, name))
PY
    if [ "$(id -u)" = 0 ] && ! setpriv --reuid="$BUILD_UID" --regid="$BUILD_GID" --clear-groups test -x "$dir/bin"; then
        die "the build user (uid $BUILD_UID) cannot enter $dir: a parent directory is not searchable by others"
    fi
}

# The child of `unshare`: PID 1 of the new namespaces, still root. Brings up
# loopback, then runs the program as the build user and passes on its status.
init() {
    local cwd=$1
    shift
    ip link set lo up
    setpriv --reuid="$BUILD_UID" --regid="$BUILD_GID" --clear-groups --inh-caps=-all --no-new-privs \
        env -i -C "$cwd" "$@" &
    local child=$!
    trap 'kill -TERM "$child" 2>/dev/null' TERM INT
    local status=0
    wait "$child" || status=$?
    # A signal interrupted `wait`: wait for the child's real end.
    while kill -0 "$child" 2>/dev/null; do wait "$child" || status=$?; done
    exit "$status"
}

# exec DIR [--tmp-cwd] [--env NAME=VALUE]... -- PROGRAM [ARGS...]
run_in() {
    local dir=$1 cwd=$PWD tmp_cwd=0
    shift
    local -a envs=()
    while [ $# -gt 0 ]; do
        case $1 in
            --tmp-cwd) tmp_cwd=1 ;;
            --env) envs+=("$2"); shift ;;
            --) shift; break ;;
            *) die "exec: unknown argument '$1'" ;;
        esac
        shift
    done
    [ $# -gt 0 ] || die "exec: no program"
    [ -f "$dir/check" ] || die "exec: $dir is not a prepared sandbox (run 'prepare CHECK DIR' first)"
    local top
    top=$(mktemp -d "$dir/build.XXXXXX")
    chown "$BUILD_UID:$BUILD_GID" "$top"
    chmod 0700 "$top"
    [ "$tmp_cwd" = 1 ] && cwd=$top
    # The build user must reach what it runs; a checkout under /root cannot.
    if ! setpriv --reuid="$BUILD_UID" --regid="$BUILD_GID" --clear-groups test -x "$cwd"; then
        rm -rf "$top"
        die "the build user (uid $BUILD_UID) cannot enter $cwd: a parent directory is not searchable by others (chmod o+x it, or move the checkout)"
    fi
    if [[ $1 == */* ]] && ! setpriv --reuid="$BUILD_UID" --regid="$BUILD_GID" --clear-groups test -r "$1"; then
        rm -rf "$top"
        die "the build user (uid $BUILD_UID) cannot read $1: a parent directory is not searchable by others"
    fi
    local var
    local -a env=(
        "PATH=$dir/bin:$dir/undeclared"
        HOME=/homeless-shelter
        "TMPDIR=$top" "TEMPDIR=$top" "TMP=$top" "TEMP=$top" "NIX_BUILD_TOP=$top"
        TERM=xterm-256color
        SOURCE_DATE_EPOCH=315532800
    )
    # cargo's per-test variables (and what the armv7 runner needs).
    while IFS= read -r var; do
        case $var in CARGO_* | RUST_* | ADP_* | LD_LIBRARY_PATH) env+=("$var=${!var}") ;; esac
    done < <(compgen -e)
    env+=("${envs[@]}")
    local status=0
    unshare --net --pid --fork --kill-child -- "$SELF" _init "$cwd" "${env[@]}" "$@" || status=$?
    rm -rf "$top"
    return "$status"
}

# run CHECK [--input NAME=PATH[:PATH...]]... [--env NAME=VALUE]... -- COMMAND
run_check() {
    local check=$1
    shift
    local -a inputs=() envs=()
    while [ $# -gt 0 ]; do
        case $1 in
            --input) inputs+=("$2"); shift ;;
            --env) envs+=("$2"); shift ;;
            --) shift; break ;;
            *) die "run: unknown argument '$1'" ;;
        esac
        shift
    done
    [ $# -eq 1 ] || die "run: give the check's command as one argument after --"
    local command=$1

    if [ "$(id -u)" != 0 ]; then
        [ "${ADP_BUILDER_SANDBOX:-}" = off ] ||
            die "builder conditions need root (setpriv, network namespace); run make as root as CI does, or set ADP_BUILDER_SANDBOX=off to run check '$check' without them"
        say "WARNING: ADP_BUILDER_SANDBOX=off: check '$check' runs as $(id -un) with the host's PATH, network and HOME"
        local spec name
        local -a exports=("checksSource=$ROOT")
        for spec in "${inputs[@]}"; do
            name=${spec%%=*}
            [[ $spec != *:* ]] || die "ADP_BUILDER_SANDBOX=off supports single-path inputs only ($spec)"
            exports+=("$name=$(realpath "${spec#*=}")")
        done
        (cd "$ROOT" && env "${exports[@]}" "${envs[@]}" bash -euo pipefail -c "$command")
        return
    fi

    local dir
    dir=$(mktemp -d /tmp/adp-sandbox.XXXXXX) # searchable by the build user
    # shellcheck disable=SC2064 # expand now: $dir is local
    trap "rm -rf '$dir'" EXIT
    chmod 0755 "$dir"
    prepare "$check" "$dir"
    mkdir "$dir/store"
    chmod 0755 "$dir/store"

    # Like a store path: copied, then owned by root, with the store's
    # canonical modes (directories 0555, files 0555 if the owner could
    # execute them, else 0444: readable by all, writable by none), mtime 1.
    add_store_path() {
        local name=$1 dest=$dir/store/$1
        shift
        if [ $# -eq 1 ]; then
            [ -e "$1" ] || die "input $name: $1 does not exist"
            cp -a "$(realpath "$1")" "$dest"
        else
            mkdir "$dest"
            local p
            for p in "$@"; do
                [ -e "$p" ] || die "input $name: $p does not exist"
                cp -a "$(realpath "$p")" "$dest/$(basename "$p")"
            done
        fi
        chown -R -h 0:0 "$dest"
        find "$dest" -type d -exec chmod 0555 {} + -o -type f -perm -u+x -exec chmod 0555 {} + \
            -o -type f -exec chmod 0444 {} +
        find "$dest" -exec touch -h -d @1 {} +
    }

    local -a env=() paths=()
    local spec name
    mkdir "$dir/checks-tree"
    cp -a "$ROOT/checks" "$dir/checks-tree/"
    add_store_path checksSource "$dir/checks-tree"
    env+=("checksSource=$dir/store/checksSource")
    say "check '$check' under builder conditions: uid $BUILD_UID (nobody), no network (own network and PID namespace, loopback only), HOME=/homeless-shelter, TMPDIR = working directory, fresh"
    for spec in "${inputs[@]}"; do
        name=${spec%%=*}
        [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "input name '$name' is not a shell variable name"
        [ "$name" != checksSource ] || die "input name checksSource is the checks/ tree's"
        IFS=: read -r -a paths <<<"${spec#*=}"
        add_store_path "$name" "${paths[@]}"
        env+=("$name=$dir/store/$name")
        say "  read-only input \$$name = ${spec#*=}"
    done
    say "  PATH: stdenv$(python3 -c 'import json, sys; e = json.load(open(sys.argv[1]))["checks"][sys.argv[2]]; print((" + crane" if e.get("crane") else "") + "".join(" + " + t for t in e["tools"]))' "$TOOLS_JSON" "$check") ($(ls "$dir/bin" | wc -l) commands; the host's $(ls "$dir/undeclared" | wc -l) others fail, naming themselves)"

    local script status=0
    script=$(prelude)$'\n'$(probes "$check")$'\n'$command
    for spec in "${envs[@]}"; do env+=("$spec"); done
    local -a env_args=()
    for spec in "${env[@]}"; do env_args+=(--env "$spec"); done
    run_in "$dir" --tmp-cwd "${env_args[@]}" -- bash -euo pipefail -c "$script" || status=$?
    if [ "$status" != 0 ]; then
        say "check '$check' FAILED under builder conditions (exit $status)"
    fi
    return "$status"
}

# The conditions, said once in the log of a check whose programs cargo runs.
runner() {
    local check=$1 dir=$2
    if [ "$(id -u)" != 0 ]; then
        [ "${ADP_BUILDER_SANDBOX:-}" = off ] ||
            die "builder conditions need root (setpriv, network namespace); run make as root as CI does, or set ADP_BUILDER_SANDBOX=off to run check '$check' without them"
        say "WARNING: ADP_BUILDER_SANDBOX=off: check '$check' runs its tests as $(id -un) with the host's PATH, network and HOME"
        return 0
    fi
    prepare "$check" "$dir"
    say "check '$check': each test binary runs under builder conditions: uid $BUILD_UID (nobody), no network (own network and PID namespace, loopback only), HOME=/homeless-shelter, fresh TMPDIR; cargo's working directory (the package's, read-only)"
    say "  PATH: stdenv$(python3 -c 'import json, sys; e = json.load(open(sys.argv[1]))["checks"][sys.argv[2]]; print((" + crane" if e.get("crane") else "") + "".join(" + " + t for t in e["tools"]))' "$TOOLS_JSON" "$check") ($(ls "$dir/bin" | wc -l) commands; the host's $(ls "$dir/undeclared" | wc -l) others fail, naming themselves)"
    local checks_probes
    checks_probes=$(probes "$check")
    if [ -n "$checks_probes" ]; then
        run_in "$dir" --tmp-cwd -- bash -euo pipefail -c "$checks_probes" >&2 ||
            die "check '$check': a declared tool's probe failed (checks/tools.json): $checks_probes"
    fi
    printf '%s exec %s --\n' "$SELF" "$dir"
}

case ${1:-} in
    run) shift; run_check "$@" ;;
    runner) shift; [ $# -eq 2 ] || die "usage: runner CHECK DIR"; runner "$@" ;;
    prepare) shift; [ $# -eq 2 ] || die "usage: prepare CHECK DIR"; prepare "$@" ;;
    exec) shift; [ $# -ge 1 ] || die "usage: exec DIR -- PROGRAM [ARGS...]"; run_in "$@" ;;
    commands) shift; [ $# -eq 1 ] || die "usage: commands CHECK"; commands "$1" ;;
    _init) shift; init "$@" ;;
    *) sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
