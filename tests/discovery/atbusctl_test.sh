#!/bin/sh
# atbusctl on the example files: the good ones validate and list, the bad
# one reports every error with line and path and exits 1, relations and
# next hops on the DESIGN §8.1 topologies, records read from a real etcd
# (when etcd, etcdctl and python3 are installed), and a wrong command
# line exits 2.
# usage: atbusctl_test.sh <atbusctl> <examples/discovery dir> [<test data dir>]
set -u
ctl=$1
dir=$2
data=${3:-}
out=$(mktemp)
work=$(mktemp -d)
etcd_pid=
cleanup() {
    if [ -n "$etcd_pid" ]; then
        kill -9 "$etcd_pid" 2>/dev/null
        wait "$etcd_pid" 2>/dev/null
    fi
    rm -rf "$out" "$work"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    cat "$out" >&2
    exit 1
}

# expect_status <status> <args...>: run atbusctl, output in $out.
expect_status() {
    want=$1
    shift
    "$ctl" "$@" >"$out" 2>&1
    got=$?
    [ "$got" -eq "$want" ] || fail "atbusctl $*: exit $got, want $want"
}

expect_line() {
    grep -F -q -- "$1" "$out" || fail "no line with: $1"
}

for f in cross_namespace cross_region; do
    expect_status 0 validate "$dir/$f.yaml"
    expect_line "no errors"
done
expect_line "5 nodes, 1 groups, 5 routes, no errors"

expect_status 1 validate "$dir/bad.yaml"
expect_line "bad.yaml:10:11: nodes[1].name:"
expect_line 'bad.yaml:15:'
expect_line 'nodes[2].metadata.labels["-tier"]'
expect_line "bad.yaml:22:"
expect_line "nodes[3].gateways[1].addresses[0]: address: unknown scheme"
expect_line "bad.yaml:27:"
expect_line "nodes[4].gateways[0].priority"
expect_line "bad.yaml:30:"
expect_line "nodes[5].name: the name is already used by the record at line 4"
expect_line "bad.yaml:36:"
expect_line "groups[0].node_list[1]"
expect_line "1 records valid, 6 refused"
[ "$(grep -c '^.*bad.yaml:[0-9]*:[0-9]*: ' "$out")" -eq 6 ] ||
    fail "want 6 error lines"

expect_status 1 validate "$dir/missing.yaml"
expect_line "cannot open"

expect_status 0 list nodes --file "$dir/cross_region.yaml"
expect_line "NAME "
expect_line "GATEWAYS"
expect_line "relay-0.transit"
expect_line "area.region=any"
expect_line "3:ipv4://192.0.2.1:7000,udp://192.0.2.1:7001"
[ "$(wc -l <"$out")" -eq 6 ] || fail "want a header and 5 rows"
# Sorted by name.
head -n 2 "$out" | tail -n 1 | grep -q '^app-1.ns1 ' || fail "not sorted"

expect_status 0 list groups --file="$dir/cross_namespace.yaml"
expect_line "all-apps"
expect_line "app-1.ns1,app-3.ns1,app-2.ns2"

# The good records of a bad file are listed; the errors go to stderr.
expect_status 1 list nodes --file "$dir/bad.yaml"
expect_line "app-1.ns1"

# ---- route records, relations, next hops ----

expect_status 0 list routes --file "$dir/cross_region.yaml"
expect_line "UPSTREAMS"
[ "$(wc -l <"$out")" -eq 6 ] || fail "want a header and 5 route rows"
grep -q '^relay-1.ns1 *1 *relay-0.transit$' "$out" || fail "relay-1 route"
grep -q '^relay-0.transit *1 *-$' "$out" || fail "the root's route"

# expect_output <text> <args...>: exit 0 and exactly text on stdout.
expect_output() {
    text=$1
    shift
    expect_status 0 "$@"
    [ "$(cat "$out")" = "$text" ] || fail "atbusctl $*: want '$text'"
}

cr="$dir/cross_region.yaml"
expect_output IMMEDIATE_UPSTREAM relation app-1.ns1 relay-1.ns1 --file "$cr"
expect_output IMMEDIATE_DOWNSTREAM relation relay-1.ns1 app-1.ns1 --file "$cr"
expect_output TRANSITIVE_UPSTREAM relation app-1.ns1 relay-0.transit --file "$cr"
expect_output TRANSITIVE_DOWNSTREAM relation relay-0.transit app-2.ns2 --file "$cr"
expect_output SAME_UPSTREAM_PEER relation relay-1.ns1 relay-2.ns2 --file "$cr"
expect_output OTHER_UPSTREAM_PEER relation app-1.ns1 app-2.ns2 --file "$cr"
expect_output SELF relation app-2.ns2 app-2.ns2 --file "$cr"
expect_status 1 relation app-1.ns1 app-9.ns1 --file "$cr"
expect_line "'app-9.ns1' has no route record"
expect_status 2 relation app-1.ns1 App_9 --file "$cr"
expect_line "'App_9' is not a node name"

# hop_row <src> <dst> [options]: the next hop's row (HOP PEER RELATION
# ENCRYPT ADDRESS) in $row.
hop_row() {
    expect_status 0 next-hop "$@"
    row=$(sed -n 2p "$out" | tr -s ' ')
}

# CN app -> US app: via the CN relay, on its internal address.
hop_row app-1.ns1 app-2.ns2 --file "$cr"
[ "$row" = "VIA_UPSTREAM relay-1.ns1 OTHER_UPSTREAM_PEER no ipv4://10.0.1.1:7000" ] ||
    fail "app-1 -> app-2: $row"
# The CN relay goes to the transit relay, never to the US relay, whatever
# the relay preference.
for prefer in upstream target; do
    hop_row relay-1.ns1 app-2.ns2 --file "$cr" --prefer "$prefer"
    [ "$row" = "VIA_UPSTREAM relay-0.transit OTHER_UPSTREAM_PEER no ipv4://192.0.2.1:7000" ] ||
        fail "relay-1 -> app-2 ($prefer): $row"
done
hop_row relay-1.ns1 relay-2.ns2 --file "$cr"
[ "$(echo "$row" | cut -d' ' -f2)" = relay-0.transit ] ||
    fail "relay-1 -> relay-2: $row"
# Hop by hop, asked at each node reached: the whole path.
path=app-1.ns1
at=app-1.ns1
for i in 1 2 3 4 5 6; do
    hop_row "$at" app-2.ns2 --file "$cr"
    kind=$(echo "$row" | cut -d' ' -f1)
    [ "$kind" = LOCAL ] && break
    at=$(echo "$row" | cut -d' ' -f2)
    path="$path $at"
done
[ "$path" = "app-1.ns1 relay-1.ns1 relay-0.transit relay-2.ns2 app-2.ns2" ] ||
    fail "path: $path"
# The region policy marks the hop encrypted.
hop_row app-1.ns1 app-2.ns2 --file "$cr" --policy "$dir/cross_region.policy"
[ "$(echo "$row" | cut -d' ' -f4)" = yes ] || fail "not encrypted: $row"
# Across namespaces the ns1 relay dials the ns2 relay's ingress address.
hop_row relay-1.ns1 app-2.ns2 --file "$dir/cross_namespace.yaml"
[ "$row" = "VIA_TARGET_RELAY relay-2.ns2 OTHER_UPSTREAM_PEER no ipv4://172.16.0.2:7000" ] ||
    fail "relay-1 -> app-2 across namespaces: $row"
hop_row app-1.ns1 app-3.ns1 --file "$dir/cross_namespace.yaml"
[ "$row" = "DIRECT app-3.ns1 SAME_UPSTREAM_PEER no ipv4://10.0.0.3:7000" ] ||
    fail "app-1 -> app-3: $row"
# No usable address anywhere: no route, exit 1.
printf 'nodes:\n  - {name: a}\n  - {name: b}\n' >"$work/isolated.yaml"
expect_status 1 next-hop a b --file "$work/isolated.yaml"
expect_line "no route from a to b"
printf 'same x\n' >"$work/bad.policy"
expect_status 1 next-hop a b --file "$work/isolated.yaml" --policy "$work/bad.policy"
expect_line "line 1"
expect_status 2 next-hop a b --file "$work/isolated.yaml" --prefer sideways

if [ -n "$data" ]; then
    expect_status 1 validate "$data/route_cycle.yaml"
    expect_line "routes: relay-c: cycle: relay-c -> relay-a -> relay-b -> relay-c [ATBUS_EROUTE_CYCLE]"
    expect_line "1 route records in a cycle"
fi

# ---- etcd as the source ----

if command -v etcd >/dev/null && command -v etcdctl >/dev/null &&
    command -v python3 >/dev/null; then
    ports=$(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')
    cport=${ports% *}
    pport=${ports#* }
    url="http://127.0.0.1:$cport"
    etcd --name ctl --data-dir "$work/etcd" \
        --listen-client-urls "$url" --advertise-client-urls "$url" \
        --listen-peer-urls "http://127.0.0.1:$pport" \
        --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
        --initial-cluster "ctl=http://127.0.0.1:$pport" \
        --log-level error >"$work/etcd.log" 2>&1 &
    etcd_pid=$!
    export ETCDCTL_API=3
    up=0
    for i in $(seq 1 100); do
        if etcdctl --endpoints="$url" endpoint health >/dev/null 2>&1; then
            up=1
            break
        fi
        sleep 0.1
    done
    [ "$up" -eq 1 ] || fail "etcd did not start: $(cat "$work/etcd.log")"
    put() { etcdctl --endpoints="$url" put "/ctl$1" "$2" >/dev/null || fail "put $1"; }
    put /nodes/app-1 '{"name":"app-1","metadata":{"namespace_name":"ns1"},"gateways":[{"priority":1,"addresses":["ipv4://10.0.0.1:7000"]}]}'
    put /nodes/relay-1 '{"name":"relay-1","metadata":{"namespace_name":"ns1","kind":"relay"},"gateways":[{"priority":1,"addresses":["ipv4://10.0.1.1:7000"],"match":{"metadata":{"namespace_name":"ns1"}}}]}'
    put /routes/app-1 '{"name":"app-1","upstreams":["relay-1"]}'
    put /routes/relay-1 '{"name":"relay-1","type":"route"}'
    put /nodes/broken '{"name":"other"}'
    put /topology/x 'not a record'

    expect_status 1 list nodes --etcd "$url" --prefix /ctl
    expect_line "app-1 "
    expect_line "relay-1 "
    expect_line "etcd /ctl/nodes/broken: name: the name does not match the key (broken) (record other) [ATBUS_ERECORD]"
    expect_status 1 list routes --etcd "http://127.0.0.1:1,$url" --prefix=/ctl/
    grep -q '^app-1 *0 *relay-1$' "$out" || fail "app-1's route from etcd"
    expect_status 1 relation app-1 relay-1 --etcd "$url" --prefix /ctl
    grep -qx IMMEDIATE_UPSTREAM "$out" || fail "etcd relation"
    expect_status 1 next-hop app-1 relay-1 --etcd "$url" --prefix /ctl
    expect_line "ipv4://10.0.1.1:7000"
    expect_line "VIA_UPSTREAM"
    etcdctl --endpoints="$url" del /ctl/nodes/broken >/dev/null
    expect_output IMMEDIATE_DOWNSTREAM relation relay-1 app-1 --etcd "$url" --prefix /ctl
    # Nothing there: an empty prefix lists nothing; nobody answering
    # fails with the reason.
    expect_status 0 list nodes --etcd "$url"
    [ "$(wc -l <"$out")" -eq 1 ] || fail "want only a header"
    expect_status 1 list nodes --etcd "http://127.0.0.1:1"
    expect_line "ATBUS_EUNAVAILABLE"
    expect_status 2 list nodes --etcd "ftp://127.0.0.1:1"
    expect_status 2 list nodes --etcd "$url" --file "$cr"
    expect_status 2 list nodes --file "$cr" --prefix /ctl
else
    echo "atbusctl: etcd cases skipped (etcd, etcdctl or python3 missing)"
fi

expect_status 2
expect_status 2 frobnicate
expect_status 2 validate
expect_status 2 validate a.yaml b.yaml
expect_status 2 list nodes
expect_status 2 list pods --file "$dir/bad.yaml"
expect_status 2 list nodes --file
expect_status 2 validate --etcd http://127.0.0.1:2379
expect_status 2 relation a --file "$dir/cross_region.yaml"
expect_status 2 next-hop a b c --file "$dir/cross_region.yaml"
expect_status 2 relation a b --policy x --file "$dir/cross_region.yaml"
expect_status 0 --help
expect_line "validate <file.yaml>"
echo "atbusctl: all checks passed"
