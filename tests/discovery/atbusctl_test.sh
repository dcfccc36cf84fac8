#!/bin/sh
# atbusctl on the example files: the good ones validate and list, the bad
# one reports every error with line and path and exits 1, and a wrong
# command line exits 2.
# usage: atbusctl_test.sh <atbusctl> <examples/discovery dir>
set -u
ctl=$1
dir=$2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
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

expect_status 2
expect_status 2 frobnicate
expect_status 2 validate
expect_status 2 validate a.yaml b.yaml
expect_status 2 list nodes
expect_status 2 list pods --file "$dir/bad.yaml"
expect_status 2 list nodes --file
expect_status 2 validate --etcd http://127.0.0.1:2379
expect_status 0 --help
expect_line "validate <file.yaml>"
echo "atbusctl: all checks passed"
