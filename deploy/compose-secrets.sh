#!/usr/bin/env bash
# Makes the secrets compose.yaml reads, in deploy/secrets/ (or $NCS_SECRETS_DIR). Files that
# already exist are kept, so running it again never changes a secret. Prints no secret.
#
#   NCS_SECRETS='<secret from Agora Console>' AGORA_CUSTOMER_ID=… AGORA_CUSTOMER_SECRET=… ./compose-secrets.sh
#
#   ncs-secrets        the NCS secret(s), one per line (from NCS_SECRETS, comma separated)
#   agora-customer-id, agora-customer-secret
#                      Agora's RESTful API credentials, for restarts (from AGORA_CUSTOMER_ID and
#                      AGORA_CUSTOMER_SECRET; empty when those are unset: no restarts)
#   admin-token        a random admin bearer token
#   postgres-password  a random PostgreSQL password
#   store.env          NCS_STORE_URL for the receivers, with that password
#   tls/               fullchain.pem and privkey.pem for nginx; a self-signed pair is made if
#                      none is there (for trying things only: Agora Console refuses it, 592)
#
# The folder is 0700 and its files 0644 (the TLS key 0600): compose bind-mounts secret files
# with their host modes, and the receiver (uid 10001) and PostgreSQL (uid 999) must read theirs.
set -euo pipefail
cd "$(dirname "$0")"
dir=${NCS_SECRETS_DIR:-./secrets}
umask 022
mkdir -p "$dir/tls"
chmod 0700 "$dir"

made=()
if [ ! -s "$dir/ncs-secrets" ]; then
    if [ -n "${NCS_SECRETS:-}" ]; then
        printf '%s\n' "$NCS_SECRETS" | tr ',' '\n' | sed 's/^[[:space:]]*//;s/[[:space:]]*$//' | grep -v '^$' >"$dir/ncs-secrets"
        made+=(ncs-secrets)
    else
        printf '# One NCS secret per line, from Agora Console (Notifications > Cloud Recording).\n' >"$dir/ncs-secrets"
        echo "!! $dir/ncs-secrets has no secret yet: the receivers will not start until you add one" >&2
    fi
fi
# Written without a trailing newline: serve keeps one as part of the value (for now).
for name in AGORA_CUSTOMER_ID AGORA_CUSTOMER_SECRET; do
    file=$dir/$(echo "$name" | tr 'A-Z_' 'a-z-')
    if [ ! -e "$file" ] || { [ ! -s "$file" ] && [ -n "${!name:-}" ]; }; then
        printf '%s' "${!name:-}" >"$file"
        [ -z "${!name:-}" ] || made+=("$(basename "$file")")
    fi
done
if [ ! -s "$dir/agora-customer-id" ]; then
    echo "!! no Agora REST credentials: recordings cannot be started or restarted (set AGORA_CUSTOMER_ID/SECRET and run again)" >&2
fi
if [ ! -s "$dir/admin-token" ]; then
    # No trailing newline: serve would keep it as part of the token (for now).
    openssl rand -hex 32 | tr -d '\n' >"$dir/admin-token"
    made+=(admin-token)
fi
if [ ! -s "$dir/postgres-password" ]; then
    openssl rand -hex 24 >"$dir/postgres-password"
    made+=(postgres-password)
fi
if [ ! -s "$dir/store.env" ]; then
    # sslmode=disable: PostgreSQL is on the compose network only and has no certificate.
    printf 'NCS_STORE_URL=postgres://ncs:%s@postgres:5432/ncs?sslmode=disable\n' "$(cat "$dir/postgres-password")" >"$dir/store.env"
    made+=(store.env)
fi
if [ ! -s "$dir/tls/fullchain.pem" ] || [ ! -s "$dir/tls/privkey.pem" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=${NCS_TLS_NAME:-localhost}" \
        -addext "subjectAltName=DNS:${NCS_TLS_NAME:-localhost}" \
        -keyout "$dir/tls/privkey.pem" -out "$dir/tls/fullchain.pem" 2>/dev/null
    made+=("tls (self-signed: for testing only)")
fi
chmod 0644 "$dir"/ncs-secrets "$dir"/admin-token "$dir"/postgres-password "$dir"/store.env "$dir"/tls/fullchain.pem \
    "$dir"/agora-customer-id "$dir"/agora-customer-secret
chmod 0600 "$dir"/tls/privkey.pem   # read by nginx's master process, which runs as root
if [ ${#made[@]} -gt 0 ]; then
    printf 'made in %s: %s\n' "$dir" "$(IFS=,; echo "${made[*]}" | sed 's/,/, /g')"
else
    echo "nothing to make: every file is already in $dir"
fi
