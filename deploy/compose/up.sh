#!/usr/bin/env bash
# Bring medai up on this host with one command: site certificate and secrets made if missing,
# images built only if missing (BUILD=0: refuse instead; an image already there is reused:
# deploy/image/build.sh rebuilds one), the backup folder made for uid 10001,
# `podman-compose up -d`, a wait until https://SITE:PORT/api/v1/health/ready answers 200
# through nginx, then the first admin: when the database has none, an account `admin` with a
# one-time enrolment code, printed once (on standard error, for the operator, and as JSON on
# standard output, the only thing written there); its holder chooses the password at
# https://SITE/enrol. No admin password is made, stored or mounted; a secrets/admin_password
# left by an older up.sh is deleted.
#
# Run again: `up -d` recreates only the services whose configuration changed, and the services
# that depend on them (a changed serve recreates nginx: HTTPS is down until both are back,
# ~25 s); with nothing changed nothing is recreated and 443 stays up. One service alone:
# podman-compose -p medai -f deploy/compose/compose.yaml up -d --no-deps SERVICE
#
# Environment (all optional): MEDAI_SITE_NAME (default localhost), MEDAI_HTTPS_PORT (443),
# MEDAI_HTTP_PORT (80), MEDAI_SECRETS_DIR (deploy/compose/secrets), MEDAI_BACKUP_DIR
# (/srv/backups), MEDAI_UP_TIMEOUT (900 s), COMPOSE_PROJECT_NAME (medai), COMPOSE_PROFILES
# (e.g. pacs), PODMAN_COMPOSE (the command), and every ${...} of compose.yaml.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/deploy/image/containers.conf}
export MEDAI_SECRETS_DIR=${MEDAI_SECRETS_DIR:-$here/secrets}
export MEDAI_SITE_NAME=${MEDAI_SITE_NAME:-localhost}
export MEDAI_HTTPS_PORT=${MEDAI_HTTPS_PORT:-443}
project=${COMPOSE_PROJECT_NAME:-medai}
t0=$(date +%s)
say() { printf '[up %4ss] %s\n' "$(( $(date +%s) - t0 ))" "$*" >&2; }
die() { say "error: $*"; exit 1; }

compose_cmd() {
    if [ -n "${PODMAN_COMPOSE:-}" ]; then echo "$PODMAN_COMPOSE"
    elif [ -x "$root/deploy/dist/tools-venv/bin/podman-compose" ]; then
        echo "$root/deploy/dist/tools-venv/bin/podman-compose"
    else  # Debian's 1.0.3 refuses host networking and lacks profiles: 1.6 from PyPI
        say "installing podman-compose 1.6 into deploy/dist/tools-venv"
        python3 -m venv "$root/deploy/dist/tools-venv" >&2 \
            && "$root/deploy/dist/tools-venv/bin/pip" install -q 'podman-compose==1.6.*' >&2 \
            || die "could not install podman-compose (offline? copy deploy/dist/tools-venv" \
                   "from a connected host, or set PODMAN_COMPOSE)"
        echo "$root/deploy/dist/tools-venv/bin/podman-compose"
    fi
}
read -r -a compose <<< "$(compose_cmd)"
[ ${#compose[@]} -gt 0 ] || exit 1
compose+=(-p "$project" -f "$here/compose.yaml")

# --- images ----------------------------------------------------------------------------------
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/src/medai/__init__.py" 2>/dev/null || true)
export MEDAI_VERSION=${MEDAI_VERSION:-${version:-latest}}
missing=()
for image in medai medai-infra; do
    podman image exists "localhost/$image:$MEDAI_VERSION" || missing+=("$image")
done
if [ ${#missing[@]} -gt 0 ]; then
    [ "${BUILD:-1}" != 0 ] || die "missing images: ${missing[*]} (deploy/image/build.sh all," \
                                  "or podman load -i the saved images)"
    case "${missing[*]}" in medai) what=medai ;; medai-infra) what=infra ;; *) what=all ;; esac
    say "building the missing images (${missing[*]})"
    "$root/deploy/image/build.sh" "$what" >&2
else
    say "images $MEDAI_VERSION found: reused (deploy/image/build.sh rebuilds them)"
fi

# --- the certificate and the secrets ------------------------------------------------------------
"$here/make-cert.sh" "$MEDAI_SITE_NAME" >&2
s=$MEDAI_SECRETS_DIR
umask 027
mkdir -p "$s"
new_secret() {  # NAME VALUE: written once, never overwritten
    [ -s "$s/$1" ] && return 1
    printf '%s\n' "$2" > "$s/$1.tmp" && mv "$s/$1.tmp" "$s/$1"
}
rand() { openssl rand -hex "${1:-24}"; }
# a Fernet key: 32 random bytes, URL-safe base64 (what `medai keys generate` prints)
new_secret secret_keys "$(openssl rand 32 | base64 | tr '+/' '-_')" && say "made secret_keys"
if [ ! -s "$s/db_password" ] || [ ! -s "$s/database_url" ]; then
    pw=$(rand)
    new_secret db_password "$pw" || pw=$(head -n1 "$s/db_password")
    new_secret database_url "postgresql+psycopg://medai:$pw@postgres:5432/medai" || true
    say "made the database password and URL"
fi
if [ ! -s "$s/redis_password" ] || [ ! -s "$s/broker_url" ]; then
    pw=$(rand)
    new_secret redis_password "$pw" || pw=$(head -n1 "$s/redis_password")
    new_secret broker_url "redis://:$pw@redis:6379/0" || true
    say "made the broker password and URL"
fi
if [ -e "$s/admin_password" ]; then  # an older up.sh's: a password in clear, never needed again
    rm -f "$s/admin_password"
    say "deleted $s/admin_password (made by an older up.sh); if 'admin' still signs in with" \
        "that password, change it: medai users reset admin (a new enrolment code)"
fi
# the containers run as uid/gid 10001 and see the files as they are here (bind mounts)
chgrp 10001 "$s" "$s"/* 2>/dev/null || true
chmod 0750 "$s"
chmod 0640 "$s"/secret_keys "$s"/db_password "$s"/database_url "$s"/redis_password \
    "$s"/broker_url
# where `medai backup` writes (docs/deploy/backup.md): the containers' uid 10001 only
backups=${MEDAI_BACKUP_DIR:-/srv/backups}
install -d -o 10001 -g 10001 -m 0700 "$backups"

# --- up -------------------------------------------------------------------------------------------
say "starting ($project, images $MEDAI_VERSION)"
"${compose[@]}" up -d >&2
up_at=$(date +%s)
port=$MEDAI_HTTPS_PORT
url="https://$MEDAI_SITE_NAME:$port/api/v1/health/ready"
deadline=$(( $(date +%s) + ${MEDAI_UP_TIMEOUT:-900} ))
code=000
while [ "$(date +%s)" -lt "$deadline" ]; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$s/tls/ca.crt" \
           --resolve "$MEDAI_SITE_NAME:$port:127.0.0.1" "$url" || true)
    [ "$code" = 200 ] && break
    migrate_exit=$(podman inspect "${project}_migrate_1" --format '{{.State.Status}} {{.State.ExitCode}}' \
                   2>/dev/null || true)
    case "$migrate_exit" in exited\ [1-9]*)
        "${compose[@]}" logs migrate >&2 || true
        die "the migration job failed ($migrate_exit)" ;;
    esac
    sleep 3
done
[ "$code" = 200 ] || die "not ready after ${MEDAI_UP_TIMEOUT:-900} s (last answer $code):" \
                         "${compose[*]} logs"
say "ready: https://$MEDAI_SITE_NAME:$port/ ($(( $(date +%s) - up_at )) s after up -d)"

# --- the first admin: an enrolment code, once, only while the database has no admin ----------
admin=$(podman exec "${project}_serve_1" /opt/medai/bin/python \
        /usr/local/lib/medai-image/medai_wait.py first-admin) \
    || die "could not make the first admin (see above)"
if python3 -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1])["created"] else 1)' "$admin"
then
    python3 - "$admin" "https://$MEDAI_SITE_NAME:$port/enrol" <<'PY' >&2
import json, sys
a = json.loads(sys.argv[1])
c = a["enrol_code"]
print(f"first admin '{a['username']}': one-time enrolment code {c[:4]}-{c[4:8]}-{c[8:]}, valid "
      f"until {a['enrol_code_expires_at']} (shown once, stored nowhere): open {sys.argv[2]} and "
      "choose the password (or `medai users enrol CODE --password-stdin` in the serve container)")
PY
    printf '%s\n' "$admin"
else
    say "the site has an admin: none made (its enrolment code lost before use? a new one:" \
        "podman exec -it ${project}_serve_1 medai users reset admin)"
fi
