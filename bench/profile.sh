#!/usr/bin/env bash
# Profiles one atbus-bench case with perf and prints the hottest symbols of
# each side separately: the sender (or client) and the receiver (or echo
# server), each as a share of that side's own samples.
#
# Usage: bench/profile.sh CASE [IMPL] [TOP]
#   CASE  a case name of atbus-bench --list, e.g. throughput/unix/64
#   IMPL  the implementation to profile (default atbus)
#   TOP   symbols shown per side (default 15)
# Needs the Release build of bench/run.sh. The perf data is kept in
# build/bench/perf-<case>-<impl>.data for perf report.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${ATBUS_BUILD_DIR:-$root/build}/bench
bin=$build/tools/atbus-bench/atbus-bench
if [ $# -lt 1 ]; then
    sed -n '2,12p' "$0" >&2
    exit 2
fi
if [ ! -x "$bin" ]; then
    echo "bench/profile.sh: build it first (bench/run.sh --case relay)" >&2
    exit 1
fi
case_name=$1
impl=${2:-atbus}
top=${3:-15}
data=$build/perf-$(echo "$case_name" | tr '/' '-')-$impl.data

perf record -q -g -o "$data" "$bin" --case "$case_name" --impl "$impl" \
    --no-probe | grep '^BENCH' || true

# Who is who, from the fork records: the driver forks one runner per
# measurement (the sender or client). A runner that forks a process has
# its receiver there; a runner that starts a thread instead (mem://) has
# its receiver in that thread.
roles=$(perf script -i "$data" --show-task-events 2>/dev/null | awk '
    /PERF_RECORD_COMM exec/ && main == "" {
        split($2, a, "/"); main = $2 + 0
    }
    /PERF_RECORD_FORK/ {
        s = $0; sub(/.*PERF_RECORD_FORK\(/, "", s); gsub(/[():]/, " ", s)
        n = split(s, f, " "); cp = f[1]; ct = f[2]; pp = f[3]
        if (cp == ct && pp == main) { runner[cp] = 1 }
        else if (cp == ct && (pp in runner)) { side[cp] = 1; split_mode[pp] = 1 }
        else if (cp != ct && (cp in runner)) { rthread[ct] = cp }
        else if (cp != ct && (cp in side)) { sthread[ct] = 1 }
    }
    END {
        snd = ""; rcv = ""
        for (r in runner) snd = snd "," r
        for (t in rthread) {
            if (rthread[t] in split_mode) snd = snd "," t; else rcv = rcv "," t
        }
        for (p in side) rcv = rcv "," p
        for (t in sthread) rcv = rcv "," t
        print substr(snd, 2); print substr(rcv, 2)
    }')
senders=$(echo "$roles" | sed -n 1p)
receivers=$(echo "$roles" | sed -n 2p)

report() {
    local title=$1 tids=$2
    echo
    echo "== $title (share of its own samples)"
    if [ -z "$tids" ]; then
        echo "  (no samples)"
        return
    fi
    perf report -i "$data" --no-children --percentage relative --tid "$tids" \
        --sort dso,sym --stdio -g none 2>/dev/null |
        grep -E '^ +[0-9]' | head -n "$top" || true
}

kind=${case_name%%/*}
if [ "$kind" = latency ]; then
    report "client (sends, waits for the echo)" "$senders"
    report "echo server" "$receivers"
else
    report "sender" "$senders"
    report "receiver" "$receivers"
fi
