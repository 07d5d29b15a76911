# shellcheck shell=bash
# Shared by bench/relay.sh, bench/idle.sh and bench/soak.sh (sourced, not run).
#
# Starts and stops the pieces of a relay benchmark on 127.0.0.1 only: Postfix's smtp-sink as the
# upstream, `hallpass serve` with fresh storage, and a private Postfix instance for comparison.
# Every process started here is recorded and killed on exit (trap), whatever happens.

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# HALLPASS_BIN: another build to measure (say, a branch's, for a before/after); not rebuilt here.
HALLPASS=${HALLPASS_BIN:-$BENCH_ROOT/target/release/hallpass}
# Everything the run writes: configs, spools, queues, logs. Removed on exit unless BENCH_KEEP=1.
WORK=""
PIDS=()
POSTFIX_CONFS=()

bench_init() {
    local name=$1
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/hallpass-$name.XXXXXX")
    # Postfix's daemons run as the postfix user and must reach their queue under here.
    chmod 755 "$WORK"
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_cleanup() {
    local conf pid
    for conf in "${POSTFIX_CONFS[@]}"; do
        MAIL_CONFIG=$conf postfix abort >/dev/null 2>&1 || true
    done
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $WORK && ${BENCH_KEEP:-0} != 1 ]]; then
        rm -rf "$WORK"
    elif [[ -n $WORK ]]; then
        echo "kept $WORK" >&2
    fi
}

# Forgets a process that has been stopped, so cleanup does not signal a recycled pid.
forget_pid() {
    local p keep=()
    for p in "${PIDS[@]}"; do
        [[ $p == "$1" ]] || keep+=("$p")
    done
    PIDS=("${keep[@]}")
}

now() { date +%s.%N; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
die() {
    echo "bench: $*" >&2
    exit 1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_listening PORT SECONDS: until something listens on 127.0.0.1:PORT.
wait_listening() {
    local port=$1 deadline=$((SECONDS + $2))
    until ss -Hltn "sport = :$port" | grep -q LISTEN; do
        ((SECONDS < deadline)) || return 1
        sleep 0.05
    done
}

# Installs Postfix (for smtp-source, smtp-sink and the comparison relay) when it is missing.
# The package's own instance is left unconfigured ("No configuration"), so it never listens.
need_postfix() {
    if command -v smtp-source >/dev/null && command -v smtp-sink >/dev/null && command -v postfix >/dev/null; then
        return
    fi
    echo "installing postfix (smtp-source, smtp-sink)..." >&2
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
    # Should a service manager have started the system instance anyway, stop it: only private
    # instances on high loopback ports run during a benchmark.
    postfix status >/dev/null 2>&1 && postfix stop >/dev/null 2>&1
    command -v smtp-source >/dev/null || die "postfix did not install smtp-source"
}

build_release() {
    if [[ -n ${HALLPASS_BIN:-} ]]; then
        [[ -x $HALLPASS_BIN ]] || die "HALLPASS_BIN=$HALLPASS_BIN is not an executable"
        return
    fi
    (cd "$BENCH_ROOT" && cargo build --release --quiet --bin hallpass) || die "cargo build --release failed"
}

# ---- the upstream: smtp-sink ---------------------------------------------------------------

# start_sink NAME PORT: a sink that accepts everything and counts it (-c) into $WORK/NAME.sink.
start_sink() {
    local name=$1 port=$2
    smtp-sink -u nobody -c -m 1024 "127.0.0.1:$port" 1024 >"$WORK/$name.sink" 2>&1 &
    SINK_PID=$!
    PIDS+=("$SINK_PID")
    wait_listening "$port" 10 || die "smtp-sink did not start: $(cat "$WORK/$name.sink")"
}

stop_sink() {
    kill "$SINK_PID" 2>/dev/null || true
    wait "$SINK_PID" 2>/dev/null || true
    forget_pid "$SINK_PID"
}

# sink_count NAME: messages the sink has received so far (its last "mesg=N" counter).
sink_count() {
    local n
    n=$(tail -c 400 "$WORK/$1.sink" | tr '\r' '\n' | grep -o 'mesg=[0-9]*' | tail -1 | cut -d= -f2)
    echo "${n:-0}"
}

# wait_sink NAME N SECONDS: until the sink has N messages; prints the count it got.
wait_sink() {
    local name=$1 want=$2 deadline=$((SECONDS + $3)) n
    while :; do
        n=$(sink_count "$name")
        if ((n >= want || SECONDS >= deadline)); then
            echo "$n"
            return
        fi
        sleep 0.05
    done
}

# ---- hallpass ------------------------------------------------------------------------------

# hallpass_config NAME UPSTREAM_PORT [SMTP_LINES]: a configuration for a bench relay on a
# loopback port the system chooses, with fresh storage in $WORK/NAME; SMTP_LINES are added to its
# [smtp] table (limits). BENCH_HALLPASS_TOML, when set, is appended: more tables for a what-if
# run, such as BENCH_HALLPASS_TOML=$'[delivery]\nconcurrency = 20'. HP_STORAGE_LINES, when set,
# are added to its [storage] table (bench/multi_relay.sh: a shared store). Sets HP_CONF, HP_DIR.
hallpass_config() {
    local name=$1 upstream=$2 smtp_lines=${3:-}
    HP_DIR=$WORK/$name
    HP_CONF=$HP_DIR/hallpass.toml
    mkdir -p "$HP_DIR"
    # The shipped configuration's values, but ports, paths and the host name of a test.
    cat >"$HP_CONF" <<EOF
[organisation]
name = "Lumen Learning Trust (bench)"
internal_domains = ["lumen.sch.uk"]
partner_domains = ["council.gov.uk"]

[smtp]
listen = "127.0.0.1:0"
hostname = "relay.bench.lumen.sch.uk"
$smtp_lines

[upstream]
address = "127.0.0.1:$upstream"

[storage]
path = "data"
${HP_STORAGE_LINES:-}

[console]
listen = "127.0.0.1:0"

[detectors]
path = "$BENCH_ROOT/detectors"

${BENCH_HALLPASS_TOML:-}
EOF
}

# start_hallpass NAME UPSTREAM_PORT [SMTP_LINES]: `hallpass serve` with hallpass_config's
# configuration; returns once it listens. Sets HP_PID and HP_PORT too.
start_hallpass() {
    hallpass_config "$@"
    "$HALLPASS" --config "$HP_CONF" serve 2>"$HP_DIR/serve.log" >/dev/null &
    HP_PID=$!
    PIDS+=("$HP_PID")
    local deadline=$((SECONDS + 60))
    until grep -qs "hallpass: smtp listening on" "$HP_DIR/serve.log"; do
        kill -0 "$HP_PID" 2>/dev/null || die "hallpass serve exited: $(tail -5 "$HP_DIR/serve.log")"
        ((SECONDS < deadline)) || die "hallpass serve did not start listening"
        sleep 0.05
    done
    HP_PORT=$(sed -n 's/^hallpass: smtp listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$HP_DIR/serve.log")
    [[ -n $HP_PORT ]] || die "cannot read the relay's port from $HP_DIR/serve.log"
}

stop_hallpass() {
    kill -TERM "$HP_PID" 2>/dev/null || true
    local deadline=$((SECONDS + 40))
    while kill -0 "$HP_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$HP_PID" 2>/dev/null || true
    wait "$HP_PID" 2>/dev/null || true
    forget_pid "$HP_PID"
}

# held_count: messages waiting in the quarantine of the running bench relay.
held_count() {
    "$HALLPASS" --config "$HP_CONF" held list --json | grep -c '"status":"held"' || true
}

# spool_count: message files still in the bench relay's spool.
spool_count() {
    find "$HP_DIR/data/spool" -name '*.eml' 2>/dev/null | wc -l
}

# rss_kb PID FIELD: VmRSS or VmHWM of a process, in kB.
rss_kb() {
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# ---- a stock Postfix relay -------------------------------------------------------------------

# start_postfix NAME LISTEN_PORT RELAY_PORT: a private Postfix instance (own config, queue and
# data folders under $WORK/NAME) listening on 127.0.0.1:LISTEN_PORT, relaying everything from
# 127.0.0.0/8 to [127.0.0.1]:RELAY_PORT. Default configuration otherwise: fsync'd queue, the
# shipped master.cf (but for the listening port, and chroot off: a private instance has no
# populated chroot jail). Sets PF_CONF.
start_postfix() {
    local name=$1 listen=$2 relay=$3
    local dir=$WORK/$name
    PF_CONF=$dir/conf
    mkdir -p "$PF_CONF" "$dir/queue" "$dir/data"
    chown postfix "$dir/data"
    cat >"$PF_CONF/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
myhostname = mta.bench.example.org
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$relay
maillog_file = $dir/maillog
maillog_file_prefixes = /var, /dev/stdout, $dir
EOF
    sed -e "s/^smtp      inet/127.0.0.1:$listen inet/" /etc/postfix/master.cf |
        awk '/^[a-z0-9]/ && NF >= 8 && $5 == "y" { $5 = "n" } { print }' >"$PF_CONF/master.cf"
    # MAIL_CONFIG makes this folder the default one, so no system main.cf is needed or touched.
    POSTFIX_CONFS+=("$PF_CONF")
    MAIL_CONFIG=$PF_CONF postfix start >/dev/null 2>&1 ||
        die "postfix did not start: $(tail -5 "$dir/maillog" 2>/dev/null)"
    wait_listening "$listen" 30 || die "postfix is not listening: $(tail -5 "$dir/maillog")"
}

stop_postfix() {
    MAIL_CONFIG=$PF_CONF postfix stop >/dev/null 2>&1 || MAIL_CONFIG=$PF_CONF postfix abort >/dev/null 2>&1 || true
    local keep=() c
    for c in "${POSTFIX_CONFS[@]}"; do
        [[ $c == "$PF_CONF" ]] || keep+=("$c")
    done
    POSTFIX_CONFS=("${keep[@]}")
}

# postfix_queue_count: messages still in the private instance's queue.
postfix_queue_count() {
    find "$(dirname "$PF_CONF")/queue"/{incoming,active,deferred,hold} -type f 2>/dev/null | wc -l
}
