# shellcheck shell=bash
# Sourced by checks/smoke.sh and checks/loadgen-smoke.sh: a scratch dir cleaned
# up on exit, the test intake, and a standalone agent configured only by DD_*
# variables (standalone.env, beside this file) in an otherwise empty
# environment. The caller sets `say` (its log prefix) and TIMEOUT (seconds for
# every bounded wait) before sourcing.

ADP_RUN_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

work=$(mktemp -d)
INTAKE_PID=
ADP_PID=
adp_cleanup() {
    [ -n "$ADP_PID" ] && kill -KILL "$ADP_PID" 2>/dev/null || true
    [ -n "$INTAKE_PID" ] && kill "$INTAKE_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap adp_cleanup EXIT

# Fails the check, showing the agent's log (its tail with ADP_LOG_TAIL=N).
fail() {
    say "FAIL: $*" >&2
    if [ -f "$work/adp.log" ]; then
        say "--- agent log ---" >&2
        if [ -n "${ADP_LOG_TAIL:-}" ]; then tail -n "$ADP_LOG_TAIL" "$work/adp.log" >&2; else cat "$work/adp.log" >&2; fi
    fi
    exit 1
}

# start_intake INTAKE_BIN [ARGS...]: starts the test intake on an ephemeral
# loopback port; sets INTAKE_PID and INTAKE_ADDR (host:port).
start_intake() {
    local bin=$1 deadline=$((SECONDS + 30))
    shift
    "$bin" --listen 127.0.0.1:0 "$@" >"$work/intake.out" 2>"$work/intake.err" &
    INTAKE_PID=$!
    until INTAKE_ADDR=$(sed -n '1s/^listening on //p' "$work/intake.out" 2>/dev/null) && [ -n "$INTAKE_ADDR" ]; do
        [ $SECONDS -lt $deadline ] || fail "the test intake did not start: $(cat "$work/intake.err")"
        sleep 0.1
    done
}

# start_agent [RUNNER...] BIN [DD_KEY=value...] -- [run ARGS...]: runs
# `BIN run` in the standalone environment of standalone.env (against the
# intake, loopback APIs on ephemeral ports, files and the DogStatsD socket
# $work/dsd.socket under $work) with the caller's DD_KEY=value on top, in an
# otherwise empty environment; its output goes to $work/adp.log. Sets ADP_PID
# (env and qemu-arm exec, so it is the agent's own pid).
start_agent() {
    local cmd=() vars=() base=() line rest
    while [ $# -gt 0 ] && [[ $1 != *=* ]] && [ "$1" != -- ]; do cmd+=("$1"); shift; done
    while [ $# -gt 0 ] && [ "$1" != -- ]; do vars+=("$1"); shift; done
    [ "${1:-}" != -- ] || shift
    while IFS= read -r line; do
        case $line in '' | '#'*) continue ;; esac
        rest=${line//'{intake_url}'/}
        rest=${rest//'{dir}'/}
        case $rest in *'{'*) fail "standalone.env: a placeholder other than {intake_url} and {dir} in \"$line\"" ;; esac
        line=${line//'{intake_url}'/"http://$INTAKE_ADDR"}
        base+=("${line//'{dir}'/"$work"}")
    done <"$ADP_RUN_LIB/standalone.env"
    printf '+ %s\n' "${cmd[*]} run $*"
    # env applies its assignments in order: the caller's replace the file's.
    env -i PATH="$PATH" "${base[@]}" "${vars[@]}" "${cmd[@]}" run "$@" >"$work/adp.log" 2>&1 &
    ADP_PID=$!
}

# Waits (bounded) for a line in the agent's log; fails if the agent exits first.
wait_for_log() {
    local needle=$1 deadline=$((SECONDS + TIMEOUT))
    until grep -qF -- "$needle" "$work/adp.log"; do
        kill -0 "$ADP_PID" 2>/dev/null || fail "the agent exited before logging \"$needle\""
        [ $SECONDS -lt $deadline ] || fail "no \"$needle\" within ${TIMEOUT}s"
        sleep 0.2
    done
}

# The unprivileged API's host:port, read from the agent's log.
api_address() {
    local api
    api=$(sed -n 's/.*Serving unprivileged API on \(.*\)\.$/\1/p' "$work/adp.log" | head -1)
    [ -n "$api" ] || fail "cannot read the unprivileged API address from the log"
    echo "$api"
}

# The Python helpers of the smoke checks (smoke.py, beside this file).
smoke_py() { python3 "$ADP_RUN_LIB/smoke.py" "$@"; }

# A tiny HTTP client: prints the status code, then the body (status 0 when the
# connection failed).
http_get() { smoke_py get "$1"; }

# counter NAME METRICS_TEXT: the sum of one counter over all its label sets (0 when absent).
counter() { awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%d\n", s }' <<<"$2"; }
