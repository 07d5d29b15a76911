#!/usr/bin/env bash
# Several relays: throughput of two `hallpass serve` sharing one PostgreSQL store (and Redis
# counters when Redis answers), against one relay, in the same run, with the same load and the
# same upstream. Figures are printed, never asserted (the machines are shared and noisy).
#
#   bench/multi_relay.sh                      # 1,000 messages per kind and set-up
#   BENCH_MESSAGES=300 bench/multi_relay.sh   # a quicker look
#   BENCH_KINDS="clean" bench/multi_relay.sh  # some kinds only (default: clean personal)
#   BENCH_PG=postgres://postgres@127.0.0.1:5432/test bench/multi_relay.sh   # the server to use
#   BENCH_KEEP=1 bench/multi_relay.sh         # keep configs, spools and logs (the path is printed)
#
# Set-ups, each with fresh storage (a database of its own on the server, dropped at the end):
#   sqlite    one relay, the embedded store (the default; bench/relay.sh's figure)
#   pg-1      one relay on PostgreSQL (what the shared store costs one relay)
#   pg-2      two relays on one PostgreSQL database (+ Redis counters), the load split between them
# Load: Postfix's smtp-source, 20 sessions in all (10 per relay for pg-2), one message per
# session, one recipient, 10 KB messages from bench/make_messages.py (the kinds of
# bench/relay.sh: clean prose, and prose with five pupil records, both to a colleague, so each is
# scanned and delivered). Upstream: Postfix's smtp-sink counting what arrives. A row's time runs
# from the first connection until the sink has every message (accepted, fsync'd or committed,
# scanned, queued and delivered).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

N=${BENCH_MESSAGES:-1000}
SESSIONS=20
FROM=teacher@lumen.sch.uk
INTERNAL=colleague@lumen.sch.uk
PG_ADMIN=${BENCH_PG:-postgres://postgres@127.0.0.1:5432/test}
SEND_TIMEOUT=900
DRAIN_TIMEOUT=600

command -v psql >/dev/null || die "psql is needed to make the bench database (apt-get install postgresql-client)"
psql "$PG_ADMIN" -Atqc 'SELECT 1' >/dev/null 2>&1 || die "PostgreSQL does not answer at $PG_ADMIN (set BENCH_PG)"
REDIS=""
if command -v redis-cli >/dev/null && [[ $(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) == PONG ]]; then
    REDIS=redis://127.0.0.1:6379
fi

bench_init multi-relay
DATABASES=()
drop_databases() {
    local db
    for db in "${DATABASES[@]}"; do
        psql "$PG_ADMIN" -Atqc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
    bench_cleanup
}
trap drop_databases EXIT
need_postfix
build_release
python3 "$BENCH_ROOT/bench/make_messages.py" "$WORK/msg"

# new_database: a fresh database on the server, dropped on exit; sets DB_URL.
new_database() {
    local db=hp_bench_$$_${#DATABASES[@]}
    psql "$PG_ADMIN" -Atqc "CREATE DATABASE $db" >/dev/null || die "cannot create database $db"
    DATABASES+=("$db")
    DB_URL="${PG_ADMIN%/*}/$db"
}

# start_node NAME SINK_PORT [URL]: a relay (on the shared store at URL, as node NAME, with Redis
# counters when there is Redis); sets NODE_PID, NODE_PORT.
start_node() {
    local name=$1 sink=$2 url=${3:-}
    if [[ -n $url ]]; then
        HP_STORAGE_LINES=$(printf 'url = "%s"\nnode = "%s"' "$url" "$name")
        if [[ -n $REDIS ]]; then
            BENCH_HALLPASS_TOML=$(printf '%s\n[counters]\nurl = "%s"\nprefix = "%s:"' \
                "${BENCH_HALLPASS_TOML:-}" "$REDIS" "hp-bench-$$-$name")
        fi
    fi
    HP_STORAGE_LINES=${HP_STORAGE_LINES:-} start_hallpass "$name" "$sink" "max_connections_per_client = 100"
    unset HP_STORAGE_LINES
    NODE_PID=$HP_PID
    NODE_PORT=$HP_PORT
}

stop_node() {
    HP_PID=$1
    stop_hallpass
}

source_args() {
    case $1 in
    clean) echo "-F $WORK/msg/clean.eml -t $INTERNAL" ;;
    personal) echo "-F $WORK/msg/personal.eml -t $INTERNAL" ;;
    *) die "unknown kind $1 (clean, personal)" ;;
    esac
}

RESULTS=$WORK/results

# run SETUP KIND
run() {
    local setup=$1 kind=$2 name=$1-$2 sink_port url="" t0 t2 arrived l
    local saved_toml=${BENCH_HALLPASS_TOML:-}
    sink_port=$(free_port)
    start_sink "$name" "$sink_port"
    local pids=() ports=()
    case $setup in
    sqlite)
        start_node "$name" "$sink_port"
        pids+=("$NODE_PID") ports+=("$NODE_PORT")
        ;;
    pg-1)
        new_database
        url=$DB_URL
        start_node "$name-a" "$sink_port" "$url"
        pids+=("$NODE_PID") ports+=("$NODE_PORT")
        ;;
    pg-2)
        new_database
        url=$DB_URL
        start_node "$name-a" "$sink_port" "$url"
        pids+=("$NODE_PID") ports+=("$NODE_PORT")
        BENCH_HALLPASS_TOML=$saved_toml
        start_node "$name-b" "$sink_port" "$url"
        pids+=("$NODE_PID") ports+=("$NODE_PORT")
        ;;
    esac
    BENCH_HALLPASS_TOML=$saved_toml
    l=$(load)
    t0=$(now)
    local share=$((N / ${#ports[@]})) sessions=$((SESSIONS / ${#ports[@]})) i src=()
    for i in "${!ports[@]}"; do
        local m=$share
        ((i == ${#ports[@]} - 1)) && m=$((N - share * (${#ports[@]} - 1)))
        # shellcheck disable=SC2046 # word splitting of the options is intended
        timeout "$SEND_TIMEOUT" smtp-source -s "$sessions" -m "$m" $(source_args "$kind") -f "$FROM" \
            "127.0.0.1:${ports[$i]}" >"$WORK/$name.$i.source" 2>&1 &
        src+=($!)
    done
    for i in "${src[@]}"; do
        wait "$i" || echo "$setup $kind: an smtp-source failed: $(tail -2 "$WORK/$name".*.source)" >&2
    done
    arrived=$(wait_sink "$name" "$N" "$DRAIN_TIMEOUT")
    t2=$(now)
    for i in "${pids[@]}"; do stop_node "$i"; done
    stop_sink
    ((arrived == N)) || echo "$setup $kind: $arrived of $N messages arrived" >&2
    echo "$setup $kind $N $(awk -v a="$t0" -v b="$t2" 'BEGIN{print b-a}') $arrived $l" >>"$RESULTS"
    printf '  %-7s %-8s done: %s of %s arrived\n' "$setup" "$kind" "$arrived" "$N" >&2
}

echo "multi-relay benchmark: $N messages of 10 KB per kind and set-up, $SESSIONS sessions; $(nproc) cores; redis: ${REDIS:-none}; load $(load)" >&2
for kind in ${BENCH_KINDS:-clean personal}; do
    # Interleaved, so a burst of load from elsewhere on the machine hits every set-up alike.
    run sqlite "$kind"
    run pg-1 "$kind"
    run pg-2 "$kind"
done

echo
echo "multi-relay throughput, $N x 10 KB messages per row, $SESSIONS smtp-source sessions in all, end to end (client -> relay(s) -> smtp-sink), $(nproc) cores"
awk '
function rate(n, t) { return t > 0 ? n / t : 0 }
{
    setup = $1; kind = $2; n = $3; e2e = $4; got = $5; ld = $6 " " $7 " " $8
    printf "%-7s %-9s %6d msgs  delivered %6d in %7.2f s (%7.1f msg/s)  load %s\n", setup, kind, n, got, e2e, rate(got, e2e), ld
    r[setup, kind] = rate(got, e2e); kinds[kind] = 1
}
END {
    for (k in kinds) {
        vs_sqlite = 0; vs_pg1 = 0
        if (r["sqlite", k] > 0) vs_sqlite = r["pg-2", k] / r["sqlite", k]
        if (r["pg-1", k] > 0) vs_pg1 = r["pg-2", k] / r["pg-1", k]
        printf "%s: two relays on PostgreSQL / one relay on SQLite %.2f, / one relay on PostgreSQL %.2f\n", k, vs_sqlite, vs_pg1
    }
}' "$RESULTS"
echo "load after the run: $(load)"
