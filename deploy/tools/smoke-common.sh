# Sourced by the smoke scripts that run medai's image against this host's PostgreSQL and Redis
# (deploy/helm/kube-play-smoke.sh, deploy/systemd/boot-smoke.sh): their settings, how they
# skip (exit 77, saying why), and a throw-away database. The sourcing script sets ROOT first.
#   MEDAI_IMAGE (localhost/medai:latest), MEDAI_SMOKE_PG (postgresql://postgres@127.0.0.1:5432/
#   postgres: a role that may create databases), MEDAI_SMOKE_REDIS (redis://127.0.0.1:6379/12)
export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/deploy/image/containers.conf}"
IMAGE="${MEDAI_IMAGE:-localhost/medai:latest}"
PG="${MEDAI_SMOKE_PG:-postgresql://postgres@127.0.0.1:5432/postgres}"
REDIS="${MEDAI_SMOKE_REDIS:-redis://127.0.0.1:6379/12}"
PY="$ROOT/.venv/bin/python"
skip() { echo "SKIP: $*" >&2; exit 77; }
say() { printf '== %s\n' "$*"; }

# skip unless the venv, the image, PostgreSQL and Redis are there
require_image_and_services() {
    [[ -x $PY ]] || skip "the project venv (.venv) is missing: make install"
    podman image exists "$IMAGE" || skip "image $IMAGE not found (make image builds it)"
    "$PY" - "$PG" "$REDIS" <<'PY' || skip "PostgreSQL ($PG) or Redis ($REDIS) does not answer"
import socket, sys
from urllib.parse import urlsplit
for url in sys.argv[1:]:
    u = urlsplit(url)
    socket.create_connection((u.hostname, u.port), timeout=3).close()
PY
}

# throwaway_db create|drop NAME: a fresh database on $PG (dropped first if a crash left it)
throwaway_db() {
    "$PY" - "$PG" "$2" "$1" <<'PY'
import sys
import psycopg
url, name, action = sys.argv[1:4]
with psycopg.connect(url, autocommit=True) as conn:
    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if action == "create":
        conn.execute(f'CREATE DATABASE "{name}"')
PY
}
