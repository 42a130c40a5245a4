#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests.
#
#   postgres.sh start <dir>   create (if needed) and start a cluster in <dir>, create database
#                             ncs_test, print postgres://postgres@127.0.0.1:<port>/ncs_test as the
#                             last line of stdout. Idempotent: an existing cluster is reused.
#   postgres.sh halt <dir>    stop the server, keep the cluster (start brings it back on the same port)
#   postgres.sh stop <dir>    stop the server and remove <dir> (nothing to do if it is gone)
#   postgres.sh url <dir>     print the URL of the cluster in <dir>
#
# The port is $PGPORT when set, else a free one picked at creation (kept in <dir>/port).
# Runs the server as the `postgres` OS user when started as root. Needs Debian's `postgresql`
# package (the newest /usr/lib/postgresql/*/bin is used). Fails loudly: every error exits non-zero
# with the reason (and the server log's tail) on stderr.
set -euo pipefail

die() { echo "postgres.sh: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: postgres.sh start|halt|stop|url <dir>"
command=$1
dir=$2
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
data="$dir/data"

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
[ -n "$bindir" ] && [ -x "$bindir/initdb" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)"

# Run a command as the cluster's owner.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

port_is_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_port() {
    if [ -n "${PGPORT:-}" ]; then echo "$PGPORT"; return; fi
    local port tries=0
    while [ $tries -lt 200 ]; do
        # Below the ephemeral range (32768+), where outgoing connections may hold a port.
        port=$(( 20000 + RANDOM % 12000 ))
        if port_is_free "$port"; then echo "$port"; return; fi
        tries=$((tries + 1))
    done
    die "no free TCP port found"
}

# pg_ctl's server outlives this script: give it no inherited descriptor but stdin/stdout/stderr,
# so a caller reading our stdout through a pipe (whose write end it may have leaked to us under
# another number) still sees end-of-file when we exit.
close_inherited_fds() {
    local fd
    for fd in $(ls "/proc/$BASHPID/fd"); do
        if [ "$fd" -gt 2 ] && [ "$fd" -ne 255 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
}

is_running() {
    [ -f "$data/PG_VERSION" ] && as_owner "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1
}

url() {
    [ -f "$dir/port" ] || die "no cluster in $dir"
    echo "postgres://postgres@127.0.0.1:$(cat "$dir/port")/ncs_test"
}

start() {
    if [ ! -f "$data/PG_VERSION" ]; then
        if [ "$(id -u)" = 0 ]; then
            id postgres >/dev/null 2>&1 || die "the postgres OS user does not exist (apt-get install postgresql)"
            install -d -o postgres -g postgres -m 0700 "$dir"
        else
            mkdir -p "$dir"
        fi
        rm -rf "$data"
        local port
        port=$(pick_port)
        as_owner "$bindir/initdb" -D "$data" -A trust -U postgres -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
        cat >>"$data/postgresql.conf" <<EOF
# ncs-receiver test cluster
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
shared_buffers = 128MB
EOF
        echo "$port" >"$dir/port"
        chmod 0644 "$dir/port"
    fi
    local port
    port=$(cat "$dir/port")
    if ! is_running; then
        ( close_inherited_fds; as_owner "$bindir/pg_ctl" -D "$data" -l "$dir/log" -w -t 60 start </dev/null >/dev/null 2>&1 ) \
            || { tail -n 30 "$dir/log" >&2 || true; die "pg_ctl start failed (port $port)"; }
    fi
    local psql=("$bindir/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1)
    local tries=0
    until "${psql[@]}" -tAc "SELECT 1" >/dev/null 2>&1; do
        tries=$((tries + 1))
        [ $tries -lt 60 ] || { tail -n 30 "$dir/log" >&2 || true; die "server on port $port does not answer"; }
        sleep 0.5
    done
    if [ "$("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = 'ncs_test'")" != "1" ]; then
        "${psql[@]}" -c "CREATE DATABASE ncs_test" >/dev/null || die "CREATE DATABASE ncs_test failed"
    fi
    url
}

halt() {
    if is_running; then
        as_owner "$bindir/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null || die "pg_ctl stop failed"
    fi
}

case "$command" in
    start) start ;;
    halt) halt ;;
    stop)
        if [ -d "$dir" ]; then
            halt
            rm -rf "$dir"
        fi
        ;;
    url) url ;;
    *) die "unknown command $command (start|halt|stop|url)" ;;
esac
