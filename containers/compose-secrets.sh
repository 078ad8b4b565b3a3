#!/usr/bin/env bash
# Generate the secrets compose.yaml needs into an env file (default: .env beside
# compose.yaml, which compose reads), mode 0600. A variable already in the file is kept,
# so running it again changes nothing; one exported in the shell wins over the file.
#   MOSAIC_API_TOKEN, MOSAIC_ADMIN_TOKEN        gateway bearer tokens (operator, admin)
#   NATS_<USER>_PASSWORD                        one per NATS user (containers/nats/auth.conf)
#   VALKEY_PASSWORD                             Valkey's requirepass (and the sentinels')
#   NATS_ROUTE_PASSWORD                         NATS nodes' routes (compose.cluster.yaml)
# Which service receives which: docs/deploy.md ("Secrets"). The model key
# (ANTHROPIC_API_KEY) is yours to add.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
file=${1:-$root/.env}
umask 077
touch "$file"
chmod 600 "$file"
names=(MOSAIC_API_TOKEN MOSAIC_ADMIN_TOKEN VALKEY_PASSWORD NATS_ROUTE_PASSWORD)
for user in admin gateway spawner gitops gates killswitch; do
    names+=("NATS_${user^^}_PASSWORD")
done
added=0
for name in "${names[@]}"; do
    if ! grep -q "^${name}=" "$file"; then
        printf '%s=%s\n' "$name" "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" >>"$file"
        added=$((added + 1))
    fi
done
printf '[compose-secrets] %s: %d added, %d kept\n' "$file" "$added" $((${#names[@]} - added)) >&2
