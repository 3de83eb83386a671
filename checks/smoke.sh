#!/usr/bin/env bash
# Smoke test of an agent-data-plane binary, as a user would run it: standalone
# mode configured only by DD_* variables, DogStatsD sent over UDP and a Unix
# socket with the real Python client, the series checked as decoded by the test
# intake, health polled, then SIGTERM and a clean exit.
#
#   checks/smoke.sh BIN [RUNNER...]
#   checks/smoke.sh target/release/agent-data-plane
#   checks/smoke.sh target/armv7-unknown-linux-gnueabihf/release/agent-data-plane qemu-arm -L /usr/arm-linux-gnueabihf
#
# The test intake is a host binary: $ADP_TEST_INTAKE, else target/release or
# target/debug adp-test-intake (`make adp` builds it). Every wait is bounded by
# $ADP_SMOKE_TIMEOUT seconds (default 120: a cold start under qemu-arm).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:?usage: checks/smoke.sh BIN [RUNNER...]}
shift
RUNNER=("$@")
TIMEOUT=${ADP_SMOKE_TIMEOUT:-120}

say() { echo "smoke: $*"; }
INTAKE=${ADP_TEST_INTAKE:-}
if [ -z "$INTAKE" ]; then
    for candidate in "$ROOT/target/release/adp-test-intake" "$ROOT/target/debug/adp-test-intake"; do
        if [ -x "$candidate" ]; then INTAKE=$candidate; break; fi
    done
fi
[ -n "$INTAKE" ] && [ -x "$INTAKE" ] || { echo "smoke: no adp-test-intake binary; run 'make adp' or set ADP_TEST_INTAKE" >&2; exit 2; }
[ -x "$BIN" ] || { echo "smoke: $BIN is not an executable file" >&2; exit 2; }
command -v python3 >/dev/null || { echo "smoke: python3 not found (make setup)" >&2; exit 2; }

# shellcheck source=lib/agent-run.sh
. "$ROOT/checks/lib/agent-run.sh"

# --- the test intake ---------------------------------------------------------
start_intake "$INTAKE"
say "test intake on http://$INTAKE_ADDR ($INTAKE)"

# --- the agent ---------------------------------------------------------------
DSD_PORT=$(smoke_py free-udp-port)
SOCKET=$work/dsd.socket # standalone.env's
HOSTNAME_TAG=smoke-$$
start_agent "${RUNNER[@]}" "$BIN" DD_HOSTNAME="$HOSTNAME_TAG" DD_DOGSTATSD_PORT="$DSD_PORT" \
    DD_AGGREGATE_WINDOW_DURATION_SECONDS=1 DD_AGGREGATE_FLUSH_INTERVAL=1 -- --pidfile "$work/adp.pid"

# expect_log LINE...: each LINE is in the agent's log.
expect_log() {
    local line
    for line in "$@"; do
        grep -qF -- "$line" "$work/adp.log" || fail "missing log line \"$line\""
        say "ok: log has \"$line\""
    done
}

wait_for_log "Topology healthy. Waiting for interrupt..."
expect_log "Agent Data Plane starting..." "Serving unprivileged API on" "Serving privileged API on" \
    "DogStatsD listener started. listen_addr=udp://127.0.0.1:$DSD_PORT" \
    "DogStatsD listener started. listen_addr=unixgram://$SOCKET" "Agent Data Plane running."
grep -q 'topology_ready_ms=' "$work/adp.log" || fail "no topology_ready_ms field"
say "ok: $(grep -o 'topology_ready_ms=[0-9]*' "$work/adp.log")"
# env and qemu-arm exec, so the agent's pid is the one this shell started.
[ "$(cat "$work/adp.pid" 2>/dev/null)" = "$ADP_PID" ] || fail "the pidfile does not hold the agent's pid $ADP_PID"
API=$(api_address)

# --- health ------------------------------------------------------------------
deadline=$((SECONDS + TIMEOUT))
until [ "$(http_get "http://$API/health/ready" | head -1)" = 200 ]; do
    [ $SECONDS -lt $deadline ] || fail "/health/ready never answered 200: $(http_get "http://$API/health/ready")"
    sleep 0.2
done
say "ok: GET /health/ready -> 200 $(http_get "http://$API/health/ready" | tail -n +2)"

# --- DogStatsD over UDP and the Unix socket ----------------------------------
smoke_py send "$DSD_PORT" "$SOCKET"

# Polls the intake until every expectation holds; prints what it found.
check_intake() {
    local deadline=$((SECONDS + TIMEOUT)) out
    while :; do
        if out=$(smoke_py expect-series "http://$INTAKE_ADDR/_intake/received" "$HOSTNAME_TAG" "$@" 2>&1); then
            echo "$out"
            return 0
        fi
        [ $SECONDS -lt $deadline ] || fail "the intake did not receive the expected series: $out"
        sleep 0.5
    done
}
# A 1 s window makes the rate equal to the count: 3.
check_intake "smoke.udp.count,rate,transport:udp,3" "smoke.uds.gauge,gauge,transport:uds,42"

metrics=$(http_get "http://$API/metrics")
grep -q 'adp_dogstatsd_packets_total{listener="udp"} 1' <<<"$metrics" || fail "/metrics has no UDP packet count: $metrics"
grep -q 'adp_dogstatsd_packets_total{listener="unix_datagram"} 1' <<<"$metrics" || fail "/metrics has no UDS packet count"
say "ok: GET /metrics counts 1 UDP and 1 Unix datagram packet"

# --- SIGTERM: the open window is flushed, then a clean exit --------------------
smoke_py udp "$DSD_PORT" "smoke.final:7|g"
kill -TERM "$ADP_PID"
deadline=$((SECONDS + TIMEOUT))
while kill -0 "$ADP_PID" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "the agent did not exit within ${TIMEOUT}s of SIGTERM"
    sleep 0.2
done
rc=0
wait "$ADP_PID" || rc=$?
ADP_PID=
[ "$rc" -eq 0 ] || fail "exit status $rc after SIGTERM"
say "ok: exit status 0 after SIGTERM"
expect_log "Received SIGTERM, shutting down..." "Agent Data Plane stopped."
if grep -qiE 'panic|bus error|segmentation fault' "$work/adp.log" || grep -qF 'Failed to' "$work/adp.log"; then
    fail "the log reports a crash or a failure"
fi
say "ok: no panic, bus error, segmentation fault or \"Failed to\" in the log"
[ ! -e "$work/adp.pid" ] || fail "the pidfile was not removed"
say "ok: pidfile written at start and removed at exit"
check_intake "smoke.final,gauge,,7"
say "ok: the sample sent just before SIGTERM was delivered by the final flush"
say "passed: $BIN${RUNNER[*]:+ (via ${RUNNER[*]})}"
