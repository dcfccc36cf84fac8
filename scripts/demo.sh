#!/usr/bin/env bash
# The main job: install what is missing, build, run the atbus demo.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/deps.sh"
# shellcheck disable=SC2086
atbus_ensure_packages $ATBUS_PKGS_BUILD

build=${ATBUS_BUILD_DIR:-$root/build}/release
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DATBUS_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target atbus-demo >/dev/null
exec "$build/tools/atbus-demo/atbus-demo" "$@"
