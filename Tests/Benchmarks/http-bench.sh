#!/usr/bin/env bash
# Our HTTP server against nginx on the same trivial request, driven by wrk over loopback.
#
#   bash Tests/Benchmarks/http-bench.sh
#
# Rounds alternate (nginx, ours, nginx, ours, …) and each figure is the median of the rounds,
# because a shared machine is noisy. Printed per server: requests/s, p50, p99, peak RSS
# (VmHWM; for nginx the sum over its workers), CPU per request of the server and of wrk, the
# machine's idle and steal time, then ours/nginx for requests/s and p99.
#
# Environment:
#   DURATION=10          seconds per round
#   ROUNDS=3             rounds per server
#   CONNECTIONS=32       wrk connections (one wrk thread: WRK_THREADS=1)
#   PATH_UNDER_TEST=/v1/echo
#   WRK_SCRIPT=<file>    wrk Lua script (default: POST a small JSON body, application/json)
#   SERVER_CMD="<cmd>"   benchmark this command instead of http-bench-server; `{port}` in it is
#                        replaced by the port to listen on, else the port is appended
#   SCRATCH_PATH=<dir>   swift build --scratch-path for http-bench-server (default .build)
#   TLS=1                both servers speak HTTPS (TLS 1.3, one P-256 certificate made here);
#                        wrk keeps its connections, so this measures TLS records, not handshakes.
#                        SERVER_CMD may use {cert} and {key}.
#
# Installs nothing except nginx and wrk when they are missing (apt-get, as root or with sudo).
set -euo pipefail

DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
CONNECTIONS="${CONNECTIONS:-32}"
WRK_THREADS="${WRK_THREADS:-1}"
PATH_UNDER_TEST="${PATH_UNDER_TEST:-/v1/echo}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

# --- Tools -------------------------------------------------------------------------------------
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
    sudo=""
    if [[ $(id -u) != 0 ]]; then sudo="sudo"; fi
    echo "== installing nginx-light and wrk"
    $sudo apt-get update
    $sudo apt-get install -y nginx-light wrk
fi
NGINX="$(command -v nginx)"

# --- Clean-up ----------------------------------------------------------------------------------
work="$(mktemp -d /tmp/http-bench.XXXXXX)"
chmod 755 "$work"
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill -TERM -- "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "${pid#-}" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Helpers -----------------------------------------------------------------------------------
port_is_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
    local port
    for _ in $(seq 1 200); do
        # Below Linux's ephemeral range (32768+), where outgoing connections could hold the port.
        port=$((20000 + RANDOM % 12000))
        if ! port_is_open "$port"; then echo "$port"; return; fi
    done
    echo "no free port found" >&2
    exit 1
}

wait_for_port() {
    local port=$1 pid=$2
    for _ in $(seq 1 300); do
        port_is_open "$port" && return 0
        kill -0 "$pid" 2>/dev/null || { echo "server (pid $pid) exited before listening" >&2; return 1; }
        sleep 0.1
    done
    echo "nothing listens on $port after 30 s" >&2
    return 1
}

# VmHWM in KiB of the given pids, summed.
peak_rss_kib() {
    local total=0 pid value
    for pid in "$@"; do
        value=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
        total=$((total + ${value:-0}))
    done
    echo "$total"
}

# Resets VmHWM (Linux >= 4.0) so each round's peak is its own.
reset_peak() {
    local pid
    for pid in "$@"; do echo 5 > "/proc/$pid/clear_refs" 2>/dev/null || true; done
}

# A wrk latency like 812.00us, 1.20ms or 1.05s, in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else { printf "%.3f", v }
    }'
}

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
maximum() { printf '%s\n' "$@" | sort -g | tail -1; }
# CPU ticks (user + system) of the given processes, so far.
cpu_ticks() {
    local pid total=0
    for pid in "$@"; do
        total=$(( total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0) ))
    done
    echo "$total"
}
# The machine's CPU ticks: "idle+iowait steal total" (/proc/stat's first line).
machine_ticks() { awk '/^cpu / { print $5 + $6, $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }

# --- TLS ---------------------------------------------------------------------------------------
scheme=http
nginx_tls=""
if [[ "${TLS:-0}" == 1 ]]; then
    scheme=https
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
    chmod 644 "$work/tls.key"
    export BENCH_TLS_CERTIFICATE="$work/tls.crt" BENCH_TLS_KEY="$work/tls.key"
    nginx_tls="ssl_certificate $work/tls.crt; ssl_certificate_key $work/tls.key; ssl_protocols TLSv1.2 TLSv1.3;"
fi

# --- wrk script --------------------------------------------------------------------------------
if [[ -z "${WRK_SCRIPT:-}" ]]; then
    WRK_SCRIPT="$work/post.lua"
    cat > "$WRK_SCRIPT" <<'LUA'
wrk.method = "POST"
wrk.body = '{"noticeId":"bench","productId":3,"eventType":1,"payload":{"n":1}}'
wrk.headers["Content-Type"] = "application/json"
LUA
fi
[[ -r "$WRK_SCRIPT" ]] || { echo "WRK_SCRIPT $WRK_SCRIPT is not readable" >&2; exit 1; }

# --- Our server --------------------------------------------------------------------------------
ours_port=$(free_port)
if [[ -z "${SERVER_CMD:-}" ]]; then
    build=(swift build -c release --product http-bench-server)
    if [[ -n "${SCRATCH_PATH:-}" ]]; then build+=(--scratch-path "$SCRATCH_PATH"); fi
    echo "== ${build[*]}"
    "${build[@]}"
    bin_path="$("${build[@]}" --show-bin-path)"
    ours_cmd="$bin_path/http-bench-server $ours_port"
    ours_label="http-bench-server"
else
    if [[ "$SERVER_CMD" == *"{port}"* ]]; then ours_cmd="${SERVER_CMD//\{port\}/$ours_port}"; else ours_cmd="$SERVER_CMD $ours_port"; fi
    ours_cmd="${ours_cmd//\{cert\}/$work/tls.crt}"
    ours_cmd="${ours_cmd//\{key\}/$work/tls.key}"
    ours_label="SERVER_CMD"
fi
echo "== starting ours: $ours_cmd"
# Its own process group, so clean-up reaches whatever SERVER_CMD starts (wrappers, `env`, …).
setsid bash -c "$ours_cmd" > "$work/ours.log" 2>&1 &
ours_pid=$!
pids+=("-$ours_pid")
wait_for_port "$ours_port" "$ours_pid" || { cat "$work/ours.log" >&2; exit 1; }
# The process to measure is the one listening (SERVER_CMD may be a wrapper or a pipeline).
listener_pid=$(ss -Hltnp "sport = :$ours_port" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true)
ours_pid="${listener_pid:-$ours_pid}"

# --- nginx -------------------------------------------------------------------------------------
nginx_port=$(free_port)
while [[ "$nginx_port" == "$ours_port" ]]; do nginx_port=$(free_port); done
mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes auto;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    server {
        listen 127.0.0.1:$nginx_port${nginx_tls:+ ssl};
        $nginx_tls
        location / {
            default_type application/json;
            return 200 '{"ok":true}';
        }
    }
}
NGINX
echo "== starting nginx on 127.0.0.1:$nginx_port ($("$NGINX" -v 2>&1 | sed 's/.*: //'))"
"$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" > "$work/nginx.log" 2>&1 &
nginx_pid=$!
pids+=("$nginx_pid")
wait_for_port "$nginx_port" "$nginx_pid" || { cat "$work/nginx.log" "$work/nginx/error.log" >&2; exit 1; }
nginx_workers() { pgrep -P "$nginx_pid" | tr '\n' ' '; }

# Both must answer the request under test before anything is measured.
for target in "$ours_port" "$nginx_port"; do
    wrk -t1 -c1 -d1s -s "$WRK_SCRIPT" "$scheme://127.0.0.1:$target$PATH_UNDER_TEST" > "$work/warm.txt" 2>&1 || true
    if grep -q "Non-2xx" "$work/warm.txt"; then
        echo "warning: port $target answers non-2xx for $PATH_UNDER_TEST:" >&2
        grep "Non-2xx" "$work/warm.txt" >&2
    fi
done

# --- Rounds ------------------------------------------------------------------------------------
declare -A rps p50 p99 rss errors server_us wrk_us idle steal
# Where the machine's CPU went in a round, because every figure here shares two cores: the
# server's and wrk's CPU per request, and how much of the machine sat idle (idle + iowait) or was
# taken by the hypervisor (steal). A server that leaves the machine idle is waiting, not working.
run_round() {
    local name=$1 port=$2 round=$3
    shift 3
    local watched=("$@")
    reset_peak "${watched[@]}"
    local out="$work/$name-$round.txt"
    local server_before machine_before wrk_cpu
    server_before=$(cpu_ticks "${watched[@]}")
    machine_before=$(machine_ticks)
    # `times` in the subshell prints its children's CPU: wrk's, as minutes and seconds.
    wrk_cpu=$( { wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WRK_SCRIPT" \
        "$scheme://127.0.0.1:$port$PATH_UNDER_TEST" > "$out" 2>&1; times; } | awk 'NR == 2 {
            split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }')
    local server_after machine_after
    server_after=$(cpu_ticks "${watched[@]}")
    machine_after=$(machine_ticks)
    local r l50 l99 bad
    r=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    l50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
    l99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
    bad=$(awk '/Non-2xx or 3xx responses:/ { n += $NF } /Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$out")
    rps[$name]+="${r:-0} "
    p50[$name]+="$l50 "
    p99[$name]+="$l99 "
    rss[$name]+="$(peak_rss_kib "${watched[@]}") "
    errors[$name]=$(( ${errors[$name]:-0} + bad ))
    local requests hz cpu
    requests=$(awk '/requests in/ { print $1 }' "$out")
    hz=$(getconf CLK_TCK)
    cpu=$(awk -v sb="$server_before" -v sa="$server_after" -v w="${wrk_cpu:-0}" -v n="${requests:-0}" -v hz="$hz" \
        -v mb="$machine_before" -v ma="$machine_after" 'BEGIN {
            split(mb, b, " "); split(ma, a, " "); total = a[3] - b[3]
            if (n <= 0 || total <= 0) { print "0 0 0 0"; exit }
            printf "%.1f %.1f %.1f %.1f\n", (sa - sb) / hz / n * 1e6, w / n * 1e6, 100 * (a[1] - b[1]) / total, 100 * (a[2] - b[2]) / total }')
    read -r s_us w_us idle_pct steal_pct <<< "$cpu"
    server_us[$name]+="$s_us "
    wrk_us[$name]+="$w_us "
    idle[$name]+="$idle_pct "
    steal[$name]+="$steal_pct "
    printf '   round %d %-6s %10s req/s  p50 %8s ms  p99 %8s ms  errors %s  CPU/request: server %s µs, wrk %s µs; machine idle %s%%, steal %s%%\n' \
        "$round" "$name" "${r:-?}" "$l50" "$l99" "$bad" "$s_us" "$w_us" "$idle_pct" "$steal_pct"
}

echo "== $ROUNDS rounds of ${DURATION}s, $CONNECTIONS connections, wrk -t$WRK_THREADS, script $(basename "$WRK_SCRIPT") on $PATH_UNDER_TEST"
for round in $(seq 1 "$ROUNDS"); do
    # shellcheck disable=SC2046
    run_round nginx "$nginx_port" "$round" $(nginx_workers)
    run_round ours "$ours_port" "$round" "$ours_pid"
done

# --- Report ------------------------------------------------------------------------------------
echo
echo "== median of $ROUNDS rounds (peak RSS: highest round)"
# shellcheck disable=SC2086
for name in nginx ours; do
    label=$([[ $name == nginx ]] && echo "nginx (RSS = sum of $(nginx_workers | wc -w) workers' VmHWM)" || echo "ours: $ours_label (VmHWM)")
    printf '%-8s %10.0f req/s  p50 %7.3f ms  p99 %7.3f ms  peak RSS %7.1f MiB  errors %s   %s\n' \
        "$name" "$(median ${rps[$name]})" "$(median ${p50[$name]})" "$(median ${p99[$name]})" \
        "$(awk -v k="$(maximum ${rss[$name]})" 'BEGIN { print k / 1024 }')" "${errors[$name]}" "$label"
done
# shellcheck disable=SC2086
for name in nginx ours; do
    printf '%-8s CPU per request: server %6.1f µs, wrk %5.1f µs; machine idle %4.1f%%, steal %4.1f%%\n' "$name" \
        "$(median ${server_us[$name]})" "$(median ${wrk_us[$name]})" "$(median ${idle[$name]})" "$(median ${steal[$name]})"
done
# shellcheck disable=SC2086
awk -v ro="$(median ${rps[ours]})" -v rn="$(median ${rps[nginx]})" \
    -v po="$(median ${p99[ours]})" -v pn="$(median ${p99[nginx]})" 'BEGIN {
    printf "ours/nginx: req/s %.2fx   p99 %.2fx (lower is better)\n", (rn > 0 ? ro / rn : 0), (pn > 0 ? po / pn : 0)
}'
