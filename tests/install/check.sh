#!/usr/bin/env bash
# Builds a program against an installed atbus twice, once through
# find_package(atbus) and once through pkg-config, and runs both: the
# installed package must be usable by an outside project.
# Usage: check.sh <install prefix> <scratch build dir>
set -euo pipefail
prefix=$1
build=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rm -rf "$build"
cmake -S "$here" -B "$build/cmake" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$build/cmake" >/dev/null
LD_LIBRARY_PATH="$prefix/lib:$prefix/lib64:$prefix/lib/x86_64-linux-gnu" \
    "$build/cmake/consumer" find_package

pcdir=$(dirname "$(find "$prefix" -name libatbus.pc | head -1)")
mkdir -p "$build/pkgconfig"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror -o "$build/pkgconfig/consumer" "$here/consumer.c" \
    $(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs libatbus)
LD_LIBRARY_PATH="$(PKG_CONFIG_PATH="$pcdir" pkg-config --variable=libdir libatbus)" \
    "$build/pkgconfig/consumer" pkg-config
