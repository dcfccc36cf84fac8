# Debian packages atbus needs, and the one place that installs them.
# Sourced by scripts/demo.sh and scripts/test.sh.

# Build: compiler, CMake, code generator and libraries.
ATBUS_PKGS_BUILD="cmake make gcc pkg-config libprotobuf-c-dev
  protobuf-c-compiler libxxhash-dev libjansson-dev libyaml-dev
  libcurl4-openssl-dev"
# Tests: Check, the cross-implementation peers, the fuzzer toolchain and the
# formatter.
ATBUS_PKGS_TEST="check python3 python3-protobuf python3-xxhash clang
  libclang-rt-14-dev clang-format etcd-server etcd-client"
# Benchmarks (bench/run.sh): the peers atbus-bench measures against.
ATBUS_PKGS_BENCH="libzmq3-dev libnng-dev"

# atbus_missing_packages <pkg>...: print the packages that are not installed.
atbus_missing_packages() {
    local p missing=""
    for p in "$@"; do
        if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != \
            "install ok installed" ]; then
            missing="$missing $p"
        fi
    done
    echo "${missing# }"
}

# atbus_ensure_packages <pkg>...: install what is missing when running as
# root; otherwise print the exact command and stop.
atbus_ensure_packages() {
    local missing
    missing=$(atbus_missing_packages "$@")
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "atbus: missing Debian packages. Run as root:" >&2
        echo "  apt-get install -y --no-install-recommends $missing" >&2
        exit 1
    fi
    echo "atbus: installing $missing"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    if ! apt-get install -y --no-install-recommends $missing; then
        apt-get update
        # shellcheck disable=SC2086
        apt-get install -y --no-install-recommends $missing
    fi
}
