#!/usr/bin/env bash
# The test command (README, "Run the tests"): installs what the tests need, starts a throwaway
# PostgreSQL server on loopback, builds everything, fails on any warning in our own code, runs
# every test, and stops PostgreSQL again.
#
#   Tests/run.sh                   # all tests
#   Tests/run.sh --filter NCSTests # extra arguments go to `swift test`
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
dpkg -s libsqlite3-dev >/dev/null 2>&1 || missing+=(libsqlite3-dev)
dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
dpkg -s libjemalloc-dev >/dev/null 2>&1 || missing+=(libjemalloc-dev)  # ncs-receiver's malloc
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)  # finds OpenSSL for COpenSSL
command -v openssl >/dev/null 2>&1 || missing+=(openssl)  # the TLS tests make their certificates
command -v curl >/dev/null 2>&1 || missing+=(curl)        # and check them with curl
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
[ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]}"
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

pg_dir=$(mktemp -d /tmp/ncs-test-postgres.XXXXXX)
trap 'bash Tests/Support/postgres.sh stop "$pg_dir" >/dev/null 2>&1 || true' EXIT
echo "==> starting a throwaway PostgreSQL in $pg_dir"
NCS_TEST_POSTGRES_URL=$(bash Tests/Support/postgres.sh start "$pg_dir" | tail -1)
export NCS_TEST_POSTGRES_URL

echo "==> building (swift build --build-tests)"
build_log=$(mktemp)
set +e
swift build --build-tests >"$build_log" 2>&1
status=$?
set -e
grep -E "error:|warning:" "$build_log" | sort -u | head -100 || true
tail -1 "$build_log"
[ $status -eq 0 ] || { echo "==> build failed" >&2; exit 1; }
# Zero warnings in our own code (dependencies' warnings are theirs).
if grep -E "^$PWD/(Sources|Tests)/.*warning:" "$build_log" | sort -u | grep . ; then
    echo "==> the build printed warnings in our code" >&2
    exit 1
fi

echo "==> testing (swift test --no-parallel)"
# Serial: the load tests count this process's file descriptors, and socket tests that block
# would otherwise compete with the code under test for the same few threads.
swift test --skip-build --no-parallel "$@"
