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

ADP_LOG_TAIL=40
# shellcheck source=lib/agent-run.sh
. "$ROOT/checks/lib/agent-run.sh"
# The agent's telemetry; fails unless the API answers 200.
metrics() {
    local out
    out=$(http_get "http://$API/metrics")
    [ "$(head -1 <<<"$out")" = 200 ] || return 1
    tail -n +2 <<<"$out"
}

start_intake "$DIR/adp-test-intake" --blackhole
SOCKET=$work/dsd.socket # standalone.env's
start_agent "$DIR/agent-data-plane"
wait_for_log "Topology healthy. Waiting for interrupt..."
API=$(api_address)

# 1,000 contexts keep the default interner and context limit far from full.
summary=$("$DIR/adp-loadgen" --target "unix://$SOCKET" --profile low --contexts 1000 --rate-bytes 0 \
    --max-messages "$MESSAGES" --duration "$TIMEOUT" --seed 42) || fail "adp-loadgen failed"
say "sent: $summary"
read -r sent_messages sent_values errors <<<"$(smoke_py fields "$summary" messages values send_errors)"
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
for c in adp_dogstatsd_decode_errors_total adp_aggregate_dropped_samples_total adp_dogstatsd_truncated_packets_total; do
    n=$(counter "$c" "$m")
    [ "$n" -eq 0 ] || fail "$c = $n: $(grep "^$c" <<<"$m")"
done
say "ok: the agent counted exactly $got metric values from $sent_messages messages; zero decode errors, dropped samples and truncated packets"
kill -TERM "$ADP_PID"; wait "$ADP_PID" || fail "the agent exited non-zero after SIGTERM"
ADP_PID=
say "passed"
