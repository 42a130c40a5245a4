#!/usr/bin/env bash
# The release binary, tried the way the README tells a person to: the tests run debug builds,
# and a release-only miscompile (replay crashed on every run, 33cbed1) reached main unseen.
#
#   Tests/release-smoke.sh          # builds `-c release` (about 10 minutes clean), then checks
#   NCS_SMOKE_BINARY=<path> Tests/release-smoke.sh   # checks that binary, builds nothing
#
# `config check`, then, against the Agora simulator and an SQLite store in a temporary folder,
# on loopback ports it picks: a signed callback by hand and its resend; `replay` of every
# fixture with resends and redundant copies, and of a scenario; a recording handed over with
# `recordings put --start`, restarted once after its task idles out, then deleted with --stop;
# `events export` and `events tail`; the poll and SSE routes; a refused callback through
# `quarantine list|show|retry|drop`; smuggled and oversized requests; HTTPS; SIGTERM ends
# `serve` cleanly; no secret in any output. Prints one line per check; on a failure, the logs,
# and exits 1. About 20 s once built.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

if [ -n "${NCS_SMOKE_BINARY:-}" ]; then
    bin=$NCS_SMOKE_BINARY
else
    echo "==> building the release binary (swift build -c release --product ncs-receiver)"
    swift build -c release --product ncs-receiver 2>&1 | tail -1
    bin=$repo/.build/release/ncs-receiver
fi

work=$(mktemp -d /tmp/ncs-release-smoke.XXXXXX)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# `config check` first: the settings and secrets a `serve` with them would run on.
config_check=$(NCS_SECRETS=smoke-config-check NCS_ADMIN_TOKEN=smoke-config-check "$bin" config check --port 9 2>&1 || true)
if grep -q "configuration is valid" <<<"$config_check"; then
    echo "ok    config check"
else
    echo "FAIL  config check" >&2
    sed 's/^/      /' <<<"$config_check" >&2
    exit 1
fi

# Throwaway secrets, random, kept out of every command line.
secret=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
customer_secret=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
export NCS_ADMIN_TOKEN
NCS_ADMIN_TOKEN=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')

port_is_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local port
    while true; do
        port=$((20000 + RANDOM % 20000))
        port_is_open "$port" || { echo "$port"; return; }
    done
}
wait_for_port() {
    local i
    for i in $(seq 200); do port_is_open "$1" && return 0; sleep 0.05; done
    return 1
}

failed=0
pass() { echo "ok    $1"; }
fail() { echo "FAIL  $1" >&2; failed=1; }
check() {  # check <what> <command…>
    local what=$1; shift
    if "$@" >"$work/check.out" 2>&1; then pass "$what"; else fail "$what"; sed 's/^/      /' "$work/check.out" >&2; fi
}
# Polls `condition` (a command) every 0.2 s for up to $1 seconds.
eventually() {
    local seconds=$1 i; shift
    for i in $(seq $((seconds * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    "$@"
}

public_port=$(free_port); admin_port=$(free_port)
rest_port=$(free_port); secondary_port=$(free_port); control_port=$(free_port)
admin=(--admin-url "http://127.0.0.1:$admin_port")
url="http://127.0.0.1:$public_port/v1/ncs"

AGORA_CUSTOMER_ID=smoke AGORA_CUSTOMER_SECRET=$customer_secret NCS_SECRET=$secret \
    "$bin" simulate --callback-url "$url" --time-scale 20 --redundant \
    --port "$rest_port" --secondary-port "$secondary_port" --control-port "$control_port" \
    >"$work/simulate.log" 2>&1 &
pids+=($!)
AGORA_CUSTOMER_ID=smoke AGORA_CUSTOMER_SECRET=$customer_secret NCS_SECRETS=$secret \
    "$bin" serve --data-dir "$work/data" --host 127.0.0.1 --port "$public_port" --admin-port "$admin_port" \
    --time-scale 20 --agora-base-urls "http://127.0.0.1:$rest_port,http://127.0.0.1:$secondary_port" \
    >"$work/serve.log" 2>&1 &
serve_pid=$!
pids+=($serve_pid)
wait_for_port "$public_port" && wait_for_port "$admin_port" && wait_for_port "$control_port" \
    || { cat "$work/serve.log" "$work/simulate.log" >&2; echo "==> serve or simulate did not start" >&2; exit 1; }
echo "==> $("$bin" --version 2>/dev/null || echo ncs-receiver) on 127.0.0.1:$public_port (admin :$admin_port), simulator :$rest_port"

# 0. The malloc Package.swift links in place of glibc's (README "Performance"): a build that lost
# it would still pass everything else, only slower.
check "serve runs on jemalloc" grep -q libjemalloc "/proc/$serve_pid/maps"

# 1. A signed callback by hand, then its resend.
body=$(cat Fixtures/ncs/events/40_recorder_started.json)
signature=$(printf %s "$body" | openssl dgst -sha256 -hmac "$secret" -hex | sed 's/.* //')
post() { curl -s "$url" -H "Agora-Signature-V2: $signature" -H 'Content-Type: application/json' -d "$body"; }
check "a signed callback is logged" grep -q '"ok":true,"offset":1' <(post)
check "its resend is a duplicate" grep -q '"duplicate":true,"of":1,"layer":"transport"' <(post)

# 2. Replay: every fixture with Agora's resends and redundant copies, then a scenario.
check "replay Fixtures/ncs/events --resend --redundant" \
    env NCS_SECRET="$secret" "$bin" replay Fixtures/ncs/events --resend --redundant --url "$url" -q
check "replay --scenario resends.json" \
    env NCS_SECRET="$secret" "$bin" replay --scenario Fixtures/ncs/scenarios/resends.json --speed 0 --url "$url" -q

# 3. A recording handed over and started; its task idles out; it is restarted once.
"$bin" recordings put smoke1 --start "${admin[@]}" --file - >"$work/put.out" 2>&1 <<JSON || true
{"appId":"smokeapp","mode":"mix","uid":"527841","backupUid":"527842",
 "options":{"restartOnExit":true,"queryIntervalSeconds":120},
 "clientRequest":{"recordingConfig":{"maxIdleTime":300,"channelType":1},
                  "storageConfig":{"vendor":1,"region":0,"bucket":"b","accessKey":"SMOKE-ACCESS","secretKey":"SMOKE-STORAGE-SECRET"}}}
JSON
recording_row() { "$bin" recordings list "${admin[@]}" | awk '$1 == "smoke1"'; }
recording_is() { recording_row | awk -v state="$1" -v restarts="$2" '$2 == state && $6 == restarts { found = 1 } END { exit !found }'; }
check "recordings put --start: recording" eventually 30 recording_is recording 0
first_sid=$(recording_row | awk '{print $4}')
curl -s -XPOST "http://127.0.0.1:$control_port/_sim/channels/smoke1" -d '{"occupied":false}' >/dev/null
# maxIdleTime 300 s of Agora time at 20x: 15 s, then the exit callbacks and the restart.
check "an idle exit is restarted once" eventually 60 recording_is recording 1
curl -s -XPOST "http://127.0.0.1:$control_port/_sim/channels/smoke1" -d '{"occupied":true}' >/dev/null
check "on a new sid" test "$(recording_row | awk '{print $4}')" != "$first_sid"
check "recordings show: storage secret redacted" \
    bash -c '"$0" recordings show smoke1 "${@}" | grep -q "\[redacted\]"' "$bin" "${admin[@]}"

# An intended stop: Agora's stop is called, and the recording is never restarted.
"$bin" recordings delete smoke1 --stop "${admin[@]}" >"$work/delete.out" 2>&1 || true
check "recordings delete --stop: stopped" eventually 10 recording_is stopped 1
check "and its task ended at Agora" \
    bash -c 'curl -s "$0/_sim/tasks" | grep -q "\"cname\":\"smoke1\"" && ! curl -s "$0/_sim/tasks" | grep -q "\"state\":\"recording\""' \
    "http://127.0.0.1:$control_port"

# 4. The log: export (with its summary) and tail.
"$bin" events export --since 2000-01-01T00:00:00Z "${admin[@]}" >"$work/events.jsonl" 2>"$work/export.err" || true
events=$(wc -l <"$work/events.jsonl")
check "events export: $events events" test "$events" -gt 40
check "events export: summary on stderr" grep -q "exported $events events" "$work/export.err"
check "events tail: restart events" \
    bash -c '"$0" events tail --after 0 --type "ncsreceiver.restart.*" "${@}" | grep -q "ncsreceiver.restart.succeeded"' "$bin" "${admin[@]}"

check "GET /v1/events: a page with next" \
    bash -c 'curl -s -H "Authorization: Bearer $NCS_ADMIN_TOKEN" "$0/v1/events?after=0&limit=5" | grep -q "\"next\":5"' "http://127.0.0.1:$admin_port"
# The stream from Last-Event-ID 3: offsets 4, 5, … (curl stops it after 2 s).
curl -sN --max-time 2 -H "Authorization: Bearer $NCS_ADMIN_TOKEN" -H 'Last-Event-ID: 3' \
    "http://127.0.0.1:$admin_port/v1/events/stream" >"$work/stream.out" 2>/dev/null || true
check "GET /v1/events/stream resumes after Last-Event-ID" test "$(grep -m1 '^id:' "$work/stream.out")" = "id: 4"

# 5. A refused callback, kept in the quarantine, retried (still refused), dropped.
curl -s "$url" -H 'Agora-Signature-V2: 00' -H 'Content-Type: application/json' -d '{"smoke":1}' >"$work/refused.out"
check "a bad signature is refused with 401 JSON" grep -q '"error":"bad_signature"' "$work/refused.out"
quarantine_id=$("$bin" quarantine list "${admin[@]}" | awk '$3 == "bad_signature" {print $1; exit}')
check "quarantine list: kept" test -n "$quarantine_id"
check "quarantine show" bash -c '"$0" quarantine show "$1" "${@:2}" | grep -q "reason: *bad_signature"' "$bin" "${quarantine_id:-0}" "${admin[@]}"
check "quarantine retry: still refused" \
    bash -c '"$0" quarantine retry "$1" "${@:2}" 2>&1 | grep -q "stays in the quarantine"' "$bin" "${quarantine_id:-0}" "${admin[@]}"
check "quarantine drop" bash -c '"$0" quarantine drop "$1" "${@:2}" | grep -q "dropped"' "$bin" "${quarantine_id:-0}" "${admin[@]}"

# 6. Requests the HTTP layer refuses: a status, a JSON body naming the problem, kept in the
#    quarantine, and the process still serves.
raw() {  # raw <request bytes (printf format)>: the answer's status line and body
    exec 3<>"/dev/tcp/127.0.0.1/$public_port"
    # shellcheck disable=SC2059
    printf "$1" >&3
    timeout 5 cat <&3 || true
    exec 3<&- 3>&-
}
raw 'POST /v1/ncs HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' >"$work/smuggled.out"
check "Content-Length with Transfer-Encoding: 400 JSON" \
    bash -c 'head -1 "$0" | grep -q "^HTTP/1.1 400" && grep -q "\"error\":" "$0"' "$work/smuggled.out"
raw 'POST /v1/ncs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{' >"$work/oversized.out"
check "a body over --max-body-bytes: 413 JSON" \
    bash -c 'head -1 "$0" | grep -q "^HTTP/1.1 413" && grep -q "\"error\":" "$0"' "$work/oversized.out"
raw "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: $(head -c 40000 /dev/zero | tr '\0' a)\r\n\r\n" >"$work/headers.out"
check "headers over --max-header-bytes: 431 JSON" \
    bash -c 'head -1 "$0" | grep -q "^HTTP/1.1 431" && grep -q "\"error\":" "$0"' "$work/headers.out"
check "the refused requests are in the quarantine" \
    bash -c '"$0" quarantine list "${@}" | grep -q "http_invalid_framing" && "$0" quarantine list "${@}" | grep -q "http_body_too_large"' "$bin" "${admin[@]}"
check "and a signed callback still gets its 200" grep -q '"ok":true' <(post)

# 7. HTTPS on the public listener (a second receiver, in-memory store): a signed callback over
#    TLS, and plain HTTP to the HTTPS port.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
tls_port=$(free_port); tls_admin_port=$(free_port)
NCS_SECRETS=$secret "$bin" serve --store memory --host 127.0.0.1 --port "$tls_port" --admin-port "$tls_admin_port" \
    --tls-certificate "$work/cert.pem" --tls-key "$work/key.pem" >"$work/serve-tls.log" 2>&1 &
tls_pid=$!
pids+=($tls_pid)
if wait_for_port "$tls_port"; then
    check "HTTPS: a signed callback is logged" grep -q '"ok":true,"offset":1' \
        <(curl -s --cacert "$work/cert.pem" "https://127.0.0.1:$tls_port/v1/ncs" -H "Agora-Signature-V2: $signature" \
              -H 'Content-Type: application/json' -d "$body")
    check "HTTPS: plain HTTP to the port gets 400 JSON" grep -q '"error":"plain_http_to_https_port"' \
        <(curl -s "http://127.0.0.1:$tls_port/v1/ncs" -d '{}')
else
    fail "HTTPS: serve with --tls-certificate did not start"
fi
kill -TERM "$tls_pid" 2>/dev/null || true

# 8. SIGTERM: serve drains and exits 0.
kill -TERM "$serve_pid"
serve_status=0
wait "$serve_pid" || serve_status=$?
check "serve exits 0 on SIGTERM" test "$serve_status" = 0

# 9. No secret in anything printed.
leaks=0
for file in "$work"/*.log "$work"/*.out "$work"/*.err "$work/events.jsonl"; do
    for value in "$secret" "$customer_secret" "$NCS_ADMIN_TOKEN" SMOKE-STORAGE-SECRET; do
        if grep -qF -- "$value" "$file"; then echo "      a secret is in $(basename "$file")" >&2; leaks=1; fi
    done
done
check "no secret in the logs and outputs" test "$leaks" = 0

if [ "$failed" != 0 ]; then
    echo "==> serve.log (last 40 lines)" >&2; tail -40 "$work/serve.log" >&2
    echo "==> simulate.log (last 20 lines)" >&2; tail -20 "$work/simulate.log" >&2
    echo "==> release smoke: FAILED" >&2
    exit 1
fi
echo "==> release smoke: all checks passed"
