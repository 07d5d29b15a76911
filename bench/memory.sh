#!/usr/bin/env bash
# Peak memory and time of `hallpass scan` on a ~35 MB message of mixed
# attachments and on three bombs, beside a small plain message, in one run.
# Figures are printed, never asserted (the machines are shared and noisy).
#
#   bench/memory.sh [DIR]     # DIR: where the messages go (default /tmp/hallpass-bench)
#
# Needs GNU time (/usr/bin/time; Debian package `time`).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/hallpass-bench}
if [[ ! -x /usr/bin/time ]]; then
    echo "memory.sh needs GNU time: apt-get install time" >&2
    exit 2
fi

cargo build --release --quiet --bin hallpass
cargo build --release --quiet -p hallpass-fixtures --bin make-bench-mail
target/release/make-bench-mail "$dir" >/dev/null

# Runs `hallpass scan --json FILE` under GNU time; prints one table row.
measure() {
    local name=$1 file=$dir/$1.eml
    local size report
    size=$(stat -c %s "$file")
    report=$(mktemp)
    /usr/bin/time -v target/release/hallpass scan --json "$file" >"$dir/$name.json" 2>"$report"
    local rss_kb wall verdict reason
    rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$report")
    wall=$(awk -F': ' '/Elapsed \(wall clock\) time/ {print $2}' "$report")
    rm -f "$report"
    verdict=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["verdict"])' "$dir/$name.json")
    reason=$(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
bad = [a.get("reason") for a in r["attachments"] if a.get("reason")]
print(bad[0] if bad else "-")' "$dir/$name.json")
    # Budget: 4 x the message size + 64 MB.
    awk -v n="$name" -v size="$size" -v wall="$wall" -v rss="$rss_kb" -v v="$verdict" -v r="$reason" 'BEGIN {
        budget = 4 * size + 64e6
        printf "%-12s %9.1f MB %9s %9.1f MB %13.2f  %-8s %s\n", n, size / 1e6, wall, rss * 1024 / 1e6, rss * 1024 / budget, v, r
    }'
}

printf '%-12s %12s %9s %12s %13s  %-8s %s\n' message size wall "peak RSS" "RSS/(4s+64MB)" verdict "why unscannable"
for name in plain large nested_bomb flat_bomb pdf_bomb; do
    measure "$name"
done
