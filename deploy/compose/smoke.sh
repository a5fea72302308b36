#!/usr/bin/env bash
# The compose stack's smoke test, end to end through the front door (HTTPS, the demo CA):
# up (deploy/compose/up.sh), ready, the first admin chooses a password with the one-time
# enrolment code up.sh printed (used once), signs in, a radiologist is added on the
# server's shell (enrolment code, own password, the second person's approval), a chest image is
# uploaded and analysed by a Celery worker (serve runs no analysis threads), the report is
# signed, exported as FHIR through the API and delivered by the outbox to a FHIR server
# (fhir-sink) and over DICOMweb to Orthanc (the `pacs` profile), HTTP redirects to HTTPS and
# /metrics is refused at the door (and names the build's commit and the site certificate's
# expiry inside); a calling AE title not in MEDAI_DICOM_ALLOW is rejected; PostgreSQL is
# stopped and started without crash recovery (SIGINT, its fast shutdown); a worker whose
# process is killed (as the OOM killer does) comes back by its restart policy; then `down -v`.
# Exits non-zero at the first failure and prints the time of each step.
#
# It runs as its own compose project (medai-smoke) on its own ports, subnet and secrets, so a
# site's `medai` project on the same host is not touched. KEEP=1 leaves the stack up.
# MEDAI_SMOKE_IMAGE: the PNG to upload (default: a real chest film from ../shared/data when
# present, else — or when set empty — a generated one, which the chest model's gate refuses:
# then the report is written and signed by hand, as for any refused study).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/deploy/image/containers.conf}
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-medai-smoke}
# PACS=0 leaves Orthanc out; with it, results also go to Orthanc over DICOMweb (STOW-RS)
if [ "${PACS:-1}" != 0 ]; then
    export COMPOSE_PROFILES=smoke,pacs
    export MEDAI_DICOMWEB_URL=http://orthanc:8042/dicom-web
    export MEDAI_ORTHANC_HTTP_PUBLISH=${MEDAI_ORTHANC_HTTP_PUBLISH:-18042}
    export MEDAI_ORTHANC_DICOM_PUBLISH=${MEDAI_ORTHANC_DICOM_PUBLISH:-14242}
else
    export COMPOSE_PROFILES=smoke
fi
export MEDAI_SECRETS_DIR=${MEDAI_SECRETS_DIR:-$root/deploy/dist/smoke-secrets}
export MEDAI_BACKUP_DIR=${MEDAI_BACKUP_DIR:-$root/deploy/dist/smoke-backups}
export MEDAI_SITE_NAME=${MEDAI_SITE_NAME:-localhost}
export MEDAI_HTTPS_PORT=${MEDAI_HTTPS_PORT:-18443}
export MEDAI_HTTP_PORT=${MEDAI_HTTP_PORT:-18080}
export MEDAI_DICOM_PUBLISH=${MEDAI_DICOM_PUBLISH:-21112}
export MEDAI_SUBNET=${MEDAI_SUBNET:-10.89.147.0/24}
export MEDAI_SUBNET_RANGE=${MEDAI_SUBNET_RANGE:-10.89.147.0/25}
export MEDAI_PROXY_ADDRESS=${MEDAI_PROXY_ADDRESS:-10.89.147.250}
export MEDAI_FHIR_URL=http://fhir-sink:8080/fhir
# the smoke's modality (smoke_dicom.py, the C-ECHO below) calls as SMOKE; INTRUDER is refused
export MEDAI_DICOM_ALLOW='["SMOKE"]'
project=$COMPOSE_PROJECT_NAME
PASSWORD=${MEDAI_SMOKE_PASSWORD:-mavi-deniz-fener-77-smoke}
RAD=dr.smoke

t0=$(date +%s); step_t=$t0
timings=()
say() { printf '[smoke %4ss] %s\n' "$(( $(date +%s) - t0 ))" "$*" >&2; }
step() {  # NAME: closes the previous step's timing
    local now; now=$(date +%s)
    [ -z "${current:-}" ] || timings+=("$(printf '%-58s %4ss' "$current" "$(( now - step_t ))")")
    current=$1; step_t=$now
    [ -z "$1" ] || say "$1"
}
fail() { say "FAILED: $*"; exit 1; }

compose=("${PODMAN_COMPOSE:-$root/deploy/dist/tools-venv/bin/podman-compose}" -p "$project"
         -f "$here/compose.yaml")
teardown() {  # what `down -v` leaves (replicas beyond the file's count): by the project label
    local label=label=io.podman.compose.project=$project
    podman ps -a -q --filter "$label" | xargs -r podman rm -f -t 10 >/dev/null 2>&1 || true
    podman volume ls -q --filter "$label" | xargs -r podman volume rm -f >/dev/null 2>&1 || true
    podman network ls -q --filter "$label" | xargs -r podman network rm -f >/dev/null 2>&1 || true
}
cleanup() {
    local rc=$?
    step ""
    if [ "$rc" != 0 ]; then
        say "logs of the failed run (last lines of each service):"
        for c in $(podman ps -a --filter "label=io.podman.compose.project=$project" \
                   --format '{{.Names}}'); do
            echo "--- $c" >&2; podman logs --tail 25 "$c" 2>&1 | sed 's/^/    /' >&2 || true
        done
    fi
    [ -z "${generated:-}" ] || rm -f "$generated"
    if [ -z "${KEEP:-}" ]; then
        local d0; d0=$(date +%s)
        "${compose[@]}" down -v >/dev/null 2>&1 || true
        teardown
        timings+=("$(printf '%-58s %4ss' "down -v" "$(( $(date +%s) - d0 ))")")
    fi
    printf '\nsmoke timings (%s):\n' "$([ "$rc" = 0 ] && echo passed || echo FAILED)" >&2
    printf '  %s\n' "${timings[@]}" >&2
    printf '  %-58s %4ss\n' total "$(( $(date +%s) - t0 ))" >&2
    exit "$rc"
}
trap cleanup EXIT

base="https://$MEDAI_SITE_NAME:$MEDAI_HTTPS_PORT"
CURL=(curl -sS --max-time 60 --cacert "$MEDAI_SECRETS_DIR/tls/ca.crt"
      --resolve "$MEDAI_SITE_NAME:$MEDAI_HTTPS_PORT:127.0.0.1")
api() {  # METHOD PATH [curl args...]: the body on stdout; fails on a non-2xx answer
    local method=$1 path=$2; shift 2
    local out code
    out=$("${CURL[@]}" -X "$method" -w '\n%{http_code}' "$@" "$base$path") || return 1
    code=${out##*$'\n'}; out=${out%$'\n'*}
    if [ "${code:0:1}" != 2 ]; then say "$method $path → $code: ${out:0:400}"; return 1; fi
    printf '%s' "$out"
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
in_serve() { podman exec -i "${project}_serve_1" /usr/local/bin/medai-entrypoint "$@"; }

# --- up ---------------------------------------------------------------------------------------
step "up (certificate, secrets, up -d, ready)"
"${compose[@]}" down -v >/dev/null 2>&1 || true  # a previous run's leftovers
teardown
admin_json=$("$here/up.sh")  # its standard output: the first admin's code, as JSON
[ ! -e "$MEDAI_SECRETS_DIR/admin_password" ] || fail "an admin password file was made"

step "first admin enrols (one-time code), signs in"
admin_code=$(json 'd["enrol_code"]' <<< "$admin_json") || fail "up.sh made no first admin"
ADMIN_PW=kestane-kebap-ilkbahar-smoke
enrol_body="{\"code\": \"$admin_code\", \"password\": \"$ADMIN_PW\"}"
api POST /api/v1/auth/enrol -H 'content-type: application/json' -d "$enrol_body" >/dev/null \
    || fail "admin enrol"
again=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
        -d "$enrol_body" "$base/api/v1/auth/enrol")
[ "$again" = 404 ] || fail "the admin's enrolment code worked twice ($again)"
ADMIN=$(api POST /api/v1/auth/login -H 'content-type: application/json' \
        -d "{\"username\": \"admin\", \"password\": \"$ADMIN_PW\"}" | json 'd["access_token"]') \
    || fail "admin login"
role=$(api GET /api/v1/auth/me -H "Authorization: Bearer $ADMIN" | json 'd["role"]')
[ "$role" = admin ] || fail "admin's role is $role"
second=$(podman exec "${project}_serve_1" /opt/medai/bin/python \
         /usr/local/lib/medai-image/medai_wait.py first-admin)
[ "$(json 'd["created"]' <<< "$second")" = False ] || fail "a second first admin: $second"

step "a radiologist (enrol, approve)"
code=$(in_serve users add "$RAD" --role radiologist --json | json 'd["enrol_code"]') \
    || fail "users add"
printf '%s\n' "$PASSWORD" | in_serve users enrol "$code" --password-stdin >/dev/null \
    || fail "users enrol"
in_serve users approve "$RAD" >/dev/null || fail "users approve"
TOKEN=$(api POST /api/v1/auth/login -H 'content-type: application/json' \
        -d "{\"username\": \"$RAD\", \"password\": \"$PASSWORD\"}" | json 'd["access_token"]') \
    || fail "radiologist login"
AUTH=(-H "Authorization: Bearer $TOKEN")

step "upload a chest image"
image=${MEDAI_SMOKE_IMAGE-$(ls "$root"/../shared/data/chest_xray/images/kermany_NORMAL*.png \
                             2>/dev/null | head -1 || true)}
if [ -z "$image" ]; then
    image=$(mktemp --suffix=.png)
    generated=$image
    python3 - "$image" <<'PY'
import random, struct, sys, zlib
w, h = 96, 80  # a gray noise image: a valid PNG, no chest film
rnd = random.Random(7)
rows = b"".join(b"\0" + bytes(rnd.randrange(256) for _ in range(w)) for _ in range(h))
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
open(sys.argv[1], "wb").write(png)
PY
fi
say "image: $image"
study=$(api POST /api/v1/studies "${AUTH[@]}" -F "file=@$image;type=image/png" -F task=cxr \
        -F lang=en -F patient_ref=SMOKE-1) || fail "upload"
sid=$(json 'd["id"]' <<< "$study")

analysed() {  # STUDY_ID: waits until a worker analysed it; prints its status
    local status=
    for _ in $(seq 600); do
        status=$(api GET "/api/v1/studies/$1" "${AUTH[@]}" | json 'd["status"]') || return 1
        case "$status" in received|analysing) sleep 1 ;; *) break ;; esac
    done
    case "$status" in
        ai_drafted|refused) echo "$status" ;;
        *) say "study $1 ended $status"; return 1 ;;
    esac
}
sign() {  # STUDY_ID STATUS: the radiologist signs (a refused study is reported by hand)
    local version body signed
    if [ "$2" = ai_drafted ]; then
        version=$(api GET "/api/v1/studies/$1/report" "${AUTH[@]}" | json 'd["version"]')
        body="{\"version\": $version}"
    else  # refused by the model's gate: written by hand, as the UI offers
        body='{"version": 0, "sections": {"technique": "PA chest radiograph.", "findings":
              "Smoke test image; no diagnostic content.", "impression": "Not diagnostic.",
              "recommendation": ""}}'
    fi
    signed=$(api POST "/api/v1/studies/$1/report/sign" "${AUTH[@]}" \
             -H 'content-type: application/json' -d "$body") || return 1
    [ "$(json 'd["status"]' <<< "$signed")" = final ] || { say "not final: $signed"; return 1; }
}

step "analysed by a worker"
status=$(analysed "$sid") || fail "study $sid was not analysed"
say "study $sid: $status"
# serve runs no analysis threads (MEDAI_JOB_THREADS=0): the Celery worker did it (the log is
# read whole before grep: `podman logs | grep -q` fails under pipefail when grep stops early)
worker_done() {
    grep -q "Task medai.analyse_study.* succeeded" <<< "$(podman logs "${project}_worker-cpu_1" 2>&1)"
}
for _ in $(seq 60); do worker_done && break; sleep 1; done
worker_done || fail "the cpu worker's log shows no finished analysis"

step "sign the report"
sign "$sid" "$status" || fail "sign study $sid"

step "FHIR export (API)"
fhir=$(api GET "/api/v1/studies/$sid/report/fhir" "${AUTH[@]}") || fail "FHIR export"
python3 -c '
import json, sys
b = json.loads(sys.argv[1])
assert b["resourceType"] == "Bundle", b.get("resourceType")
reports = [e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"]
assert reports and reports[0]["status"] == "final", reports
' "$fhir" || fail "the FHIR export is not a Bundle with a final DiagnosticReport"

step "FHIR delivery (outbox → fhir-sink)"
delivered=
for _ in $(seq 120); do
    got=$(podman exec "${project}_fhir-sink_1" /opt/medai/bin/python -c '
import urllib.request
print(urllib.request.urlopen("http://127.0.0.1:8080/fhir/DiagnosticReport").read().decode())' \
          2>/dev/null || true)
    if python3 -c 'import json,sys; r=json.loads(sys.argv[1])["reports"]; \
                   sys.exit(0 if any(x["status"] == "final" for x in r) else 1)' "$got" 2>/dev/null
    then delivered=1; break; fi
    sleep 1
done
[ -n "$delivered" ] || fail "no final DiagnosticReport reached the FHIR server: $got"

if [ "${PACS:-1}" != 0 ]; then
    step "a study over DICOM (C-STORE → node)"
    sender=${project}_fhir-sink_1
    podman cp "$here/smoke_dicom.py" "$sender:/tmp/smoke_dicom.py"
    podman cp "$image" "$sender:/tmp/smoke.png"
    uid=$(podman exec "$sender" /opt/medai/bin/python /tmp/smoke_dicom.py /tmp/smoke.png dicom \
          11112 "${MEDAI_DICOM_AE_TITLE:-MEDAI}") || fail "C-STORE to the DICOM node"
    dsid=
    for _ in $(seq 120); do
        dsid=$(api GET "/api/v1/studies?limit=100" "${AUTH[@]}" | python3 -c '
import json, sys
print(next((s["id"] for s in json.load(sys.stdin)["items"]
            if (s.get("dicom") or {}).get("study_uid") == sys.argv[1]), ""))' "$uid")
        [ -n "$dsid" ] && break
        sleep 1
    done
    [ -n "$dsid" ] || fail "the DICOM study $uid is not in the worklist"
    dstatus=$(analysed "$dsid") || fail "DICOM study $dsid was not analysed"
    say "study $dsid (over DICOM): $dstatus"
    sign "$dsid" "$dstatus" || fail "sign study $dsid"

    step "DICOMweb delivery (outbox → Orthanc)"
    orthanc=http://127.0.0.1:$MEDAI_ORTHANC_HTTP_PUBLISH
    n=0
    for _ in $(seq 120); do  # the AI result and the signed report, at least
        n=$(curl -s --max-time 10 "$orthanc/instances" \
            | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo 0)
        [ "$n" -ge 2 ] && break
        sleep 1
    done
    found=$(curl -s --max-time 10 "$orthanc/dicom-web/studies?StudyInstanceUID=$uid" \
            | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo 0)
    say "Orthanc holds $n instances; study $uid found by QIDO-RS: $found"
    [ "$n" -ge 2 ] && [ "$found" = 1 ] \
        || fail "the results did not reach Orthanc over DICOMweb ($n instances, study $found)"
fi

step "every serve replica answered"
replicas=$(podman ps --filter "label=io.podman.compose.project=$project" \
           --filter "label=com.docker.compose.service=serve" --format '{{.Names}}' | sort)
[ "$(wc -w <<< "$replicas")" = "${MEDAI_SERVE_REPLICAS:-2}" ] \
    || fail "serve replicas running: $(echo $replicas)"
for c in $replicas; do
    n=$(podman logs "$c" 2>&1 | grep -c "medai.access: " || true)
    say "$c: $n requests through the front door"
    [ "$n" -gt 0 ] || fail "$c got no request: the front door does not balance"
done

step "healthchecks and the DICOM node (C-ECHO)"
for c in $replicas "${project}_dicom_1" "${project}_worker-cpu_1"; do
    podman healthcheck run "$c" >/dev/null 2>&1 || fail "HEALTHCHECK of $c failed"
done
podman exec "${project}_fhir-sink_1" /opt/medai/bin/python -c "
from pynetdicom import AE
ae = AE(ae_title='SMOKE'); ae.add_requested_context('1.2.840.10008.1.1')
a = ae.associate('dicom', 11112, ae_title='${MEDAI_DICOM_AE_TITLE:-MEDAI}')
ok = a.is_established and a.send_c_echo().Status == 0
a.release() if a.is_established else None
raise SystemExit(0 if ok else 1)" || fail "the DICOM node did not answer C-ECHO"

step "an unknown calling AE title is refused"
podman exec "${project}_fhir-sink_1" /opt/medai/bin/python -c "
from pynetdicom import AE
ae = AE(ae_title='INTRUDER'); ae.add_requested_context('1.2.840.10008.1.1')
a = ae.associate('dicom', 11112, ae_title='${MEDAI_DICOM_AE_TITLE:-MEDAI}')
rj = a.acceptor.primitive if a.is_rejected else None
a.release() if a.is_established else None
raise SystemExit(0 if rj is not None and (rj.result_source, rj.diagnostic) == (1, 3) else 1)" \
    || fail "the DICOM node did not reject the calling AE title INTRUDER"
grep -q "DICOM association from AE INTRUDER .* rejected: calling AE title not in the allow list" \
    <<< "$(podman logs "${project}_dicom_1" 2>&1)" || fail "the node's log does not say why"

step "build commit, log format and certificate expiry reach serve"
inside=$(podman exec "${project}_serve_1" /opt/medai/bin/python -c '
import urllib.request
print(urllib.request.urlopen("http://127.0.0.1:8000/metrics").read().decode())')
grep -q '^medai_build_info{.*commit="[0-9a-f]\{40\}' <<< "$inside" \
    || fail "medai_build_info names no commit: $(grep '^medai_build_info' <<< "$inside")"
grep -q '^medai_tls_certificate_expiry_timestamp_seconds{path="/etc/medai/tls/site.crt"' \
    <<< "$inside" || fail "no expiry metric of the site certificate"
[ "$(podman exec "${project}_worker-cpu_1" printenv MEDAI_LOG_FORMAT)" = text ] \
    || fail "MEDAI_LOG_FORMAT does not reach the worker"

step "PostgreSQL stop/start: fast shutdown, no crash recovery"
pg=${project}_postgres_1
case "$(podman inspect "$pg" --format '{{.Config.StopSignal}}')" in 2|SIGINT) ;; *) false ;; esac \
    || fail "PostgreSQL's stop signal is $(podman inspect "$pg" --format '{{.Config.StopSignal}}'), not SIGINT (2)"
s0=$(date +%s); since=$(date --iso-8601=seconds)
podman stop "$pg" >/dev/null || fail "podman stop postgres"
stopped_in=$(( $(date +%s) - s0 ))
say "PostgreSQL stopped in ${stopped_in} s (exit $(podman inspect "$pg" --format '{{.State.ExitCode}}'))"
[ "$stopped_in" -lt 10 ] || fail "PostgreSQL took ${stopped_in} s to stop (SIGKILL comes at 10)"
podman start "$pg" >/dev/null || fail "podman start postgres"
for _ in $(seq 60); do
    grep -q "database system is ready to accept connections" \
        <<< "$(podman logs --since "$since" "$pg" 2>&1)" && break
    sleep 1
done
pglog=$(podman logs --since "$since" "$pg" 2>&1)
grep -q "received fast shutdown request" <<< "$pglog" || fail "no fast shutdown: $pglog"
grep -q "database system was shut down at" <<< "$pglog" || fail "no clean start: $pglog"
if grep -Eq "not properly shut down|automatic recovery in progress|redo starts" <<< "$pglog"; then
    fail "PostgreSQL started with crash recovery: $pglog"
fi
back=000
for _ in $(seq 120); do  # medai reconnects by itself
    back=$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$base/api/v1/health/ready" || true)
    [ "$back" = 200 ] && break
    sleep 1
done
[ "$back" = 200 ] || fail "medai not ready after PostgreSQL came back ($back)"
api GET /api/v1/auth/me "${AUTH[@]}" >/dev/null || fail "the API does not answer after PostgreSQL's restart"

step "a killed worker comes back (restart: always)"
w=${project}_worker-cpu_1
restarts=$(podman inspect "$w" --format '{{.RestartCount}}')
readies=$(podman logs "$w" 2>&1 | grep -c " ready\." || true)
# SIGKILL to the container's main process from the host: what the OOM killer or a crash does
# (`podman kill`/`podman stop` are a person's stop, which podman's policy respects)
kill -KILL "$(podman inspect "$w" --format '{{.State.Pid}}')"
up_again=
for _ in $(seq 180); do
    if [ "$(podman inspect "$w" --format '{{.RestartCount}} {{.State.Status}}')" = "$((restarts + 1)) running" ] \
       && [ "$(podman logs "$w" 2>&1 | grep -c " ready\." || true)" -gt "$readies" ]; then
        up_again=1; break
    fi
    sleep 1
done
[ -n "$up_again" ] || fail "the worker did not come back: $(podman inspect "$w" --format '{{.RestartCount}} {{.State.Status}}')"
say "worker restarted by podman ($(podman inspect "$w" --format '{{.RestartCount}}') restart) and ready"

step "the front door (redirect, /metrics refused)"
redirect=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' --max-time 10 \
           --resolve "$MEDAI_SITE_NAME:$MEDAI_HTTP_PORT:127.0.0.1" \
           "http://$MEDAI_SITE_NAME:$MEDAI_HTTP_PORT/api/v1/health/live")
[[ "$redirect" == "301 https://$MEDAI_SITE_NAME:$MEDAI_HTTPS_PORT/api/v1/health/live" ]] \
    || fail "HTTP answered '$redirect', not a redirect to HTTPS"
metrics=$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$base/metrics")
[ "$metrics" = 403 ] || fail "/metrics through the front door answered $metrics"

step ""
say "passed"
