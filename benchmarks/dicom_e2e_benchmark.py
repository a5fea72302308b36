"""PACS end to end (issue 25): chest X-ray studies sent by a modality (dcmtk's storescu) to
`medai serve --dicom-port`, analysed, and the AI findings SR stored in a real Orthanc.

    .venv/bin/python benchmarks/dicom_e2e_benchmark.py --n 200 --mode both \\
        --out docs/benchmarks/pacs/results.json

Real processes, as a hospital runs them: a fresh Orthanc (``tests/helpers/orthanc.py``) is the
PACS; ``medai serve --dicom-port P`` on a fresh PostgreSQL database (``--database sqlite``: the
SQLite file of a temporary MEDAI_HOME) with the bundled models, ``MEDAI_DICOM_SEND_TO`` naming
Orthanc, and its outbox thread sending the SR and the heatmap SC. Modes: ``embedded`` (the
analysis pool inside serve, MEDAI_JOB_THREADS default) and ``celery`` (serve publishing to
Redis, MEDAI_JOB_THREADS=0, and 2 `medai worker` processes). Thread counts and every other
setting are the product's defaults (OMP_NUM_THREADS and MEDAI_* are cleared for the children).

Data: ``--n`` frontal images of ``../shared/data/chest_xray`` (evenly spread over the manifest,
laterals left out), each made a CR instance of its own study with pydicom: BodyPartExamined
CHEST, the manifest's view (PA or AP; PA when it gives none), upscaled (bicubic) so that the
longest side is ``--size`` pixels (2500: a plain radiograph's matrix, ~12 MB, 12 bits stored),
PixelSpacing for a 43 cm detector. The shared images are ≤ 256 px: the pixels are interpolated,
the file sizes and decoding costs are a radiograph's. Built once in a temporary folder, deleted
at the end (never in the repository).

Per mode, after ``--warmup`` studies (models loaded, not counted), each arrival pattern in
``--arrival``: ``burst`` sends all n in one association (a PACS forwarding a backlog:
capacity), ``paced`` sends one study per association every 60/``--rate`` s (a modality at the
goal's rate: latency). A thread polls Orthanc's /changes every 0.1 s and notes when each
study's SR appears. Per study: received = the node's filing time (``dicom_instances``),
latency = SR seen in Orthanc - received; the database's job and outbox times split it into
queue, analysis and outbox. Studies per minute = n / (last SR stored - first received).
CPU seconds of serve, the workers, Orthanc and the whole machine are read with psutil over
each phase, the largest other processes (PostgreSQL, the broker, other people's jobs) named.
Finally the model's own in-process time per image (bundled cxr model, one thread as serve's
plan gives it) beside the other steps of one study's path.

Prints one JSON object (and writes it to ``--out``). Needs Orthanc with its DICOMweb plugin,
dcmtk's storescu, the shared data, PostgreSQL and (for celery) Redis on localhost.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from platform_benchmark import stop as stop_all  # noqa: E402  (TERM, then KILL, per group)

DATA = ROOT.parent / "shared" / "data" / "chest_xray"
DETECTOR_MM = 430.0  # a 43 cm cassette/detector side
LATERAL = {"L", "LL", "RL", "LATERAL"}
WORKERS = 2


# --- the studies ------------------------------------------------------------------------------


def pick_images(data: Path, count: int) -> list[dict]:
    """``count`` frontal rows spread evenly over the manifest (all sources in proportion)."""
    with (data / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["view"].strip().upper() not in LATERAL]
    rows.sort(key=lambda r: r["file"])
    step = len(rows) / count
    return [rows[int(i * step) % len(rows)] for i in range(count)]


def view_of(row: dict) -> str:
    view = row["view"].strip().upper()
    return "AP" if view.startswith("AP") else "PA"


def build_studies(rows: list[dict], data: Path, out: Path, size: int, tag: str) -> list[Path]:
    """One CR chest instance per row, each its own study (fresh UIDs)."""
    import numpy as np
    from PIL import Image

    from helpers.dicom import make_dicom

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, row in enumerate(rows):
        img = Image.open(data / row["file"]).convert("L")
        scale = size / max(img.size) if size else 1.0
        if scale != 1.0:
            img = img.resize(
                (round(img.width * scale), round(img.height * scale)), Image.Resampling.BICUBIC
            )
        px = (np.asarray(img, dtype=np.uint32) * 4095 // 255).astype("<u2")
        spacing = f"{DETECTOR_MM / max(img.size):.4f}"
        paths.append(
            make_dicom(
                out / f"{tag}{i:04d}.dcm",
                "CR",
                view=view_of(row),
                accession=f"{tag}{i:05d}",
                name=f"BENCH^{tag.upper()}^{i}",
                patient_id=f"BENCH-{tag}-{i}",
                rows=img.height,
                cols=img.width,
                seed=i,
                PixelData=px.tobytes(),
                PixelSpacing=[spacing, spacing],
                ImagerPixelSpacing=[spacing, spacing],
                StudyDescription="XR CHEST",
            )
        )
    return paths


def study_uid(path: Path) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)


# --- the PACS side: when each study's SR appears -----------------------------------------------


class SrWatcher:
    """Polls Orthanc's /changes; the first time an SR instance of each study was seen."""

    def __init__(self, pacs, every_s: float = 0.1) -> None:
        self.pacs, self.every_s = pacs, every_s
        self.seen: dict[str, float] = {}
        self._series: dict[str, tuple[str, str]] = {}
        self._since = 0
        self._stop = threading.Event()
        self.errors = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _series_of(self, series_id: str) -> tuple[str, str]:
        if series_id not in self._series:
            series = self.pacs.rest(f"/series/{series_id}")
            study = self.pacs.rest(f"/studies/{series['ParentStudy']}")
            self._series[series_id] = (
                series["MainDicomTags"].get("Modality", ""),
                study["MainDicomTags"]["StudyInstanceUID"],
            )
        return self._series[series_id]

    def poll(self) -> None:
        while True:
            page = self.pacs.rest(f"/changes?since={self._since}&limit=1000")
            now = time.time()
            for change in page["Changes"]:
                if change["ChangeType"] == "NewInstance":
                    instance = self.pacs.rest(f"/instances/{change['ID']}")
                    modality, uid = self._series_of(instance["ParentSeries"])
                    if modality == "SR":
                        self.seen.setdefault(uid, now)
            self._since = page["Last"]
            if page["Done"]:
                return

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.poll()
            except OSError:
                self.errors += 1

    def wait(self, uids: list[str], timeout_s: float, stall_s: float) -> None:
        """Until every study's SR is in, or nothing new came for ``stall_s``."""
        deadline, last, count = time.time() + timeout_s, time.time(), -1
        while time.time() < deadline:
            have = sum(u in self.seen for u in uids)
            if have == len(uids):
                return
            if have != count:
                count, last = have, time.time()
            elif time.time() - last > stall_s:
                return
            time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


# --- medai as a hospital runs it ---------------------------------------------------------------


def medai_env(mode: str, home: Path, db_url: str, pacs, broker: str) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MEDAI_")
        and k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    }
    env.update(
        MEDAI_HOME=str(home),
        MEDAI_DATABASE_URL=db_url,
        MEDAI_DICOM_SEND_TO=f"{pacs.aet}@127.0.0.1:{pacs.dicom_port}",
        MEDAI_DICOM_ALLOW='["CR01"]',  # the modality of send(); a node admits none by default
    )
    if mode == "celery":
        env.update(MEDAI_BROKER_URL=broker, MEDAI_JOB_THREADS="0")
    return env


def start_medai(mode: str, env: dict, logs: Path) -> tuple[list[subprocess.Popen], int]:
    """``medai serve --dicom-port`` (+ the Celery workers), once ready; the DICOM port."""
    import httpx

    from helpers.orthanc import free_port

    http_port, dicom_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "medai.cli"]
    procs = []

    def spawn(args: list[str], name: str) -> None:
        with (logs / f"{mode}-{name}.log").open("w") as log:
            procs.append(
                subprocess.Popen(
                    [*cmd, *args],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )

    spawn(["serve", "--port", str(http_port), "--dicom-port", str(dicom_port)], "serve")
    deadline = time.time() + 300
    ready = False
    while time.time() < deadline and not ready and procs[0].poll() is None:
        try:
            ready = (
                httpx.get(
                    f"http://127.0.0.1:{http_port}/api/v1/health/ready", timeout=30
                ).status_code
                == 200
            )
        except httpx.HTTPError:
            pass
        time.sleep(0 if ready else 0.5)
    if ready and mode != "celery":
        return procs, dicom_port
    # the workers only once serve has migrated the fresh database: processes migrating one
    # new PostgreSQL database at the same moment race on CREATE TABLE (reported, issue 25)
    for i in range(WORKERS if ready else 0):
        spawn(["worker", "--queues", "cpu"], f"worker{i}")
    while ready and time.time() < deadline and all(p.poll() is None for p in procs):
        if all(
            " ready." in (logs / f"{mode}-worker{i}.log").read_text(errors="replace")
            for i in range(WORKERS)
        ):
            return procs, dicom_port
        time.sleep(0.5)
    stop_all(procs)
    tails = "\n".join(
        f"--- {log.name}\n{log.read_text(errors='replace')[-1500:]}"
        for log in sorted(logs.glob(f"{mode}-*.log"))
    )
    raise RuntimeError(f"{mode}: medai did not start; its logs:\n{tails}")


def send(port: int, files: list[Path], aet: str = "CR01") -> subprocess.CompletedProcess:
    from helpers.dicom import STORESCU

    return subprocess.run(
        [STORESCU, "-aet", aet, "-aec", "MEDAI", "127.0.0.1", str(port), *map(str, files)],
        capture_output=True,
        text=True,
    )


def send_paced(port: int, files: list[Path], rate: float) -> tuple[list[float], int]:
    """One association per study, the k-th started at k × 60/rate s; their start times and
    the number of failed sends."""
    start, starts, failed = time.time(), [], 0
    for k, path in enumerate(files):
        time.sleep(max(0.0, start + k * 60.0 / rate - time.time()))
        starts.append(time.time())
        failed += send(port, [path]).returncode != 0
    return starts, failed


# --- measuring ---------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float | None:
    """Nearest rank: the smallest value with at least q of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def dist(values: list[float], digits: int = 2) -> dict:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(statistics.median(values), digits),
        "p95": round(pct(values, 0.95), digits),
        "max": round(max(values), digits),
    }


def _epoch(value) -> float | None:
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromisoformat(str(value))
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()


def database_times(db_url: str) -> dict[str, dict]:
    """Per StudyInstanceUID: received, job and outbox (findings SR to Orthanc) times."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT s.study_uid, s.status, i.received, j.started_at, j.finished_at, "
                    "j.attempts, o.created_at, o.delivered_at, o.state, o.attempts FROM studies s "
                    "JOIN (SELECT study_id, MIN(created_at) AS received FROM dicom_instances "
                    "GROUP BY study_id) i ON i.study_id = s.id "
                    "LEFT JOIN jobs j ON j.study_id = s.id AND j.kind = 'analyse' "
                    "LEFT JOIN outbox o ON o.study_id = s.id AND o.event = 'analysed' "
                    "AND o.destination = 'dicom'"
                )
            ).all()
    finally:
        engine.dispose()
    keys = (
        "status",
        "received",
        "job_started",
        "job_finished",
        "job_attempts",
        "outbox_created",
        "delivered",
        "outbox_state",
        "outbox_attempts",
    )
    out = {}
    for uid, *values in rows:
        rec = dict(zip(keys, values, strict=True))
        for k in ("received", "job_started", "job_finished", "outbox_created", "delivered"):
            rec[k] = _epoch(rec[k])
        out[uid] = rec
    return out


class Cpu:
    """CPU seconds of our process trees and of the whole machine over a phase; ``benchmark``:
    this process and the storescu runs it waited for (the servers are its children too, but
    are not waited for during a phase). ``others``: every other process that ran (PostgreSQL,
    the broker, other people's jobs), the largest named; what no process accounts for (the
    kernel's network work, processes that came and went) is ``unattributed``."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        import psutil

        self.psutil, self.groups = psutil, groups
        self.start_wall, self.start_busy = time.time(), self._busy()
        self.start_groups, self.start_all = self._groups()[0], self._all()

    def _busy(self) -> float:
        t = self.psutil.cpu_times()  # guest time is counted in user already
        return sum(
            getattr(t, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq", "steal")
        )

    @staticmethod
    def _label(info: dict) -> str:
        cmd = info.get("cmdline") or []
        name = info.get("name") or "?"
        if len(cmd) > 1 and "python" in os.path.basename(cmd[0]):
            args = [a for a in cmd[1:] if not a.startswith("-") or a == "-m"]
            return f"python {' '.join(args[:3])}"[:60]
        return name

    def _all(self) -> dict[int, tuple[str, float]]:
        out = {}
        for proc in self.psutil.process_iter(["name", "cmdline", "cpu_times"]):
            c = proc.info["cpu_times"]
            if c is not None:
                out[proc.pid] = (self._label(proc.info), c.user + c.system)
        return out

    def _groups(self) -> tuple[dict[str, float], set[int]]:
        out, pids_seen = {}, {os.getpid()}
        for name, pids in self.groups.items():
            total = 0.0
            for pid in pids:
                try:
                    root = self.psutil.Process(pid)
                    for proc in (root, *root.children(recursive=True)):
                        c = proc.cpu_times()
                        total += c.user + c.system
                        pids_seen.add(proc.pid)
                except self.psutil.Error:
                    continue
            out[name] = total
        t = os.times()
        out["benchmark"] = t.user + t.system + t.children_user + t.children_system
        return out, pids_seen

    def stop(self) -> dict:
        now, ours_pids = self._groups()
        after = self._all()
        busy, wall = self._busy() - self.start_busy, time.time() - self.start_wall
        ours = {k: round(now[k] - self.start_groups[k], 1) for k in now}
        others: dict[str, float] = {}
        for pid, (label, cpu) in after.items():
            if pid not in ours_pids:
                before = self.start_all.get(pid)
                used = cpu - (before[1] if before else 0.0)
                if used > 0:
                    others[label] = others.get(label, 0.0) + used
        other_s = busy - sum(ours.values())
        top = sorted(others.items(), key=lambda kv: -kv[1])[:6]
        return {
            "wall_s": round(wall, 1),
            "cores": self.psutil.cpu_count(),
            "machine_busy_s": round(busy, 1),
            "machine_busy_share": round(busy / (wall * self.psutil.cpu_count()), 2),
            "processes_s": ours,
            "others_s": round(other_s, 1),
            "others_top_s": {label: round(v, 1) for label, v in top},
            "unattributed_s": round(other_s - sum(others.values()), 1),
        }


def phase(
    name: str,
    files: list[Path],
    port: int,
    watcher: SrWatcher,
    db_url: str,
    cpu_groups: dict[str, list[int]],
    args,
) -> dict:
    uids = [study_uid(f) for f in files]
    print(f"[{name}] sending {len(files)} studies", file=sys.stderr)
    cpu = Cpu(cpu_groups)
    load_before = os.getloadavg()
    started = time.time()
    sent_at: dict[str, float] = {}
    if name.endswith("burst"):
        done = send(port, files)
        send_s, failed = time.time() - started, int(done.returncode != 0)
        if failed:
            print(done.stderr[-2000:], file=sys.stderr)
    else:
        starts, failed = send_paced(port, files, args.rate)
        send_s = time.time() - started
        sent_at = dict(zip(uids, starts, strict=True))
    watcher.wait(uids, timeout_s=args.timeout, stall_s=args.stall)
    machine = cpu.stop()
    db = database_times(db_url)
    lat, from_sent, queue, analysis, outbox, visible = [], [], [], [], [], []
    missing = []
    for uid in uids:
        rec, seen = db.get(uid), watcher.seen.get(uid)
        if rec is None or seen is None or rec["received"] is None:
            missing.append({"status": rec and rec["status"], "outbox": rec and rec["outbox_state"]})
            continue
        lat.append(seen - rec["received"])
        if uid in sent_at:
            from_sent.append(seen - sent_at[uid])
        if rec["job_started"] and rec["job_finished"]:
            queue.append(rec["job_started"] - rec["received"])
            analysis.append(rec["job_finished"] - rec["job_started"])
            if rec["delivered"]:
                outbox.append(rec["delivered"] - rec["job_finished"])
                visible.append(seen - rec["delivered"])
    done_uids = [u for u in uids if u in watcher.seen and u in db]
    first = min((db[u]["received"] for u in done_uids), default=None)
    last = max((watcher.seen[u] for u in done_uids), default=None)
    span = (last - first) if done_uids else None
    result = {
        "arrival": name.split("-")[-1],
        "n": len(files),
        "sr_stored": len(lat),
        "send_failures": failed,
        "storescu_s": round(send_s, 2),
        "span_s": round(span, 1) if span else None,
        "studies_per_min": round(60 * len(lat) / span, 1) if span else None,
        "latency_s": dist(lat),
        "stages_s": {
            "queue": dist(queue),
            "analysis": dist(analysis),
            "outbox": dist(outbox),
            "delivered_to_seen": dist(visible),
        },
        "job_attempts_over_1": sum(1 for u in done_uids if (db[u]["job_attempts"] or 0) > 1),
        "outbox_attempts_over_1": sum(1 for u in done_uids if (db[u]["outbox_attempts"] or 0) > 1),
        "missing": missing[:10],
        "cpu": machine,
        "loadavg_1m": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }
    if name.endswith("paced"):
        result["offered_per_min"] = args.rate
        result["latency_from_sent_s"] = dist(from_sent)
    print(
        f"[{name}] {result['sr_stored']}/{len(files)} SRs, "
        f"{result['studies_per_min']}/min, latency {result['latency_s']}",
        file=sys.stderr,
    )
    return result


def run_mode(mode: str, sets: dict[str, list[Path]], warm: list[Path], work: Path, args) -> dict:
    from helpers.orthanc import _stop, start_orthanc
    from platform_benchmark import REDIS, fresh_database

    home, pacs_home = work / f"{mode}-home", work / f"{mode}-orthanc"
    home.mkdir()
    pacs_home.mkdir()
    drop = None
    if args.database == "postgres":
        db_url, drop = fresh_database()
    else:
        db_url = f"sqlite:///{home / 'medai.db'}"
    procs: list[subprocess.Popen] = []
    pacs = watcher = None
    try:
        pacs = start_orthanc(pacs_home)
        if mode == "celery":
            from medai.platform.jobs.queue import celery_app

            celery_app(REDIS).control.purge()
        env = medai_env(mode, home, db_url, pacs, REDIS)
        if args.job_threads is not None and mode == "embedded":
            env["MEDAI_JOB_THREADS"] = str(args.job_threads)
        procs, port = start_medai(mode, env, work)
        watcher = SrWatcher(pacs)
        groups = {"serve": [procs[0].pid], "orthanc": [pacs.process.pid]}
        if mode == "celery":
            groups["workers"] = [p.pid for p in procs[1:]]
        if warm:
            print(f"[{mode}] warm-up: {len(warm)} studies", file=sys.stderr)
            send(port, warm)
            watcher.wait([study_uid(f) for f in warm], timeout_s=600, stall_s=300)
        phases = [
            phase(f"{mode}-{arrival}", files, port, watcher, db_url, groups, args)
            for arrival, files in sets.items()
        ]
        instances = len(pacs.rest("/instances"))
    finally:
        if watcher is not None:
            watcher.stop()
        stop_all(procs)
        if pacs is not None:
            _stop(pacs.process)
        if drop is not None:
            drop()
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(pacs_home, ignore_errors=True)
    return {
        "mode": mode,
        "database": args.database,
        "analysis": f"{args.job_threads or 'MEDAI_JOB_THREADS default (1)'} thread(s) inside serve"
        if mode == "embedded"
        else f"{WORKERS} `medai worker` processes (Redis)",
        "warmup_studies": len(warm),
        "orthanc_instances": instances,
        "phases": phases,
    }


# --- the model's own time beside the other steps -------------------------------------------------


def profile(files: list[Path], sample: int) -> dict:
    """Per image, in this process with one thread (serve's plan on this machine): decoding,
    the display rendition, the model's findings (the model's own time), Grad-CAM, the draft
    and building the SR and the heatmap SC, as the analysis and the outbox do."""
    import types

    import pydicom

    from medai.imaging.reading import heatmap_label as _heatmap_label
    from medai.platform.delivery import payloads
    from medai.platform.documents.dicom_objects import SourceImage
    from medai.platform.documents.sc_pm.dicom_heatmap import heatmap_sc
    from medai.platform.documents.sr.findings_sr import findings_sr
    from medai.services import imaging as imaging_service
    from medai.services.model_handles import ModelHandles
    from medai.services.reports import shared_drafter
    from medai.services.runtime import apply_thread_limits, plan_cpu
    from medai.settings import get_settings

    plan = plan_cpu(1)
    apply_thread_limits(plan)
    predictor = ModelHandles(
        threads=plan.threads, imaging_runtime=get_settings().serving.imaging_runtime
    ).get("cxr")
    drafter = shared_drafter(None)
    steps: dict[str, list[float]] = {}
    created = dt.datetime.now(dt.UTC)
    chosen = files[: sample + 1]
    for k, path in enumerate(chosen):  # the first image warms up, not counted
        times: dict[str, float] = {}

        def timed(step, fn, *a, times=times, **kw):
            t0 = time.perf_counter()
            out = fn(*a, **kw)
            times[step] = 1000 * (time.perf_counter() - t0)
            return out

        data = path.read_bytes()
        image = timed("decode", imaging_service.read_image, data)
        display = timed("display_png", imaging_service.display_png, image)
        result = timed("model", imaging_service.analyse, predictor, image)
        meta, png = timed(
            "heatmap", imaging_service.heatmap, predictor, image, _heatmap_label(result)
        )
        payload = result.model_dump(mode="json")
        timed(
            "draft",
            drafter.draft,
            data,
            payload,
            task="cxr",
            lang="tr",
            findings_model=predictor.identity,
        )
        source = SourceImage.from_dataset(pydicom.dcmread(path, stop_before_pixels=True))
        timed("findings_sr", findings_sr, source, payload, created=created)
        blobs = {"film": display, "heat": png}
        p = types.SimpleNamespace(store=types.SimpleNamespace(read=blobs.__getitem__))
        parts = types.SimpleNamespace(film_sha="film", source_sha="source", heatmap_sha="heat")
        rgb = timed("heatmap_film", payloads.heatmap_rgb, p, parts, png)
        timed(
            "heatmap_sc",
            heatmap_sc,
            source,
            rgb,
            label=meta.label,
            model=payload["model"],
            created=created,
        )
        if k:
            for step, ms in times.items():
                steps.setdefault(step, []).append(ms)
    out = {step: dist(ms, 1) for step, ms in steps.items()}
    total = [sum(v[i] for v in steps.values()) for i in range(len(chosen) - 1)]
    return {
        "images": len(chosen) - 1,
        "threads": plan.threads,
        "runtime": type(getattr(predictor, "model", None)).__name__,
        "steps_ms": out,
        "all_steps_ms": dist(total, 1),
        "model_per_min_one_thread": round(60000 / statistics.median(steps["model"]), 1),
    }


# --- main --------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="studies per arrival pattern")
    ap.add_argument("--mode", choices=("embedded", "celery", "both"), default="both")
    ap.add_argument("--arrival", choices=("burst", "paced", "both"), default="both")
    ap.add_argument("--rate", type=float, default=60.0, help="paced: studies per minute")
    ap.add_argument("--size", type=int, default=2500, help="longest side in pixels (0: as is)")
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    ap.add_argument("--profile", type=int, default=20, help="images timed in process (0: no)")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument(
        "--stall", type=float, default=300, help="give up waiting when no SR arrived for this long"
    )
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path)
    ap.add_argument(
        "--job-threads",
        type=int,
        default=None,
        help="embedded: MEDAI_JOB_THREADS for serve (default: the product's)",
    )
    args = ap.parse_args()

    from helpers.dicom import STORESCU
    from helpers.orthanc import ORTHANC, OrthancUnavailable, find_plugin

    try:
        find_plugin()
    except OrthancUnavailable as exc:
        sys.exit(str(exc))
    if STORESCU is None or not os.access(ORTHANC, os.X_OK):
        sys.exit("needs dcmtk's storescu and Orthanc (make integration-deps)")
    if not (args.data / "manifest.csv").is_file():
        sys.exit(f"no shared chest X-rays at {args.data}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # cleanup runs in finally
    modes = ["embedded", "celery"] if args.mode == "both" else [args.mode]
    arrivals = ["burst", "paced"] if args.arrival == "both" else [args.arrival]
    work = Path(tempfile.mkdtemp(prefix="medai-pacs-e2e-"))
    try:
        rows = pick_images(args.data, args.n)
        warm_rows = pick_images(args.data, args.warmup + 7)[-args.warmup :] if args.warmup else []
        print(
            f"building {len(modes) * (len(arrivals) * args.n + len(warm_rows))} instances",
            file=sys.stderr,
        )
        built = {
            m: (
                {
                    a: build_studies(
                        rows, args.data, work / "in" / m / a, args.size, f"{m[0]}{a[0]}"
                    )
                    for a in arrivals
                },
                build_studies(warm_rows, args.data, work / "in" / m / "w", args.size, f"{m[0]}w"),
            )
            for m in modes
        }
        first = next(iter(built.values()))[0][arrivals[0]][0]
        report = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": {"cores": os.cpu_count(), "gpu": False, "python": sys.version.split()[0]},
            "code": code_state(),
            "data": {
                "source": str(args.data),
                "images": len(rows),
                "views": {v: sum(view_of(r) == v for r in rows) for v in ("PA", "AP")},
                "longest_side_px": args.size,
                "bytes_each": first.stat().st_size,
            },
            "rate_paced_per_min": args.rate if "paced" in arrivals else None,
            "job_threads": args.job_threads,
            "pythonpath": os.environ.get("PYTHONPATH"),
            "results": [],
            "model_in_process": None,
        }
        for m in modes:  # saved after each mode: a later failure keeps what was measured
            report["results"].append(run_mode(m, *built[m], work, args))
            save(report, args.out)
        if args.profile:
            try:
                report["model_in_process"] = profile(built[modes[0]][0][arrivals[0]], args.profile)
            except Exception as exc:  # the end-to-end numbers stand without it
                report["model_in_process"] = {"error": f"{type(exc).__name__}: {exc}"}
        save(report, args.out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))


def code_state() -> dict:
    """The commit measured, and any file of src/ that differed from it when the run began."""

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout

    changed = [line[3:] for line in git("status", "--porcelain", "--", "src").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "src_changed": changed}


def save(report: dict, out: Path | None) -> None:
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
