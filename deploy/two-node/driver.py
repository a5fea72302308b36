"""The two-node proof's driver, run by ``run.py`` inside the modality's namespace (mmod), so
every packet it sends goes between namespaces: it starts the database host's PostgreSQL and
Redis and both nodes' processes (``ip netns exec``), sends the studies, kills and restarts node
1, receives the FHIR deliveries, and checks the outcome from the database and the receiver."""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from hosts import ROOT, VENV, addr, pg_bin

WATCH_S = 2.0  # MEDAI_MODEL_WATCH_S of both nodes
LEASE_S = 10  # MEDAI_JOB_LEASE_S and MEDAI_OUTBOX_LEASE_S: how soon a dead node's work moves
TERMINAL = ("ai_drafted", "refused", "failed", "no_model")
T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[two-node {time.monotonic() - T0:7.1f}s] {msg}", flush=True)


# --- the FHIR receiver (a hospital's FHIR server: parses, keeps every resource by id) -------


class FhirReceiver:
    """The compose smoke's FHIR server (deploy/compose/fhir_sink.py) served here: a transaction
    Bundle POSTed to /fhir is validated as R4B (400 otherwise) and each PUT is kept as a
    receipt by its resource type and id (the deterministic id medai derives from the event), so
    a resend shows as a second receipt of the same id; every receipt is journalled."""

    def __init__(self, host: str, port: int, journal: Path) -> None:
        sys.path.insert(0, str(ROOT / "deploy" / "compose"))
        import fhir_sink

        self.sink = fhir_sink
        self.journal = journal.open("a", encoding="utf-8")
        fhir_sink.LOG_REQUESTS = False
        fhir_sink.ON_RECEIPT = self._journal
        self.server = ThreadingHTTPServer((host, port), fhir_sink.Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _journal(self, row: dict[str, Any]) -> None:  # called under the sink's lock
        self.journal.write(json.dumps(row) + "\n")
        self.journal.flush()

    @property
    def invalid(self) -> list[str]:
        return self.sink.INVALID

    def reports(self) -> Counter:
        with self.sink.LOCK:
            return Counter(r["id"] for r in self.sink.RECEIPTS if r["type"] == "DiagnosticReport")

    def stop(self) -> None:
        self.server.shutdown()
        self.journal.close()


# --- the cluster: database host and two nodes ----------------------------------------------


class Cluster:
    def __init__(self, work: Path) -> None:
        from cryptography.fernet import Fernet

        self.work = work
        self.logs = work / "logs"
        self.logs.mkdir(exist_ok=True)
        self.home = work / "shared-home"  # the ReadWriteMany volume both nodes mount
        self.db_url = f"postgresql+psycopg://postgres@{addr('mdb')}:5432/medai"
        self.broker = f"redis://{addr('mdb')}:6379/0"
        self.keys = json.dumps([Fernet.generate_key().decode()])  # shared by both, as on site
        self.procs: dict[str, subprocess.Popen] = {}
        self.generation = {1: 0, 2: 0}

    # database host
    def start_db(self) -> None:
        pg = pg_bin()
        data, sock = self.work / "pg" / "data", self.work / "pg" / "sock"
        sock.mkdir(parents=True)
        ids = pwd.getpwnam("postgres")
        for p in (self.work / "pg", sock):
            os.chown(p, ids.pw_uid, ids.pw_gid)
        as_pg = ["ip", "netns", "exec", "mdb", "runuser", "-u", "postgres", "--"]
        subprocess.run(
            [
                *as_pg,
                str(pg / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--no-locale",
            ],
            check=True,
            capture_output=True,
        )
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '{addr('mdb')}'\nport = 5432\n"
                f"unix_socket_directories = '{sock}'\nmax_connections = 200\n"
            )
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {addr('mdb').rsplit('.', 1)[0]}.0/24 trust\n")
        subprocess.run(
            [
                *as_pg,
                str(pg / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(self.work / "pg" / "postgres.log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*as_pg, str(pg / "createdb"), "-h", addr("mdb"), "medai"],
            check=True,
            capture_output=True,
        )
        self.redis = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                "mdb",
                "redis-server",
                "--bind",
                addr("mdb"),
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--dir",
                str(self.work),
            ],
            stdout=(self.logs / "redis.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _poll(lambda: _redis_ping(addr("mdb")), 30, "redis")
        from sqlalchemy import create_engine

        self.engine = create_engine(self.db_url, pool_size=2)

    def stop_db(self) -> None:
        self.redis.terminate()
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                "mdb",
                "runuser",
                "-u",
                "postgres",
                "--",
                str(pg_bin() / "pg_ctl"),
                "-D",
                str(self.work / "pg" / "data"),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
            check=False,
            capture_output=True,
        )
        shutil_copy(self.work / "pg" / "postgres.log", self.logs / "postgres.log")

    # nodes
    def env(self, n: int) -> dict[str, str]:
        keep = {
            k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR")
        }
        return {
            **keep,
            "HOME": str(self.work / f"user{n}"),
            "MEDAI_HOME": str(self.home),
            "MEDAI_CACHE_DIR": str(self.work / f"cache{n}"),  # node-local, not shared
            "MEDAI_DATABASE_URL": self.db_url,
            "MEDAI_BROKER_URL": self.broker,
            "MEDAI_SECRET_KEYS": self.keys,
            "MEDAI_JOB_THREADS": "0",
            "MEDAI_OUTBOX_THREADS": "1",
            "MEDAI_JOB_LEASE_S": str(LEASE_S),
            "MEDAI_OUTBOX_LEASE_S": str(LEASE_S),
            "MEDAI_OUTBOX_POLL_S": "1",
            "MEDAI_OUTBOX_RETRY_S": "2",
            "MEDAI_MODEL_WATCH_S": str(WATCH_S),
            "MEDAI_FHIR_URL": f"http://{addr('mmod')}:8080/fhir",
            "MEDAI_DICOM_AE_TITLE": "MEDAI",
            "MEDAI_DICOM_ALLOW": '["MODALITY"]',  # the modality below; none by default
            "MEDAI_DICOM_HOST": addr(f"mnode{n}"),
            "MEDAI_RED_FLAG_EMBEDDINGS": "false",
            "MEDAI_RED_FLAG_CLASSIFIER": "false",
            "MEDAI_INFERENCE_CONCURRENCY": "1",
            "MEDAI_LOG_LEVEL": "info",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        }

    def cli(self, n: int, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run(
            ["ip", "netns", "exec", f"mnode{n}", str(VENV / "medai"), *args],
            env=self.env(n),
            input=stdin,
            text=True,
            capture_output=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"medai {' '.join(args)} on node {n}: {done.stderr[-2000:]}")
        return done

    def start_node(self, n: int) -> None:
        self.generation[n] += 1
        gen = self.generation[n]
        host = addr(f"mnode{n}")
        roles = {
            "serve": ["serve", "--host", host, "--port", "8000"],
            "worker": ["worker", "--queues", "cpu", "--concurrency", "1"],
            "dicom": ["dicom", "listen", "--host", host, "--port", "11112"],
        }
        for role, args in roles.items():
            out = (self.logs / f"node{n}-{role}-{gen}.log").open("w")
            self.procs[f"{n}:{role}"] = subprocess.Popen(
                ["ip", "netns", "exec", f"mnode{n}", str(VENV / "medai"), *args],
                env=self.env(n),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill_node(self, n: int) -> list[int]:
        """SIGKILL every process of the node at once (a host that lost power)."""
        victims = [p for k, p in self.procs.items() if k.startswith(f"{n}:")]
        for p in victims:
            os.killpg(p.pid, signal.SIGKILL)
        for p in victims:
            p.wait(30)
        return [p.pid for p in victims]

    def pid(self, n: int, role: str) -> int:
        return self.procs[f"{n}:{role}"].pid

    def stop_nodes(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)

    def wait_ready(self, n: int, client, timeout: float = 240) -> float:
        start = time.monotonic()
        url = f"http://{addr(f'mnode{n}')}:8000/api/v1/health/ready"
        _poll(lambda: _get_ok(client, url), timeout, f"node {n} serve")
        _poll(lambda: _echo(addr(f"mnode{n}")), timeout, f"node {n} DICOM")
        return time.monotonic() - start

    def sql(self, query: str, **params) -> list[tuple]:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(query), params)]


def shutil_copy(src: Path, dst: Path) -> None:
    try:
        dst.write_bytes(src.read_bytes())
    except OSError:
        pass


def _poll(check, timeout: float, what: str, every: float = 0.25) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if check():
                return
        except Exception:  # not up yet
            pass
        time.sleep(every)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


def _redis_ping(host: str) -> bool:
    with socket.create_connection((host, 6379), timeout=2) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")


def _get_ok(client, url: str) -> bool:
    return client.get(url).status_code == 200


def _echo(host: str) -> bool:
    return (
        subprocess.run(
            ["echoscu", "-aet", "MODALITY", "-aec", "MEDAI", host, "11112"],
            capture_output=True,
            timeout=20,
        ).returncode
        == 0
    )


# --- what the modality and the uploader send ------------------------------------------------


def dicom_file(path: Path, i: int, image: Path) -> str:
    """A CR chest AP instance of its own study and patient made from a radiograph's pixels;
    returns its StudyInstanceUID."""
    import numpy as np
    from PIL import Image
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    pixels = np.asarray(Image.open(image).convert("L"), dtype=np.uint16) * 16  # 12 bits
    sop, study = generate_uid(), generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.1", sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, generate_uid()
    ds.PatientName, ds.PatientID, ds.StudyDate = "TWO^NODE", f"TN-{i:03d}", "20261126"
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CR", 1, 1
    ds.AccessionNumber, ds.BodyPartExamined, ds.ViewPosition = f"TN{i:05d}", "CHEST", "AP"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = pixels.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return study


def radiographs(folder: Path, n: int) -> list[Path]:
    """``n`` chest radiographs (PNG) of the folder, the same ones on every run."""
    found = sorted(folder.glob("kermany_*.png")) or sorted(folder.glob("*.png"))
    if len(found) < n:
        raise SystemExit(
            f"two-node: {folder} holds {len(found)} chest radiographs (PNG); "
            f"{n} are needed (--images DIR)"
        )
    return found[:n]


@dataclass
class Item:
    i: int
    kind: str  # dicom | upload
    node: int
    ref: str  # StudyInstanceUID (dicom) or patient_ref (upload)
    image: Path
    attempts: int = 0
    ambiguous: int = 0  # attempts whose outcome the sender could not know (connection lost)
    # an upload's Idempotency-Key: one per study, the same on every retry, so a retry after a
    # lost answer is answered with the study the lost attempt filed (``replayed``)
    key: str = field(default_factory=lambda: str(uuid.uuid4()))
    replayed: int = 0
    done_at: float | None = None
    study_id: int | None = None
    errors: list[str] = field(default_factory=list)


class Sender:
    """Four senders (DICOM and upload, to each node), each sending its items in order and
    retrying one until it is acknowledged, as a modality and an uploader do."""

    def __init__(self, items: list[Item], work: Path, token: str, deadline_s: float) -> None:
        self.items, self.work, self.token = items, work, token
        self.deadline = time.monotonic() + deadline_s
        self.acked = 0
        self.lock = threading.Lock()
        self.threads = []
        for node in (1, 2):
            for kind in ("dicom", "upload"):
                mine = [it for it in items if it.node == node and it.kind == kind]
                self.threads.append(threading.Thread(target=self._run, args=(mine,), daemon=True))

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join(max(1.0, self.deadline - time.monotonic() + 5))

    def _run(self, mine: list[Item]) -> None:
        import httpx

        client = httpx.Client(trust_env=False, timeout=60)
        for it in mine:
            while time.monotonic() < self.deadline:
                it.attempts += 1
                ok = self._dicom(it) if it.kind == "dicom" else self._upload(client, it)
                if ok:
                    it.done_at = time.monotonic() - T0
                    with self.lock:
                        self.acked += 1
                    break
                time.sleep(0.5)

    def _dicom(self, it: Item) -> bool:
        done = subprocess.run(
            [
                "storescu",
                "-aet",
                "MODALITY",
                "-aec",
                "MEDAI",
                addr(f"mnode{it.node}"),
                "11112",
                str(self.work / "dicom" / f"{it.i:03d}.dcm"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            it.errors.append(f"storescu rc={done.returncode}")
            if "Association Request Failed" not in done.stderr:
                it.ambiguous += 1  # the association was open: stored or not, unknown
        return done.returncode == 0

    def _upload(self, client, it: Item) -> bool:
        import httpx

        url = f"http://{addr(f'mnode{it.node}')}:8000/api/v1/studies"
        try:
            r = client.post(
                url,
                headers={"Authorization": f"Bearer {self.token}", "Idempotency-Key": it.key},
                data={"task": "cxr", "patient_ref": it.ref},
                files={"file": (f"{it.ref}.png", it.image.read_bytes(), "image/png")},
            )
        except httpx.ConnectError as exc:
            it.errors.append(type(exc).__name__)
            return False
        except httpx.TransportError as exc:  # sent, and the answer lost: filed or not
            it.errors.append(type(exc).__name__)
            it.ambiguous += 1
            return False
        if r.status_code == 201:
            it.study_id = r.json()["id"]
            it.replayed += r.headers.get("Idempotent-Replayed") == "true"
            return True
        it.errors.append(f"HTTP {r.status_code}")
        if r.status_code >= 500:
            it.ambiguous += 1
        return False


# --- the run --------------------------------------------------------------------------------


def run(work: Path, n_studies: int, out: Path, images: Path) -> int:
    import httpx

    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "studies": n_studies,
        "lease_s": LEASE_S,
        "model_watch_s": WATCH_S,
        "cpus": os.cpu_count(),
    }
    checks: dict[str, bool] = {}
    c = Cluster(work)
    fhir = None
    client = httpx.Client(trust_env=False, timeout=60)
    try:
        log("starting PostgreSQL and Redis on mdb")
        c.start_db()
        fhir = FhirReceiver(addr("mmod"), 8080, c.logs / "fhir-receipts.jsonl")
        log("migrating and creating users (node 1's CLI)")
        c.cli(1, "db", "upgrade")
        c.cli(
            1,
            "users",
            "add",
            "admin",
            "--role",
            "admin",
            "--password-stdin",
            stdin="Front-door-47-check\n",
        )
        code = json.loads(
            c.cli(1, "users", "add", "rad1", "--role", "radiologist", "--json").stdout
        )
        code = code["enrol_code"]
        c.cli(1, "users", "enrol", code, "--password-stdin", stdin="Reading-room-47-check\n")
        c.cli(1, "users", "approve", "rad1")
        log("starting both nodes (serve, worker --queues cpu, dicom listen)")
        t = time.monotonic()
        c.start_node(1)
        c.start_node(2)
        c.wait_ready(1, client)
        c.wait_ready(2, client)
        results["cold_start_s"] = round(time.monotonic() - t, 1)
        log(f"both nodes ready after {results['cold_start_s']} s")

        # --- state that must hold across replicas --------------------------------------
        n1, n2 = (f"http://{addr(f'mnode{n}')}:8000/api/v1" for n in (1, 2))
        token = client.post(
            f"{n1}/auth/login", json={"username": "rad1", "password": "Reading-room-47-check"}
        ).json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        results["session_from_node1_on_node2"] = client.get(
            f"{n2}/studies", headers=bearer
        ).status_code
        checks["session_shared"] = results["session_from_node1_on_node2"] == 200
        throttle = [
            client.post(
                f"{(n1, n2)[k % 2]}/auth/login", json={"username": "rad1", "password": f"wrong-{k}"}
            ).status_code
            for k in range(6)
        ]
        results["login_throttle_statuses_alternating_nodes"] = throttle
        checks["login_throttle_shared"] = throttle == [401] * 5 + [429]
        # the throttle counted rad1's name: a right password now is refused too, on both
        anonymous = httpx.Client(trust_env=False, timeout=60)  # no session cookie
        quota = [
            anonymous.post(
                f"{(n1, n2)[k % 2]}/triage", json={"text": "iki gündür başım ağrıyor ve ateşim var"}
            ).status_code
            for k in range(4)
        ]
        results["anonymous_triage_statuses_alternating_nodes"] = quota
        checks["kiosk_quota_shared"] = quota == [200, 200, 200, 429]
        admin = {
            "Authorization": "Bearer "
            + client.post(
                f"{n2}/auth/login", json={"username": "admin", "password": "Front-door-47-check"}
            ).json()["access_token"]
        }

        # --- 100 studies while node 1 dies ----------------------------------------------
        (work / "dicom").mkdir()
        items = []
        for i, image in enumerate(radiographs(images, n_studies)):
            kind, node = ("dicom", "upload")[i % 2], 1 + (i // 2) % 2
            ref = (
                dicom_file(work / "dicom" / f"{i:03d}.dcm", i, image)
                if kind == "dicom"
                else f"TN-U{i:03d}"
            )
            items.append(Item(i, kind, node, ref, image))
        sender = Sender(items, work, token, deadline_s=360)
        log(f"sending {n_studies} studies (DICOM and uploads, to both nodes)")
        t_send = time.monotonic()
        sender.start()
        _poll(lambda: sender.acked >= n_studies // 2, 300, "half of the studies", 0.05)
        worker1 = c.pid(1, "worker")
        try:  # kill it while it holds an analysis (a job under its lease)
            _poll(
                lambda: (
                    c.sql(
                        "SELECT count(*) FROM jobs WHERE status = 'running' AND worker LIKE :w",
                        w=f"%:{worker1}:%",
                    )[0][0]
                    > 0
                ),
                20,
                "a job running on node 1",
                0.05,
            )
        except TimeoutError:
            log("node 1's worker held no job: killed anyway")
        held_jobs = [
            r[0]
            for r in c.sql(
                "SELECT id FROM jobs WHERE status = 'running' AND worker LIKE :w",
                w=f"%:{worker1}:%",
            )
        ]
        held_outbox = [
            r[0]
            for r in c.sql(
                "SELECT id FROM outbox WHERE state = 'sending' AND worker LIKE :w",
                w=f"%:{worker1}:%",
            )
        ]
        t_kill, kill_epoch = time.monotonic(), time.time()
        killed = c.kill_node(1)
        results["kill"] = {
            "at_s": round(t_kill - t_send, 1),
            "acked_before": sender.acked,
            "pids": killed,
            "jobs_held_by_node1_worker": held_jobs,
            "outbox_rows_held_by_node1_worker": held_outbox,
        }
        log(
            f"node 1 killed (SIGKILL) after {sender.acked} studies acknowledged; its worker "
            f"held jobs {held_jobs}"
        )
        c.start_node(1)
        results["node1_restart_ready_s"] = round(c.wait_ready(1, client), 1)
        results["node1_down_s"] = round(time.monotonic() - t_kill, 1)
        log(f"node 1 back after {results['node1_down_s']} s")
        sender.join()
        results["all_acknowledged_s"] = round(time.monotonic() - t_send, 1)
        unsent = [it.i for it in items if it.done_at is None]
        checks["every_study_acknowledged"] = not unsent

        def settled() -> bool:
            (busy,) = c.sql(
                "SELECT (SELECT count(*) FROM studies WHERE status IN "
                "('received', 'analysing')) + (SELECT count(*) FROM jobs WHERE "
                "status IN ('queued', 'running')) + (SELECT count(*) FROM outbox "
                "WHERE state IN ('queued', 'sending'))"
            )[0]
            return busy == 0

        _poll(settled, 420, "every study analysed and delivered", 0.5)
        results["all_analysed_and_delivered_s"] = round(time.monotonic() - t_send, 1)
        if held_jobs:  # taken over after node 1's lease ran out
            results["held_jobs_after"] = [
                {
                    "id": i,
                    "status": st,
                    "attempts": n,
                    "worker": w,
                    "done_after_kill_s": round(float(at) - kill_epoch, 1),
                }
                for i, st, n, w, at in c.sql(
                    "SELECT id, status, attempts, worker, EXTRACT(EPOCH FROM finished_at) "
                    "FROM jobs WHERE id = ANY(:ids)",
                    ids=held_jobs,
                )
            ]
        log(
            f"all analysed and delivered {results['all_analysed_and_delivered_s']} s after "
            "the first send"
        )

        # --- the outcome, from the database and the receiver -----------------------------
        results.update(outcome(c, items, fhir, checks))
        results["stored_files"] = stored_files(c, checks)
        results["celery_messages_received"] = sum(
            f.read_text(errors="replace").count("] received")
            for f in c.logs.glob("node*-worker-*.log")
        )

        # --- a promotion on node 1 reaches node 2 ----------------------------------------
        results["promotion"] = promotion(c, client, n1, n2, bearer, admin, checks)
        results["readiness_node2"] = client.get(f"{n2}/health/ready", headers=admin).json()
    except Exception as exc:
        log(f"FAILED: {type(exc).__name__}: {exc}")
        results["error"] = f"{type(exc).__name__}: {exc}"
        checks["completed"] = False
    finally:
        results["checks"] = checks
        results["passed"] = bool(checks) and all(checks.values())
        results["wall_s"] = round(time.monotonic() - T0, 1)
        c.stop_nodes()
        if fhir is not None:
            fhir.stop()
        try:
            c.stop_db()
        except Exception:  # the outer cleanup stops what is left
            pass
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
        (c.logs / "results.json").write_text(json.dumps(results, indent=2, default=str))
    log(json.dumps(checks))
    log(f"{'PASSED' if results['passed'] else 'FAILED'}: {out / 'results.json'}")
    return 0 if results["passed"] else 1


def outcome(
    c: Cluster, items: list[Item], fhir: FhirReceiver, checks: dict[str, bool]
) -> dict[str, Any]:
    res: dict[str, Any] = {}
    studies = c.sql("SELECT s.id, s.source, s.study_uid, s.status FROM studies s ORDER BY s.id")
    res["studies_in_database"] = len(studies)
    by_uid = Counter(uid for _, src, uid, _ in studies if src == "dicom")
    dicom_items = [it for it in items if it.kind == "dicom"]
    uploads = [it for it in items if it.kind == "upload"]
    res["dicom_studies"] = {
        "sent": len(dicom_items),
        "found": sum(by_uid[it.ref] >= 1 for it in dicom_items),
        "duplicated": sum(by_uid[it.ref] > 1 for it in dicom_items),
    }
    # uploads carry a pseudonymous patient reference: a study per reference
    per_ref = Counter()
    from medai.platform.records.crypto import Cipher

    cipher = Cipher(json.loads(c.keys))
    hashes = {cipher.pseudonym(it.ref): it for it in uploads}
    for h, n in c.sql(
        "SELECT p.ref, count(s.id) FROM patients p JOIN studies s ON "
        "s.patient_id = p.id GROUP BY p.ref"
    ):
        if h in hashes:
            per_ref[hashes[h].ref] = n
    extra_uploads = [it.ref for it in uploads if per_ref[it.ref] > 1]
    res["upload_studies"] = {
        "sent": len(uploads),
        "found": sum(per_ref[it.ref] >= 1 for it in uploads),
        "duplicated": len(extra_uploads),
        "duplicated_after_a_lost_answer": [
            it.ref for it in uploads if per_ref[it.ref] > 1 and it.ambiguous
        ],
        # retries answered with the study a lost attempt had filed
        "answers_replayed": sum(it.replayed for it in uploads),
        "replayed": [it.ref for it in uploads if it.replayed],
    }
    res["sender_attempts"] = {
        "total": sum(it.attempts for it in items),
        "retried_items": sum(it.attempts > 1 for it in items),
        "ambiguous": sum(it.ambiguous for it in items),
        "errors": dict(Counter(e for it in items for e in it.errors)),
    }
    lost = [it.i for it in dicom_items if by_uid[it.ref] == 0] + [
        it.i for it in uploads if per_ref[it.ref] == 0
    ]
    res["lost"] = lost
    checks["nothing_lost"] = not lost
    # exactly one study per study sent: DICOM is idempotent by SOP Instance UID, an upload by
    # its Idempotency-Key (a retry after a lost answer is answered, not filed again)
    checks["no_duplicate_study"] = (
        res["dicom_studies"]["duplicated"] == 0 and not extra_uploads and len(studies) == len(items)
    )
    statuses = Counter(s[3] for s in studies)
    res["study_statuses"] = dict(statuses)
    checks["every_study_finished"] = all(s in TERMINAL for s in statuses)
    per_study = {
        sid: {
            "jobs": 0,
            "jobs_done": 0,
            "imaging": 0,
            "draft": 0,
            "versions": 0,
            "predict_audits": 0,
            "fhir_rows": 0,
            "fhir_delivered": 0,
        }
        for sid, *_ in studies
    }
    for sid, n, done in c.sql(
        "SELECT study_id, count(*), count(*) FILTER (WHERE status = "
        "'done') FROM jobs GROUP BY study_id"
    ):
        per_study[sid]["jobs"], per_study[sid]["jobs_done"] = n, done
    for sid, kind, n in c.sql(
        "SELECT study_id, kind, count(*) FROM ai_results GROUP BY study_id, kind"
    ):
        per_study[sid][kind] = n
    for sid, n in c.sql("SELECT study_id, count(*) FROM report_versions GROUP BY study_id"):
        per_study[sid]["versions"] = n
    for sid, n in c.sql(
        "SELECT CAST(target_id AS integer), count(*) FROM audit_events WHERE "
        "action = 'predict' AND target_type = 'study' GROUP BY target_id"
    ):
        per_study[sid]["predict_audits"] = n
    for sid, n, delivered in c.sql(
        "SELECT study_id, count(*), count(*) FILTER (WHERE state "
        "= 'delivered') FROM outbox WHERE destination = 'fhir' "
        "GROUP BY study_id"
    ):
        per_study[sid]["fhir_rows"], per_study[sid]["fhir_delivered"] = n, delivered
    drafted = [sid for sid, _, _, st in studies if st == "ai_drafted"]
    bad = {
        sid: v
        for sid, v in per_study.items()
        if v["jobs"] != 1
        or v["jobs_done"] != 1
        or v["imaging"] != 1
        or v["predict_audits"] != 1
        or (
            sid in drafted
            and (
                v["draft"] != 1
                or v["versions"] != 1
                or v["fhir_rows"] != 1
                or v["fhir_delivered"] != 1
            )
        )
    }
    res["studies_not_exactly_once"] = bad
    checks["every_study_analysed_exactly_once"] = not bad
    totals = c.sql(
        "SELECT (SELECT count(*) FROM ai_results WHERE kind = 'imaging'), "
        "(SELECT count(*) FROM ai_results WHERE kind = 'draft'), "
        "(SELECT count(*) FROM report_versions), (SELECT count(*) FROM jobs), "
        "(SELECT sum(attempts) FROM jobs), (SELECT count(*) FROM jobs WHERE "
        "attempts > 1), (SELECT count(*) FROM outbox), (SELECT count(*) FROM outbox "
        "WHERE state = 'delivered'), (SELECT sum(attempts) FROM outbox)"
    )[0]
    res["totals"] = dict(
        zip(
            (
                "imaging_results",
                "drafts",
                "report_versions",
                "jobs",
                "job_attempts",
                "jobs_taken_over",
                "outbox_rows",
                "outbox_delivered",
                "outbox_attempts",
            ),
            totals,
            strict=True,
        )
    )
    # the receiver: one DiagnosticReport id per analysed study (medai-report-<study id>)
    got = fhir.reports()
    expected = {f"medai-report-{sid}" for sid, v in per_study.items() if v["fhir_delivered"]}
    res["fhir"] = {
        "transactions_invalid": len(fhir.invalid),
        "report_ids_expected": len(expected),
        "report_ids_received": len(got),
        "report_receipts": sum(got.values()),
        "duplicate_receipts": sum(n - 1 for n in got.values() if n > 1),
        "missing": sorted(expected - set(got)),
        "unexpected": sorted(set(got) - expected),
    }
    checks["every_delivery_received_exactly_once"] = (
        set(got) == expected and all(n == 1 for n in got.values()) and not fhir.invalid
    )
    return res


def stored_files(c: Cluster, checks: dict[str, bool]) -> dict[str, Any]:
    """Every file a row names is on the shared volume and decrypts to its name; temporary
    files the killed node left behind are counted (a process removes them after an hour)."""
    from medai.platform.records.blobs import BlobStore
    from medai.platform.records.crypto import BlobCipher

    store = BlobStore(c.home / "blobs", BlobCipher(json.loads(c.keys)))
    named = {
        r[0]
        for r in c.sql(
            "SELECT file_sha256 FROM studies UNION SELECT display_sha256 FROM studies WHERE "
            "display_sha256 IS NOT NULL UNION SELECT heatmap_sha256 FROM ai_results WHERE "
            "heatmap_sha256 IS NOT NULL"
        )
    }
    unreadable = []
    for sha in sorted(named):
        try:
            store.read(sha)
        except Exception as exc:
            unreadable.append(f"{sha[:12]}: {type(exc).__name__}")
    out = {
        "named": len(named),
        "unreadable": unreadable,
        "blobs_on_disk": sum(
            1 for p in store.root.rglob("*") if p.is_file() and not p.name.startswith(".")
        ),
        "temporary_left": sum(1 for p in store.root.glob(".upload-*")),
    }
    checks["every_stored_file_readable"] = not unreadable
    return out


def promotion(
    c: Cluster, client, n1: str, n2: str, bearer: dict, admin: dict, checks: dict[str, bool]
) -> dict[str, Any]:
    """Register the bundled triage-extended model and promote it on node 1 (its CLI); node 2
    answers triage with it within MEDAI_MODEL_WATCH_S plus the time it takes to load it
    (readiness's ``load_s``: the old model serves meanwhile)."""
    text = {"text": "iki gündür başım ağrıyor ve ateşim var"}

    def served(base: str) -> str:
        return client.post(f"{base}/triage", headers=bearer, json=text).json()["model"][
            "content_hash"
        ]

    before = served(n2)
    row = json.loads(
        c.cli(
            1, "models", "register", str(ROOT / "src/medai/assets/models/triage-extended"), "--json"
        ).stdout
    )
    promoted = json.loads(
        c.cli(
            1,
            "models",
            "promote",
            str(row["id"]),
            "--reason",
            "two-node check: promoted on node 1",
            "--override",
            "--json",
        ).stdout
    )
    want = promoted["content_hash"]
    (at,) = c.sql(
        "SELECT EXTRACT(EPOCH FROM state_at) FROM registered_models WHERE id = :i", i=row["id"]
    )[0]
    end, seen = time.time() + 90, {}
    while time.time() < end and len(seen) < 2:
        for name, base in (("node2", n2), ("node1", n1)):
            if name not in seen and served(base) == want:
                seen[name] = time.time()
        time.sleep(0.25)
    load_s = client.get(f"{n2}/health/ready", headers=admin).json()["models"]["triage"]["load_s"]
    after = {k: round(v - float(at), 2) for k, v in seen.items()}
    out = {
        "model_id": row["id"],
        "before": before,
        "promoted": want,
        "node2_serves_after_s": after.get("node2"),
        "node2_load_s": load_s,
        "node1_serves_after_s": after.get("node1"),
    }
    checks["promotion_reaches_node2_within_watch"] = (
        "node2" in after and before != want and after["node2"] <= WATCH_S + load_s + 1.0
    )
    checks["promotion_on_node1_itself"] = "node1" in after
    log(
        f"promotion on node 1 served by node 2 after {out['node2_serves_after_s']} s "
        f"(of which loading it: {load_s} s)"
    )
    return out
