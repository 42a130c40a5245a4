#!/usr/bin/env bash
# The run command (README, "Run the service"): installs what the build needs, builds a release
# binary and runs `ncs-receiver serve` with an embedded SQLite store in ./data. Arguments are
# passed to `serve`; secrets come from the environment (NCS_SECRETS, NCS_ADMIN_TOKEN).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
dpkg -s libsqlite3-dev >/dev/null 2>&1 || missing+=(libsqlite3-dev)  # the SQLite store (GRDB)
dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)          # native TLS (OpenSSL)
dpkg -s libjemalloc-dev >/dev/null 2>&1 || missing+=(libjemalloc-dev)  # the process's malloc
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)      # how SwiftPM finds both
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo=sudo; fi
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
swift build -c release --product ncs-receiver
exec .build/release/ncs-receiver serve "$@"
