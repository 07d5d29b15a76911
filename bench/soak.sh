#!/usr/bin/env bash
# Soak: a steady, moderate load on `hallpass serve` for SOAK_MINUTES (default 10), its memory
# sampled every 10 s; prints first/last/max RSS and checks that everything sent arrived or was
# held. Figures are printed, never asserted.
#
#   bench/soak.sh                      # 10 minutes
#   SOAK_MINUTES=3 bench/soak.sh
#
# Load: three smtp-source loops side by side, each SOAK_SESSIONS (default 5) sessions sending one
# message a second each (-w 1), in rounds of 50: the clean message and the personal-data message
# to a colleague (delivered), and the personal-data message to a parent (held: the quarantine
# grows through the run, as it would in a school; each held message also sends its sender a
# notification). About 15 messages/s at the default. Upstream: smtp-sink. Messages are those of
# bench/make_messages.py.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

MINUTES=${SOAK_MINUTES:-10}
SESSIONS=${SOAK_SESSIONS:-5}
ROUND=50
FROM=teacher@lumen.sch.uk

bench_init soak
need_postfix
build_release
python3 "$BENCH_ROOT/bench/make_messages.py" "$WORK/msg"
sink_port=$(free_port)
start_sink soak "$sink_port"
start_hallpass soak "$sink_port" "max_connections_per_client = 100"
sleep 2

# loop KIND FILE RCPT: rounds of ROUND messages until the deadline; counts what was accepted.
loop() {
    local kind=$1 file=$2 rcpt=$3 sent=0 failed=0
    while ((SECONDS < DEADLINE)); do
        if timeout 600 smtp-source -s "$SESSIONS" -m "$ROUND" -w 1 -F "$file" -f "$FROM" -t "$rcpt" \
            "127.0.0.1:$HP_PORT" >>"$WORK/$kind.source" 2>&1; then
            sent=$((sent + ROUND))
        else
            failed=$((failed + 1))
        fi
    done
    echo "$sent $failed" >"$WORK/$kind.count"
}

DEADLINE=$((SECONDS + MINUTES * 60))
start_load=$(now)
LOOPS=()
loop clean "$WORK/msg/clean.eml" colleague@lumen.sch.uk &
LOOPS+=($!)
loop personal "$WORK/msg/personal.eml" colleague@lumen.sch.uk &
LOOPS+=($!)
loop held "$WORK/msg/personal_ext.eml" parent@example.com &
LOOPS+=($!)
PIDS+=("${LOOPS[@]}")

echo "soak: $MINUTES min, 3 x $SESSIONS sessions at one message a second each; RSS every 10 s" >&2
SAMPLES=$WORK/samples
printf '%6s %10s %10s %9s %s\n' elapsed VmRSS VmHWM delivered load >&2
while ((SECONDS < DEADLINE)); do
    rss=$(rss_kb "$HP_PID" VmRSS) || die "hallpass serve is gone: $(tail -5 "$HP_DIR/serve.log")"
    hwm=$(rss_kb "$HP_PID" VmHWM)
    t=$(awk -v a="$start_load" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }')
    echo "$t $rss $hwm" >>"$SAMPLES"
    printf '%5ss %7.1f MB %7.1f MB %9s %s\n' "$t" "$(awk -v k="$rss" 'BEGIN{print k*1024/1e6}')" \
        "$(awk -v k="$hwm" 'BEGIN{print k*1024/1e6}')" "$(sink_count soak)" "$(load)" >&2
    sleep 10
done
for p in "${LOOPS[@]}"; do
    wait "$p" || true
    forget_pid "$p"
done
end_load=$(now)

read -r clean_sent clean_failed <"$WORK/clean.count"
read -r personal_sent personal_failed <"$WORK/personal.count"
read -r held_sent held_failed <"$WORK/held.count"
# At the sink: the colleagues' copies, and one notification per held message to its sender.
want=$((clean_sent + personal_sent))
arrived=$(wait_sink soak $((want + held_sent)) 600)
held=$(held_count)
left=$(spool_count)
rss=$(rss_kb "$HP_PID" VmRSS)
hwm=$(rss_kb "$HP_PID" VmHWM)
stop_hallpass

secs=$(awk -v a="$start_load" -v b="$end_load" 'BEGIN { printf "%.0f", b - a }')
echo
echo "soak: $MINUTES min of load ($secs s), $((want + held_sent)) messages accepted ($(awk -v n=$((want + held_sent)) -v t="$secs" 'BEGIN{printf "%.1f", n/t}') msg/s); load at the end $(load)"
echo "  at the sink: $arrived of $((want + held_sent)) expected ($want to a colleague, $held_sent notifications to the sender of a held message)"
echo "  held: $held of $held_sent sent to a parent; spool files left: $left ($held_sent expected: the held ones)"
echo "  smtp-source rounds that failed: $((clean_failed + personal_failed + held_failed))"
awk 'NR == 1 { first = $2 } { last = $2; if ($2 > max) { max = $2; at = $1 } if ($3 > hwm) hwm = $3 }
     END { printf "  VmRSS first %.1f MB, last %.1f MB, max %.1f MB (at %s s); VmHWM %.1f MB; %d samples\n",
           first * 1024 / 1e6, last * 1024 / 1e6, max * 1024 / 1e6, at, hwm * 1024 / 1e6, NR }' "$SAMPLES"
echo "  after the drain: VmRSS $(awk -v k="$rss" 'BEGIN{printf "%.1f MB", k*1024/1e6}'), VmHWM $(awk -v k="$hwm" 'BEGIN{printf "%.1f MB", k*1024/1e6}')"
