#!/usr/bin/env bash
# Builds atbus-bench (Release, in build/bench) and runs the benchmark
# matrix: atbus next to ZeroMQ, nng and raw system calls, interleaved, with
# a summary of ratios. The output is also kept in build/bench/results.txt.
# docs/benchmarks.md explains the cases and the figures.
#
# Usage: bench/run.sh [--with-etcd] [atbus-bench options]
#   --with-etcd   start a throw-away etcd on free loopback ports for the
#                 etcd case, and stop it afterwards
#   --quick, --case NAME, --impl NAME, --reps N, ...: see
#                 atbus-bench --help
# Environment: ATBUS_BUILD_DIR (default ./build).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/deps.sh"

with_etcd=0
args=()
for a in "$@"; do
    case $a in
    --with-etcd) with_etcd=1 ;;
    *) args+=("$a") ;;
    esac
done

# shellcheck disable=SC2086
atbus_ensure_packages $ATBUS_PKGS_BUILD $ATBUS_PKGS_BENCH
[ "$with_etcd" -eq 1 ] && atbus_ensure_packages etcd-server

build=${ATBUS_BUILD_DIR:-$root/build}/bench
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DATBUS_BENCH=ON \
    -DATBUS_TESTS=OFF >/dev/null
# Two jobs at most: the machine this runs on has two cores.
cmake --build "$build" -j2 --target atbus-bench >/dev/null

etcd_pid=""
etcd_dir=""
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    if [ -n "$etcd_pid" ]; then
        kill "$etcd_pid" 2>/dev/null || true
        wait "$etcd_pid" 2>/dev/null || true
    fi
    [ -n "$etcd_dir" ] && rm -rf "$etcd_dir"
    return 0
}
trap cleanup EXIT

# free_port prints a loopback TCP port nobody listens on.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if [ "$with_etcd" -eq 1 ]; then
    etcd_dir=$(mktemp -d /tmp/atbus-bench-etcd.XXXXXX)
    client_port=$(free_port)
    peer_port=$(free_port)
    etcd --name bench --data-dir "$etcd_dir/data" \
        --listen-client-urls "http://127.0.0.1:$client_port" \
        --advertise-client-urls "http://127.0.0.1:$client_port" \
        --listen-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-cluster "bench=http://127.0.0.1:$peer_port" \
        >"$etcd_dir/etcd.log" 2>&1 &
    etcd_pid=$!
    up=0
    for _ in $(seq 1 100); do
        if curl -sf "http://127.0.0.1:$client_port/health" >/dev/null 2>&1; then
            up=1
            break
        fi
        sleep 0.1
    done
    if [ "$up" -ne 1 ]; then
        echo "bench/run.sh: etcd did not come up; its log:" >&2
        cat "$etcd_dir/etcd.log" >&2
        exit 1
    fi
    args+=(--etcd "http://127.0.0.1:$client_port")
fi

set +e
"$build/tools/atbus-bench/atbus-bench" "${args[@]}" 2>&1 | tee "$build/results.txt"
rc=${PIPESTATUS[0]}
set -e
exit "$rc"
