#!/bin/bash
# localhost/medai-infra: Debian's PostgreSQL 15, Redis 7, nginx and Orthanc, one per container,
# for a site that does not run its own (deploy/compose/compose.yaml uses them):
#   postgres   PGDATA (default /var/lib/postgresql/data, a volume); on first start a cluster
#              with role and database "medai" whose password is read from
#              MEDAI_DB_PASSWORD_FILE; connections over the network need that password
#              (scram-sha-256); the superuser has no password (local peer login only)
#   redis      the broker; password from REDIS_PASSWORD_FILE; append-only file in /data
#   nginx      the front door; /etc/nginx/templates/*.template → conf.d with @HTTPS_PORT@ and
#              @RESOLVER@ (the container's DNS server, so replicas are found by name) filled in
#   orthanc    Orthanc with DICOMweb; configuration in /etc/orthanc (mount your own)
# Each reads its secret as root, then drops to the service's own user with setpriv.
set -euo pipefail

say() { printf 'medai-infra: %s\n' "$*" >&2; }
as() { local user=$1; shift; exec setpriv --reuid="$user" --regid="$user" --init-groups "$@"; }
secret() {  # FILE: its first line (the secret), or exit naming the file
    [ -r "$1" ] || { say "cannot read secret file ${1:-'(not set)'}"; exit 2; }
    head -n 1 "$1" | tr -d '\r\n'
}

postgres_role() {
    local data=${PGDATA:-/var/lib/postgresql/data} password
    install -d -o postgres -g postgres -m 0700 "$data"
    install -d -o postgres -g postgres -m 2775 /var/run/postgresql
    if [ ! -s "$data/PG_VERSION" ]; then
        password=$(secret "${MEDAI_DB_PASSWORD_FILE:-}")
        say "initialising a new cluster in $data"
        setpriv --reuid=postgres --regid=postgres --init-groups \
            initdb -D "$data" --encoding=UTF8 --locale=C.UTF-8 --auth-local=peer \
            --auth-host=scram-sha-256 >/dev/null
        setpriv --reuid=postgres --regid=postgres --init-groups \
            pg_ctl -D "$data" -w -o "-c listen_addresses=''" start >/dev/null
        # the password travels on stdin as a psql variable: never on a command line
        printf '%s\n' "CREATE ROLE medai LOGIN PASSWORD :'pw';" "CREATE DATABASE medai OWNER medai;" \
            | setpriv --reuid=postgres --regid=postgres --init-groups \
                psql -v ON_ERROR_STOP=1 -v pw="$password" -q -d postgres
        setpriv --reuid=postgres --regid=postgres --init-groups \
            pg_ctl -D "$data" -w -m fast stop >/dev/null
        {
            echo "listen_addresses = '*'"
            echo "password_encryption = 'scram-sha-256'"
            echo "max_connections = ${POSTGRES_MAX_CONNECTIONS:-200}"
        } >> "$data/postgresql.auto.conf"
        echo "host all all all scram-sha-256" >> "$data/pg_hba.conf"
        say "role and database medai created"
    fi
    as postgres postgres -D "$data"
}

redis_role() {
    local password conf=/run/redis.conf
    password=$(secret "${REDIS_PASSWORD_FILE:-}")
    install -d -o redis -g redis -m 0750 /data
    umask 077
    cat > "$conf" <<EOF
bind 0.0.0.0
protected-mode no
port 6379
dir /data
appendonly yes
appendfsync everysec
save ""
requirepass $password
EOF
    chown redis:redis "$conf"
    as redis redis-server "$conf"
}

nginx_role() {
    local resolver https=${MEDAI_HTTPS_PORT:-443} suffix="" t
    resolver=$(awk '/^nameserver/ {print $2; exit}' /etc/resolv.conf)
    [ "$https" = 443 ] || suffix=":$https"
    for t in /etc/nginx/templates/*.template; do
        [ -e "$t" ] || continue
        sed -e "s|@RESOLVER@|${resolver:-127.0.0.11}|g" -e "s|@HTTPS_SUFFIX@|$suffix|g" "$t" \
            > "/etc/nginx/conf.d/$(basename "$t" .template)"
    done
    nginx -t -q
    exec nginx -g 'daemon off;'
}

orthanc_role() {
    install -d -o orthanc -g orthanc -m 0750 /var/lib/orthanc/db
    as orthanc Orthanc /etc/orthanc/
}

case "${1:-help}" in
    postgres) postgres_role ;;
    redis) redis_role ;;
    nginx) nginx_role ;;
    orthanc) orthanc_role ;;
    help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) exec "$@" ;;
esac
