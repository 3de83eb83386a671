#!/usr/bin/env bash
# Smoke of the load generator against the agent (part of `make check`; no timing
# assertions): a bounded, seeded burst of the DogStatsD load shape over a Unix
# datagram socket, then the agent's own counters must show exactly the metric
# values the generator reports sending, with zero decode errors and no drops.
# The Unix socket makes this exact: the sender retries a full receive queue
# instead of losing a datagram.
#
#   checks/loadgen-smoke.sh [PROFILE_DIR]      PROFILE_DIR: target/debug (default) or target/release
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${1:-$ROOT/target/debug}
TIMEOUT=${ADP_SMOKE_TIMEOUT:-120}
MESSAGES=${ADP_LOADGEN_SMOKE_MESSAGES:-20000}
say() { echo "loadgen-smoke: $*"; }
for bin in agent-data-plane adp-test-intake adp-loadgen; do
    [ -x "$DIR/$bin" ] || { echo "loadgen-smoke: $DIR/$bin missing (cargo build -p agent-data-plane -p adp-test-intake -p adp-loadgen)" >&2; exit 2; }
done

work=$(mktemp -d)
INTAKE_PID= ADP_PID=
cleanup() {
    [ -n "$ADP_PID" ] && kill -KILL "$ADP_PID" 2>/dev/null || true
    [ -n "$INTAKE_PID" ] && kill "$INTAKE_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "loadgen-smoke: FAIL: $*" >&2
    [ -f "$work/adp.log" ] && { echo "--- agent log (tail) ---" >&2; tail -n 40 "$work/adp.log" >&2; }
    exit 1
}
metrics() { python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' "http://$API/metrics"; }
# Sum of one counter over all its label sets (0 when absent).
counter() { awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%d\n", s }' <<<"$2"; }

"$DIR/adp-test-intake" --listen 127.0.0.1:0 --blackhole >"$work/intake.out" 2>"$work/intake.err" &
INTAKE_PID=$!
deadline=$((SECONDS + 30))
until INTAKE_ADDR=$(sed -n '1s/^listening on //p' "$work/intake.out" 2>/dev/null) && [ -n "$INTAKE_ADDR" ]; do
    [ $SECONDS -lt $deadline ] || fail "the test intake did not start: $(cat "$work/intake.err")"
    sleep 0.1
done

SOCKET=$work/dsd.socket
env -i PATH="$PATH" \
    DD_API_KEY=smoke0123456789abcdef0123456789ab DD_HOSTNAME=loadgen-smoke DD_DD_URL="http://$INTAKE_ADDR" \
    DD_DATA_PLANE_ENABLED=true DD_DATA_PLANE_STANDALONE_MODE=true DD_DATA_PLANE_REMOTE_AGENT_ENABLED=false \
    DD_DATA_PLANE_USE_NEW_CONFIG_STREAM_ENDPOINT=false \
    DD_DATA_PLANE_API_LISTEN_ADDRESS=tcp://127.0.0.1:0 DD_DATA_PLANE_SECURE_API_LISTEN_ADDRESS=tcp://127.0.0.1:0 \
    DD_AUTH_TOKEN_FILE_PATH="$work/auth_token" DD_IPC_CERT_FILE_PATH="$work/ipc_cert.pem" \
    DD_DOGSTATSD_PORT=0 DD_DOGSTATSD_SOCKET="$SOCKET" \
    "$DIR/agent-data-plane" run >"$work/adp.log" 2>&1 &
ADP_PID=$!
deadline=$((SECONDS + TIMEOUT))
until grep -qF "Topology healthy" "$work/adp.log"; do
    kill -0 "$ADP_PID" 2>/dev/null || fail "the agent exited during start-up"
    [ $SECONDS -lt $deadline ] || fail "the agent was not healthy within ${TIMEOUT}s"
    sleep 0.2
done
API=$(sed -n 's/.*Serving unprivileged API on \(.*\)\.$/\1/p' "$work/adp.log" | head -1)
[ -n "$API" ] || fail "cannot read the unprivileged API address from the log"

# 1,000 contexts keep the default interner and context limit far from full.
summary=$("$DIR/adp-loadgen" --target "unix://$SOCKET" --profile low --contexts 1000 --rate-bytes 0 \
    --max-messages "$MESSAGES" --duration "$TIMEOUT" --seed 42) || fail "adp-loadgen failed"
say "sent: $summary"
read -r sent_messages sent_values errors <<<"$(python3 -c 'import json, sys; s = json.loads(sys.argv[1]); print(s["messages"], s["values"], s["send_errors"])' "$summary")"
[ "$sent_messages" -eq "$MESSAGES" ] || fail "sent $sent_messages messages, expected $MESSAGES (the duration bound hit first?)"
[ "$errors" -eq 0 ] || fail "$errors send errors"
[ "$sent_values" -gt "$sent_messages" ] || fail "no multi-value messages in $sent_messages messages"

deadline=$((SECONDS + TIMEOUT))
while :; do
    m=$(metrics) || fail "GET /metrics failed"
    got=$(counter adp_dogstatsd_metrics_total "$m")
    [ "$got" -ge "$sent_values" ] && break
    [ $SECONDS -lt $deadline ] || fail "the agent counted $got metrics within ${TIMEOUT}s, $sent_values were sent: $(grep '^adp_dogstatsd' <<<"$m")"
    sleep 0.2
done
[ "$got" -eq "$sent_values" ] || fail "the agent counted $got metrics, $sent_values were sent: $(grep '^adp_dogstatsd' <<<"$m")"
for c in adp_dogstatsd_decode_errors_total adp_dogstatsd_context_drops_total adp_dogstatsd_truncated_packets_total; do
    n=$(counter "$c" "$m")
    [ "$n" -eq 0 ] || fail "$c = $n: $(grep "^$c" <<<"$m")"
done
say "ok: the agent counted exactly $got metric values from $sent_messages messages; zero decode errors, context drops and truncated packets"
kill -TERM "$ADP_PID"; wait "$ADP_PID" || fail "the agent exited non-zero after SIGTERM"
ADP_PID=
say "passed"
