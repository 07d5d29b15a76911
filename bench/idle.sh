#!/usr/bin/env bash
# Memory of `hallpass serve` holding 1,000 concurrent idle SMTP sessions (greeted, EHLO said,
# then silent), beside a fresh relay's. Target: VmRSS < 150 MB with them. Figures are printed,
# never asserted.
#
#   bench/idle.sh                      # 1,000 sessions, held 5 s
#   IDLE_SESSIONS=2000 bench/idle.sh
#
# The bench relay's limits are raised for it (max_connections, max_connections_per_client:
# every session comes from 127.0.0.1), and the open-files limit of this script and its children.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

SESSIONS=${IDLE_SESSIONS:-1000}
HOLD=${IDLE_HOLD_SECONDS:-5}

ulimit -n $((SESSIONS * 2 + 1024)) || die "cannot raise the open-files limit (ulimit -n)"
bench_init idle
need_postfix
build_release

sink_port=$(free_port)
start_sink idle "$sink_port"
limit=$((SESSIONS + 100))
start_hallpass idle "$sink_port" "max_connections = $limit
max_connections_per_client = $limit"
# Settle after start-up (detectors compiled, store opened) before the first figure.
sleep 2
l=$(load)
out=$(python3 "$BENCH_ROOT/bench/idle_sessions.py" "127.0.0.1:$HP_PORT" "$SESSIONS" "$HP_PID" "$HOLD") ||
    die "the idle sessions failed: $out"
delivered=$(wait_sink idle 1 60)
stop_hallpass

val() { awk -v k="$1" '$1 == k { print $2 }' <<<"$out"; }
mb() { awk -v kb="$1" 'BEGIN { printf "%.1f MB", kb * 1024 / 1e6 }'; }
echo "hallpass serve with $(val sessions_open) idle SMTP sessions (EHLO said), held ${HOLD} s; load $l"
printf '  %-28s VmRSS %10s   VmHWM %10s\n' "fresh relay" "$(mb "$(val rss_before_kb)")" "$(mb "$(val hwm_before_kb)")"
printf '  %-28s VmRSS %10s   VmHWM %10s\n' "with $SESSIONS idle sessions" "$(mb "$(val rss_with_kb)")" "$(mb "$(val hwm_with_kb)")"
printf '  %-28s VmRSS %10s   VmHWM %10s\n' "after they closed" "$(mb "$(val rss_after_kb)")" "$(mb "$(val hwm_after_kb)")"
awk -v a="$(val rss_before_kb)" -v b="$(val rss_with_kb)" -v n="$SESSIONS" \
    'BEGIN { printf "  per idle session: %.1f kB of RSS; target < 150 MB with them: %s\n", (b - a) * 1024 / 1000 / n, (b * 1024 < 150e6 ? "met" : "NOT met") }'
echo "  a message sent meanwhile was answered $(val reply_while_idle) and reached the upstream ($delivered arrived); $(val sessions_alive) of $SESSIONS idle sessions still answered NOOP"
