#!/usr/bin/env bash
# Relay throughput: hallpass serve against a stock Postfix relay, same machine, same run, same
# load, same upstream. Figures are printed, never asserted (the machines are shared and noisy).
#
#   bench/relay.sh                       # 2,000 messages per kind and relay
#   BENCH_MESSAGES=500 bench/relay.sh    # a quicker look
#   BENCH_KINDS="clean held" bench/relay.sh   # some kinds only (default: junk clean personal held)
#   BENCH_KEEP=1 bench/relay.sh          # keep configs, queues and logs (the path is printed)
#
# Load: Postfix's smtp-source, 20 sessions in parallel, one message per session (it reconnects),
# one recipient, sender teacher@lumen.sch.uk. Upstream: Postfix's smtp-sink on a loopback port,
# counting what it receives. Each (relay, kind) gets a fresh relay with empty storage and a fresh
# sink. A kind's time runs from the first connection until the sink has every message
# (end to end: accepted, fsync'd, scanned, queued and delivered); the "accept" column is when
# smtp-source got its last 250.
#
# Kinds (bench/make_messages.py writes the 10 KB messages; see there):
#   junk      smtp-source's own generated 10 KB payload (-l 10240)  -> colleague@lumen.sch.uk
#   clean     school prose                                           -> colleague@lumen.sch.uk
#   personal  the prose plus five pupil records (NHS numbers, dates of birth)
#                                                                    -> colleague@lumen.sch.uk
#   held      the personal message                                   -> parent@example.com
#             (hallpass only: held for the DPO and counted with `hallpass held list`; its time
#             ends with the last 250. What reaches the sink is the senders' notifications,
#             counted on a separate line. Postfix has no equivalent: it would just relay it.)
# The personal-data kind goes to a colleague, so hallpass scans it, finds the records and still
# delivers it: the same work for both relays from the client to the sink, which is what a ratio
# needs. The held kind measures the quarantine path on its own.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

N=${BENCH_MESSAGES:-2000}
SESSIONS=20
FROM=teacher@lumen.sch.uk
INTERNAL=colleague@lumen.sch.uk
EXTERNAL=parent@example.com
# Generous bounds so a stuck run ends; never a speed assertion.
SEND_TIMEOUT=900
DRAIN_TIMEOUT=600

bench_init relay
need_postfix
build_release
python3 "$BENCH_ROOT/bench/make_messages.py" "$WORK/msg"

# The messages must get the verdicts the kinds claim, with the very engine `serve` runs.
check_verdicts() {
    hallpass_config check 1
    local f want got
    for f in clean:deliver personal:deliver personal_ext:hold; do
        want=${f#*:}
        f=${f%:*}
        got=$("$HALLPASS" --config "$HP_CONF" scan --json "$WORK/msg/$f.eml")
        grep -q "\"verdict\":\"$want\"" <<<"$got" || die "$f.eml: expected $want, got $got"
        if [[ $f == personal* ]]; then
            grep -q '"detector":"uk_nhs_number"' <<<"$got" || die "$f.eml: no NHS number found: $got"
        fi
    done
}
check_verdicts

source_args() {
    case $1 in
    junk) echo "-l 10240 -t $INTERNAL" ;;
    clean) echo "-F $WORK/msg/clean.eml -t $INTERNAL" ;;
    personal) echo "-F $WORK/msg/personal.eml -t $INTERNAL" ;;
    held) echo "-F $WORK/msg/personal_ext.eml -t $EXTERNAL" ;;
    esac
}

# Results, one line per (relay, kind): relay kind messages accept_s e2e_s arrived load
RESULTS=$WORK/results

# run RELAY KIND
run() {
    local relay=$1 kind=$2 name=$1-$2
    local sink_port listen t0 t1 t2 arrived rc=0
    sink_port=$(free_port)
    start_sink "$name" "$sink_port"
    if [[ $relay == hallpass ]]; then
        # Twenty sessions from one address: the shipped per-client limit is exactly 20, so a
        # session closing while the next opens could be refused; raise it for the load.
        start_hallpass "$name" "$sink_port" "max_connections_per_client = 100"
        listen=$HP_PORT
    else
        listen=$(free_port)
        start_postfix "$name" "$listen" "$sink_port"
    fi
    local l
    l=$(load)
    t0=$(now)
    # shellcheck disable=SC2046 # word splitting of the options is intended
    timeout "$SEND_TIMEOUT" smtp-source -s "$SESSIONS" -m "$N" $(source_args "$kind") -f "$FROM" \
        "127.0.0.1:$listen" >"$WORK/$name.source" 2>&1 || rc=$?
    t1=$(now)
    if ((rc != 0)); then
        echo "$relay $kind: smtp-source failed (exit $rc): $(tail -3 "$WORK/$name.source")" >&2
    fi
    if [[ $kind == held ]]; then
        arrived=$(held_count)
        t2=$t1
        # Each held message's sender is told (CONTRACT.md): those notices go to the sink.
        local notices
        notices=$(wait_sink "$name" "$N" 120)
        echo "held: notifications to the sender at the sink: $notices of $N, $(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}') s after the first connection" >>"$WORK/notes"
    else
        arrived=$(wait_sink "$name" "$N" "$DRAIN_TIMEOUT")
        t2=$(now)
    fi
    if [[ $relay == hallpass ]]; then
        # Delivered copies leave the spool; held ones stay (they are the quarantine).
        local deadline=$((SECONDS + 30)) left
        while left=$(spool_count) && [[ $kind != held ]] && ((left > 0 && SECONDS < deadline)); do sleep 0.1; done
        [[ $kind == held ]] || ((left == 0)) || echo "hallpass $kind: $left spool files left" >&2
        stop_hallpass
    else
        stop_postfix
    fi
    stop_sink
    ((arrived == N)) || echo "$relay $kind: $arrived of $N messages arrived" >&2
    echo "$relay $kind $N $(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}') $(awk -v a="$t0" -v b="$t2" 'BEGIN{print b-a}') $arrived $l" >>"$RESULTS"
    printf '  %-8s %-8s done: %s of %s arrived\n' "$relay" "$kind" "$arrived" "$N" >&2
}

echo "relay benchmark: $N messages of 10 KB per kind, $SESSIONS sessions; $(nproc) cores; load $(load)" >&2
# Interleaved, so a burst of load from elsewhere on the machine hits both relays alike.
for kind in ${BENCH_KINDS:-junk clean personal held}; do
    case $kind in
    junk | clean | personal)
        run hallpass "$kind"
        run postfix "$kind"
        ;;
    held) run hallpass held ;;
    *) die "unknown kind $kind (junk, clean, personal, held)" ;;
    esac
done

echo
echo "relay throughput, $N x 10 KB messages per row, $SESSIONS smtp-source sessions, end to end (client -> relay -> smtp-sink)"
awk '
function rate(n, t) { return t > 0 ? n / t : 0 }
{
    relay = $1; kind = $2; n = $3; acc = $4; e2e = $5; got = $6; ld = $7 " " $8 " " $9
    what = kind == "held" ? "held     " : "delivered"
    printf "%-9s %-9s %6d msgs  accepted in %7.2f s (%7.1f msg/s)  %s %6d in %7.2f s (%7.1f msg/s)  load %s\n", relay, kind, n, acc, rate(n, acc), what, got, e2e, rate(got, e2e), ld
    if (kind != "held") { msgs[relay] += got; secs[relay] += e2e; r[relay, kind] = rate(got, e2e) }
}
END {
    printf "\nhallpass/postfix, end to end:"
    split("junk clean personal", kinds, " ")
    for (i = 1; i <= 3; i++) {
        k = kinds[i]
        if (r["postfix", k] > 0) printf "  %s %.2f", k, r["hallpass", k] / r["postfix", k]
    }
    if (secs["postfix"] > 0 && secs["hallpass"] > 0)
        printf "  | all delivered kinds: hallpass %.1f msg/s, postfix %.1f msg/s, ratio %.2f\n", msgs["hallpass"] / secs["hallpass"], msgs["postfix"] / secs["postfix"], (msgs["hallpass"] / secs["hallpass"]) / (msgs["postfix"] / secs["postfix"])
}' "$RESULTS"
[[ -f $WORK/notes ]] && cat "$WORK/notes"
echo "load after the run: $(load)"
