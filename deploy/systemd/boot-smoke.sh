#!/usr/bin/env bash
# Boots the units for real: a Debian bookworm root with systemd (mmdebstrap, cached in
# deploy/dist/systemd-root) under `systemd-nspawn --boot`; /opt/medai is the image's venv
# (localhost/medai:latest, the wheelhouse's install) as an overlay's read-only layer; the
# units, /etc/medai/medai.env and the credentials installed as docs/deploy/systemd.md says;
# against a fresh PostgreSQL database and Redis on 127.0.0.1 (the container shares the host's
# network; it binds and calls 127.0.0.1 only). Inside, boot-check.service waits for
# /api/v1/health/ready, the DICOM node's port and a ready worker, then restarts medai-migrate
# (the upgrade path) and checks that serve was restarted after it; a chest X-ray sent to the
# DICOM node is analysed by the worker; medai-first-admin adds the admin (then, run again,
# nothing); then it powers off.
# Skips (exit 77), saying why, without systemd-nspawn, mmdebstrap, podman, the image,
# PostgreSQL or Redis.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/deploy/tools/smoke-common.sh"
CACHE="$ROOT/deploy/dist/systemd-root"

for tool in systemd-nspawn mmdebstrap podman; do
    command -v $tool >/dev/null || skip "$tool is not installed"
done
require_image_and_services

started=$(date +%s)
if [[ ! -x $CACHE/lib/systemd/systemd ]]; then
    say "Debian root with systemd -> $CACHE (mmdebstrap, once)"
    rm -rf "$CACHE.part"
    mmdebstrap --variant=minbase --mode=root --quiet \
        --include=systemd,systemd-sysv,dbus,python3,python3-venv,ca-certificates \
        --aptopt='Acquire::Check-Valid-Until "false"' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' bookworm "$CACHE.part"
    mv "$CACHE.part" "$CACHE"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/medai-boot.XXXXXX")"
DB="medai_boot_$$"
MNT=""
cleanup() {
    set +e
    [[ -n $MNT ]] && podman image unmount "$IMAGE" >/dev/null
    [[ -n ${DB_MADE:-} ]] && throwaway_db drop "$DB" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
DB_MADE=1
throwaway_db create "$DB"
read -r PORT DICOM_PORT < <("$PY" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')

say "install medai's units into a copy of the root (serve 127.0.0.1:$PORT, DICOM :$DICOM_PORT)"
R="$WORK/root"
cp -a "$CACHE" "$R"
MNT="$(podman image mount "$IMAGE")"
echo "medai:x:10001:10001:medai:/var/lib/medai:/usr/sbin/nologin" >> "$R/etc/passwd"
echo "medai:x:10001:" >> "$R/etc/group"
echo "medai:!:19000::::::" >> "$R/etc/shadow"
install -d -o 10001 -g 10001 -m 0750 "$R/var/lib/medai"
install -d -m 0700 "$R/etc/medai/credentials"
install -d "$R/opt/medai" "$WORK/upper/libexec" "$WORK/work"
install -m 0644 "$ROOT"/deploy/systemd/*.service "$R/etc/systemd/system/"
sed -e "s/^MEDAI_PORT=.*/MEDAI_PORT=$PORT/" -e "s/^MEDAI_DICOM_PORT=.*/MEDAI_DICOM_PORT=$DICOM_PORT/" \
    -e "s/^MEDAI_DICOM_HOST=.*/MEDAI_DICOM_HOST=127.0.0.1/" -e "s/^MEDAI_WORKERS=.*/MEDAI_WORKERS=1/" \
    -e "s/^MEDAI_SECURE_COOKIES=.*/MEDAI_SECURE_COOKIES=false/" \
    -e 's/^MEDAI_DICOM_ALLOW=.*/MEDAI_DICOM_ALLOW=["BOOTSMOKE"]/' \
    "$ROOT/deploy/systemd/medai.env" > "$R/etc/medai/medai.env"
pg_base="${PG%/*}"
printf '%s\n' "postgresql+psycopg://${pg_base#postgresql://}/$DB" > "$R/etc/medai/credentials/database-url"
printf '%s\n' "$REDIS" > "$R/etc/medai/credentials/broker-url"
"$PY" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())' \
    > "$R/etc/medai/credentials/secret-keys"
printf '%s\n' 'Kiraz-Bahce-2026-ucak!' > "$R/etc/medai/credentials/admin-password"
chmod 0600 "$R"/etc/medai/credentials/*

cat > "$R/usr/local/bin/boot-check" <<PY
#!/usr/bin/python3
"""Inside the booted container: wait for the units, check them, try the upgrade path."""
import json, socket, subprocess, time, urllib.request

def sh(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()

def ready():
    req = urllib.request.Request("http://127.0.0.1:$PORT/api/v1/health/ready",
                                 headers={"Host": "localhost"})
    try:
        return urllib.request.urlopen(req, timeout=10).status == 200
    except Exception:
        return False

out = {}
t0 = time.monotonic()
while time.monotonic() - t0 < 420 and not ready():
    time.sleep(2)
out["ready_after_s"] = round(time.monotonic() - t0, 1) if ready() else None
while time.monotonic() - t0 < 480 and "ready." not in sh("journalctl", "-u", "medai-worker@cpu"):
    time.sleep(2)
out["worker_ready"] = "ready." in sh("journalctl", "-u", "medai-worker@cpu")
try:
    socket.create_connection(("127.0.0.1", $DICOM_PORT), timeout=5).close()
    out["dicom_port_open"] = True
except OSError:
    out["dicom_port_open"] = False
# a chest X-ray over DICOM to the node (MemoryDenyWriteExecute=yes), analysed by the worker
out["study"] = sh("/opt/medai/bin/python", "/usr/local/bin/send-study", str($DICOM_PORT))
# the first admin by hand, as the docs say, after that study made the internal medai-dicom
# account (it must not count as "users exist"), then once more (nothing to do)
subprocess.run(["systemctl", "start", "medai-first-admin"])
subprocess.run(["systemctl", "start", "medai-first-admin"])
units = ["medai-migrate", "medai-serve", "medai-dicom", "medai-worker@cpu", "medai-first-admin"]
out["active"] = {u: sh("systemctl", "is-active", u) for u in units}
out["first_admin"] = sh("journalctl", "-u", "medai-first-admin", "-o", "cat")[-1500:]
out["users"] = sh("env", "MEDAI_HOME=/var/tmp/medai-check",
                  "MEDAI_DATABASE_URL_FILE=/etc/medai/credentials/database-url",
                  "/opt/medai/bin/medai", "users", "list", "--json")
before = sh("systemctl", "show", "-P", "InvocationID", "medai-serve")
subprocess.run(["systemctl", "restart", "medai-migrate"])
t1 = time.monotonic()
while time.monotonic() - t1 < 300 and not ready():
    time.sleep(2)
out["upgrade_restart"] = {
    "serve_restarted": sh("systemctl", "show", "-P", "InvocationID", "medai-serve") != before,
    "ready_again_after_s": round(time.monotonic() - t1, 1) if ready() else None}
out["failed_units"] = sh("systemctl", "--failed", "--no-legend")
out["journal_tail"] = sh("journalctl", "-u", "medai-*", "--no-pager", "-n", "60", "-o", "cat")
json.dump(out, open("/var/tmp/boot-check.json", "w"), indent=1)
subprocess.run(["systemctl", "poweroff"])
PY
cat > "$R/usr/local/bin/send-study" <<'PY'
"""C-STORE one small CR chest instance to the node, then wait for its job to be done."""
import sys, time
import numpy as np
import sqlalchemy as sa
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE

CR = "1.2.840.10008.5.1.4.1.1.1"
ds = Dataset()
ds.file_meta = FileMetaDataset()
ds.file_meta.MediaStorageSOPClassUID = CR
ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds.SOPClassUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = CR, generate_uid(), generate_uid()
ds.PatientName, ds.PatientID, ds.StudyDate = "Boot^Smoke", "BS1", "20251120"
ds.AccessionNumber, ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "BS-1", "CR", "CHEST", "PA"
ds.SeriesNumber = ds.InstanceNumber = 1
ds.Rows = ds.Columns = 256
ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
img = np.kron(np.random.default_rng(0).random((33, 33)), np.ones((8, 8)))[:256, :256]
ds.PixelData = (img * 4000).astype("<u2").tobytes()
ae = AE(ae_title="BOOTSMOKE")
ae.add_requested_context(CR, ExplicitVRLittleEndian)
assoc = ae.associate("127.0.0.1", int(sys.argv[1]), ae_title="MEDAI")
status = assoc.send_c_store(ds).Status if assoc.is_established else None
assoc.release()
engine = sa.create_engine(open("/etc/medai/credentials/database-url").read().strip())
job = None
for _ in range(150):
    with engine.connect() as c:
        job = c.execute(sa.text("select status from jobs order by id desc limit 1")).scalar()
    if job in ("done", "failed"):
        break
    time.sleep(2)
print(f"C-STORE status {status}, job {job}")
PY
chmod 0755 "$R/usr/local/bin/boot-check"
cat > "$R/etc/systemd/system/boot-check.service" <<'UNIT'
[Unit]
Description=medai boot smoke check
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/usr/local/bin/boot-check
[Install]
WantedBy=multi-user.target
UNIT
mkdir -p "$R/etc/systemd/system/multi-user.target.wants"
for unit in medai-migrate medai-serve medai-dicom medai-worker@cpu boot-check; do
    ln -sf "../${unit/@cpu/@}.service" "$R/etc/systemd/system/multi-user.target.wants/$unit.service"
done
# /opt/medai is the image's venv (read-only lower layer) plus the first-admin helper on top
install -m 0755 "$ROOT/deploy/systemd/medai-first-admin.sh" "$WORK/upper/libexec/medai-first-admin"

say "systemd-nspawn --boot"
timeout 720 systemd-nspawn --boot -D "$R" --register=no --keep-unit --console=pipe -q \
    --overlay="$MNT/opt/medai:$WORK/upper:/opt/medai" > "$WORK/console.log" 2>&1 || true
[[ -f $R/var/tmp/boot-check.json ]] || { tail -40 "$WORK/console.log" >&2;
                                        echo "FAIL: the check did not finish" >&2; exit 1; }
"$PY" - "$R/var/tmp/boot-check.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
tail = r.pop("journal_tail")
print(json.dumps(r, indent=1))
ok = (r["ready_after_s"] is not None and r["worker_ready"] and r["dicom_port_open"]
      and all(v == "active" for k, v in r["active"].items() if k != "medai-first-admin")
      and r["active"]["medai-first-admin"] == "inactive"  # a oneshot that succeeded
      and r["study"] == "C-STORE status 0, job done"
      and "created admin" in r["first_admin"] and "already has an admin" in r["first_admin"]
      and r["upgrade_restart"]["serve_restarted"]
      and r["upgrade_restart"]["ready_again_after_s"] is not None and not r["failed_units"])
if not ok:
    print(tail, file=sys.stderr)
    sys.exit("FAIL: see above")
PY
echo "deploy/systemd/boot-smoke.sh: passed in $(( $(date +%s) - started ))s"
