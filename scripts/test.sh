#!/usr/bin/env bash
# Every test and quality gate: formatting, the Check suites under
# AddressSanitizer + UndefinedBehaviorSanitizer and a short demo run there,
# an optimised build with the
# suites again and an install check, and a bounded fuzz run.
#
# Environment: ATBUS_BUILD_DIR (default ./build), ATBUS_FUZZ_SECONDS
# (default 30, per fuzz target).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/deps.sh"
# shellcheck disable=SC2086
atbus_ensure_packages $ATBUS_PKGS_BUILD $ATBUS_PKGS_TEST

builds=${ATBUS_BUILD_DIR:-$root/build}
fuzz_seconds=${ATBUS_FUZZ_SECONDS:-30}
jobs=$(nproc)
start=$(date +%s)

step() { printf '\n== %s\n' "$*"; }

# run_ctest <build dir>: run the suites, print Check's summary per suite,
# and on failure the output of the failing tests.
run_ctest() {
    local dir=$1 log=$1/ctest.log rc=0
    (cd "$dir" && ctest -V -j"$jobs" --timeout 900) >"$log" 2>&1 || rc=$?
    # ctest -j interleaves suites; regroup each suite's name and summary.
    grep -E '^[0-9]+: ([0-9]+%: Checks:|Running suite)' "$log" |
        sort -s -n -t: -k1,1 |
        sed -E 's/^[0-9]+: //; s/^Running suite\(s\): (.*)/\1/' |
        paste -d' ' - - | awk '{ printf "  %-16s %s\n", $1, substr($0, length($1) + 2) }' || true
    grep -E 'tests passed|tests failed' "$log" || true
    if [ "$rc" -ne 0 ]; then
        (cd "$dir" && ctest --rerun-failed --output-on-failure) || true
        return "$rc"
    fi
}

step "format (clang-format $(clang-format --version | grep -o '[0-9][0-9.]*' | head -1))"
mapfile -t sources < <(cd "$root" && git ls-files '*.c' '*.h' 2>/dev/null ||
    find core tests tools -name '*.[ch]')
(cd "$root" && clang-format --dry-run -Werror "${sources[@]}")
echo "  ${#sources[@]} files formatted"

step "build + tests under AddressSanitizer and UndefinedBehaviorSanitizer"
cmake -S "$root" -B "$builds/asan" -DCMAKE_BUILD_TYPE=Debug \
    -DATBUS_SANITIZE=address,undefined >/dev/null
cmake --build "$builds/asan" -j"$jobs" >/dev/null
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_ctest "$builds/asan"

step "demo smoke run under the sanitizers (atbus-demo --quick)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$builds/asan/tools/atbus-demo/atbus-demo" --quick >"$builds/asan/demo.log" 2>&1 ||
    { cat "$builds/asan/demo.log" >&2; exit 1; }
tail -n 2 "$builds/asan/demo.log" | sed 's/^/  /'

step "optimised build + tests + install check"
cmake -S "$root" -B "$builds/release" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    >/dev/null
cmake --build "$builds/release" -j"$jobs" >/dev/null
run_ctest "$builds/release"
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$builds/release" --prefix "$prefix" >/dev/null
"$root/tests/install/check.sh" "$prefix" "$builds/install-check"

# Every target in tests/fuzz/targets.txt, each for ATBUS_FUZZ_SECONDS.
mapfile -t fuzz_targets < <(grep -E '^fuzz_' "$root/tests/fuzz/targets.txt")
step "fuzz ${#fuzz_targets[@]} targets (${fuzz_seconds}s each)"
CC=clang cmake -S "$root" -B "$builds/fuzz" -DATBUS_FUZZ=ON \
    -DATBUS_TESTS=OFF >/dev/null
cmake --build "$builds/fuzz" -j"$jobs" --target "${fuzz_targets[@]}" >/dev/null
for target in "${fuzz_targets[@]}"; do
    scratch=$(mktemp -d)
    fuzz_log="$builds/fuzz/$target.log"
    status=0
    "$builds/fuzz/tests/fuzz/$target" -max_total_time="$fuzz_seconds" \
        -max_len=4096 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$builds/fuzz/$target-" "$scratch" \
        "$root/tests/fuzz/corpus/${target#fuzz_}" >"$fuzz_log" 2>&1 || status=$?
    rm -rf "$scratch"
    echo "  $target"
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss)' "$fuzz_log" |
        sed 's/^/    /' || true
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$fuzz_log" >&2
        echo "$target failed (exit $status): see $fuzz_log and" \
            "$builds/fuzz/$target-crash-*" >&2
        exit 1
    fi
done

step "all tests passed in $(($(date +%s) - start))s"
