#!/usr/bin/env bash
# deploy-deps' last step: the smokes and drills that run medai's image against this host
# (kube-play-smoke, systemd-boot-smoke, two-node-check, backup-drill) need PostgreSQL on
# 127.0.0.1:5432 with a role `postgres` that may log in over TCP without a password (trust, a
# test host only; MEDAI_SMOKE_PG names another) and Redis on 127.0.0.1:6379. Starts Debian's
# cluster and a Redis when they do not answer (hosts without systemd as PID 1 included);
# changes no authentication setting itself: it says what to change when the login fails.
set -euo pipefail

answers() { timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

if ! answers 5432; then
    cluster=$(pg_lsclusters --no-header 2>/dev/null | awk 'NR==1 {print $1" "$2}')
    [ -n "$cluster" ] || { echo "services-up: no PostgreSQL cluster (apt-get install postgresql)" >&2; exit 1; }
    echo "services-up: starting PostgreSQL $cluster"
    # shellcheck disable=SC2086
    pg_ctlcluster $cluster start
fi
if ! answers 6379; then
    echo "services-up: starting redis-server on 127.0.0.1:6379"
    redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' >/dev/null
fi
for _ in $(seq 30); do answers 5432 && answers 6379 && break; sleep 1; done
answers 5432 && answers 6379 || { echo "services-up: PostgreSQL or Redis does not answer" >&2; exit 1; }
pg=${MEDAI_SMOKE_PG:-postgresql://postgres@127.0.0.1:5432/postgres}
if ! psql "$pg" -Atqc 'select 1' >/dev/null 2>&1; then
    echo "services-up: '$pg' does not log in: on a test host add 'host all postgres" \
         "127.0.0.1/32 trust' first in pg_hba.conf and reload (or set MEDAI_SMOKE_PG)" >&2
    exit 1
fi
echo "services-up: PostgreSQL and Redis answer on 127.0.0.1"
