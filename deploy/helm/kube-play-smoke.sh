#!/usr/bin/env bash
# Smoke-runs the chart's rendered pods with `podman kube play` on this machine (no cluster):
# the migration Job's pod (to completion), then serve, a cpu worker and the DICOM node against
# a fresh PostgreSQL database and Redis on 127.0.0.1; passes when /api/v1/health/ready answers
# 200, the worker reports ready and the DICOM node answers a C-ECHO; then `podman kube down`.
# What podman cannot run is rewritten first (deploy/helm/kube_play_prepare.py says what).
# Skips (exit 77), saying why, without podman, the image, PostgreSQL or Redis.
#   deploy/helm/kube-play-smoke.sh
#   MEDAI_IMAGE=localhost/medai:0.1.0 MEDAI_SMOKE_PG=postgresql://postgres@127.0.0.1:5432/postgres \
#   MEDAI_SMOKE_REDIS=redis://127.0.0.1:6379/12 deploy/helm/kube-play-smoke.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/deploy/tools/smoke-common.sh"
READY_S="${MEDAI_SMOKE_READY_S:-420}"
# podman turns the probes into healthchecks run by systemd timers; systemd is not PID 1 here,
# so it logs an error per container (harmless: the script polls readiness itself)
quiet() { "$@" 2>&1 | { grep -v 'unable to get systemd connection' || true; }
          return "${PIPESTATUS[0]}"; }

command -v podman >/dev/null || skip "podman is not installed"
require_image_and_services
"$ROOT/deploy/tools/get-helm.sh" >/dev/null

WORK="$(mktemp -d "${TMPDIR:-/tmp}/medai-kube-play.XXXXXX")"
DB="medai_kubeplay_$$"
started=$(date +%s)
cleanup() {
    set +e
    for f in app migrate; do
        [[ -f $WORK/$f.yaml ]] && podman kube down "$WORK/$f.yaml" >/dev/null 2>&1
    done
    [[ -n ${DB_MADE:-} ]] && throwaway_db drop "$DB" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

# a fresh database (dropped at the end), two free loopback ports
read -r PORT DICOM_PORT < <("$PY" - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)
DB_MADE=1
throwaway_db create "$DB"

# the Secret's files, as the projected volume would hold them (uid 10001 reads them)
mkdir -p "$WORK/home" "$WORK/secrets"
pg_base="${PG%/*}"
printf '%s\n' "postgresql+psycopg://${pg_base#postgresql://}/$DB" > "$WORK/secrets/database-url"
printf '%s\n' "$REDIS" > "$WORK/secrets/broker-url"
"$PY" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())' \
    > "$WORK/secrets/secret-keys"
chown -R 10001:10001 "$WORK/home" "$WORK/secrets"
chmod 0750 "$WORK/home" "$WORK/secrets"
chmod 0440 "$WORK/secrets"/*

say "render the chart (serve on 127.0.0.1:$PORT, DICOM on 127.0.0.1:$DICOM_PORT, image $IMAGE)"
"$ROOT/deploy/dist/tools/bin/helm" template smoke "$ROOT/deploy/helm/medai" \
    -f "$ROOT/deploy/helm/test-values/kube-play.yaml" \
    --set "image.repository=${IMAGE%:*}" --set "image.tag=${IMAGE##*:}" \
    --set "serve.port=$PORT" --set "dicom.port=$DICOM_PORT" > "$WORK/rendered.yaml"
"$PY" "$ROOT/deploy/helm/kube_play_prepare.py" "$WORK/rendered.yaml" "$WORK" \
    "$WORK/home" "$WORK/secrets"

say "migration (the Job's pod)"
t_migrate=$(date +%s)
quiet podman kube play "$WORK/migrate.yaml" | grep -v '^$'
ctr="$(podman ps -a --filter label=app.kubernetes.io/component=migrate --format '{{.Names}}' \
       | grep -v -- '-infra$' | head -n 1)"
rc="$(podman wait "$ctr")"
podman logs "$ctr" 2>&1 | tail -n 5
[[ $rc == 0 ]] || { echo "FAIL: the migration exited $rc" >&2; exit 1; }
echo "migration: exit 0 after $(( $(date +%s) - t_migrate ))s"
quiet podman kube down "$WORK/migrate.yaml" >/dev/null

say "serve, worker, DICOM node"
t_app=$(date +%s)
quiet podman kube play "$WORK/app.yaml" | grep -v '^$'
deadline=$(( $(date +%s) + READY_S ))
code=000
until [[ $code == 200 ]]; do
    if (( $(date +%s) > deadline )); then
        podman ps -a --format '{{.Names}} {{.Status}}' >&2
        for c in $(podman ps -a --format '{{.Names}}' | grep -- '-smoke\|smoke-' | grep -v infra); do
            echo "--- $c" >&2; podman logs --tail 30 "$c" >&2
        done
        echo "FAIL: /api/v1/health/ready did not answer 200 within ${READY_S}s (last: $code)" >&2
        exit 1
    fi
    sleep 2
    code="$(curl -s -o "$WORK/ready.json" -w '%{http_code}' -H 'Host: localhost' \
            "http://127.0.0.1:$PORT/api/v1/health/ready" || true)"
done
echo "ready: 200 after $(( $(date +%s) - t_app ))s: $(head -c 300 "$WORK/ready.json")"

worker="$(podman ps --format '{{.Names}}' | grep -- 'worker-cpu' | grep -v infra | head -n 1)"
until podman logs "$worker" 2>&1 | grep -q ' ready\.'; do
    (( $(date +%s) < deadline )) || { podman logs --tail 30 "$worker" >&2;
                                      echo "FAIL: the worker never said ready" >&2; exit 1; }
    sleep 2
done
echo "worker $worker: $(podman logs "$worker" 2>&1 | grep -m1 ' ready\.')"

"$PY" - "$DICOM_PORT" <<'PY'
import sys
from pynetdicom import AE
ae = AE(ae_title="SMOKE")
ae.add_requested_context("1.2.840.10008.1.1")
assoc = ae.associate("127.0.0.1", int(sys.argv[1]), ae_title="MEDAI")
if not assoc.is_established:
    sys.exit("FAIL: the DICOM node refused the association")
status = assoc.send_c_echo()
assoc.release()
print(f"dicom: C-ECHO status 0x{status.Status:04x}")
sys.exit(status.Status != 0)
PY

say "the running pods"
serve="$(podman ps --format '{{.Names}}' | grep -- 'serve-pod' | grep -v infra | head -n 1)"
for c in $(podman ps --format '{{.Names}}' | grep -- '-pod-0-' | grep -v infra); do
    # uid, read-only root, capabilities as rendered (securityContext)
    podman inspect "$c" --format '{{.Name}}: user {{.Config.User}}, read-only root {{.HostConfig.ReadonlyRootfs}}, caps {{.EffectiveCaps}}'
done
if podman exec "$serve" sh -c 'touch /opt/medai/x' 2>/dev/null; then
    echo "FAIL: the root filesystem is writable" >&2; exit 1
fi
podman exec "$serve" sh -c 'id -u; touch /tmp/x /var/lib/medai/x && rm /tmp/x /var/lib/medai/x' \
    | sed 's/^/serve: uid /; s/$/, \/tmp and MEDAI_HOME writable, the root not/'
podman stats --no-stream --format '{{.Name}} {{.MemUsage}} {{.CPUPerc}}' | grep -- '-pod-0-' || true

say "podman kube down"
quiet podman kube down "$WORK/app.yaml"
echo "deploy/helm/kube-play-smoke.sh: passed in $(( $(date +%s) - started ))s"
