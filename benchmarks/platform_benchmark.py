"""Load on the clinical platform: 20 signed-in clients uploading chest X-ray studies and reading
the worklist against `medai serve` on PostgreSQL, with wrk, in two job modes:

- ``embedded``: the analysis pool inside `medai serve` (the default install);
- ``celery``: `medai serve` publishing to Redis and 2 `medai worker` processes analysing.

After each run the jobs are drained and the database is counted: studies accepted (201) versus
stored, analyses per study (lost = never finished, duplicated = more than one AI result of a
kind or more than one AI report version), and jobs finished per minute.

    .venv/bin/python benchmarks/platform_benchmark.py [--duration 120] [--modes embedded,celery]

Writes docs/benchmarks/platform/results.json and results.md. Uses real chest X-rays from
../shared/data when present (else made-up images, which the bundled gate refuses quickly).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import psutil
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from serving_benchmark import free_port, image_listing, inputs  # noqa: E402

OUT = ROOT / "docs" / "benchmarks" / "platform"
PG_ADMIN = os.environ.get(
    "MEDAI_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1/postgres"
)
REDIS = os.environ.get("MEDAI_BENCH_REDIS", "redis://127.0.0.1:6379/9")
PASSWORD = "kestane-kebap-ilkbahar"  # passes the password policy (not built from "bench")


def fresh_database() -> tuple[str, callable]:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"medai_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", drop


class Memory:
    """Peak resident memory of a set of process trees, sampled every 0.2 s."""

    def __init__(self, procs: list[subprocess.Popen]) -> None:
        self.procs, self.peak, self._stop = procs, 0.0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def now(self) -> float:
        total = 0
        for proc in self.procs:
            try:
                p = psutil.Process(proc.pid)
                total += sum(q.memory_info().rss for q in [p, *p.children(recursive=True)])
            except psutil.Error:
                continue
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, self.now())

    def stop(self) -> float:
        self._stop.set()
        self._t.join()
        return round(self.peak, 1)


def start(mode: str, env: dict, log_dir: Path) -> tuple[list[subprocess.Popen], str]:
    port = free_port()
    procs = []
    cmd = [sys.executable, "-m", "medai.cli"]
    log = open(log_dir / f"{mode}-serve.log", "w")  # noqa: SIM115
    procs.append(
        subprocess.Popen(
            [*cmd, "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    )
    if mode == "celery":
        for i in range(2):
            wlog = open(log_dir / f"{mode}-worker{i}.log", "w")  # noqa: SIM115
            procs.append(
                subprocess.Popen(
                    [*cmd, "worker", "--queues", "cpu"],
                    env=env,
                    stdout=wlog,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 240
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/api/v1/health/ready", timeout=30).status_code == 200:
                return procs, base
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{mode}: server not ready; see {log_dir}")


def stop(procs: list[subprocess.Popen]) -> None:
    """Stop process groups started with ``start_new_session``: TERM, then KILL after 60 s."""
    import signal

    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)


def wrk(
    base: str, token: str, listing: Path, duration: int, connections: int, share: float
) -> dict:
    env = dict(
        os.environ, BENCH_TOKEN=token, BENCH_FILES=str(listing), BENCH_UPLOAD_SHARE=str(share)
    )
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "--timeout",
            "30s",
            "-s",
            str(ROOT / "benchmarks" / "platform" / "wrk_platform.lua"),
            base,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    result["rps"] = round(result["requests"] / result["duration_s"], 1)
    return result


def count(db_url: str) -> dict:
    engine = create_engine(db_url)
    with engine.connect() as c:
        q = lambda sql: c.execute(text(sql)).all()  # noqa: E731
        out = {
            "studies": q("SELECT COUNT(*) FROM studies")[0][0],
            "study_status": dict(q("SELECT status, COUNT(*) FROM studies GROUP BY status")),
            "job_status": dict(q("SELECT status, COUNT(*) FROM jobs GROUP BY status")),
            "duplicated_results": q(
                "SELECT COUNT(*) FROM (SELECT study_id, kind FROM "
                "ai_results GROUP BY study_id, kind HAVING COUNT(*) > 1) x"
            )[0][0],
            "duplicated_reports": q(
                "SELECT COUNT(*) FROM (SELECT study_id FROM report_versions"
                " GROUP BY study_id HAVING COUNT(*) > 1) x"
            )[0][0],
            "job_attempts_over_1": q("SELECT COUNT(*) FROM jobs WHERE attempts > 1")[0][0],
        }
        span = q("SELECT MIN(created_at), MAX(finished_at) FROM jobs WHERE status = 'done'")[0]
        done = out["job_status"].get("done", 0)
        if done and span[0] and span[1]:
            minutes = (span[1] - span[0]).total_seconds() / 60
            out["jobs_per_minute"] = round(done / minutes, 1) if minutes > 0 else None
    engine.dispose()
    return out


def drain(db_url: str, timeout: float) -> float:
    engine = create_engine(db_url)
    start = time.time()
    try:
        while time.time() - start < timeout:
            with engine.connect() as c:
                left = c.execute(
                    text("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')")
                ).scalar()
            if not left:
                break
            time.sleep(1)
    finally:
        engine.dispose()
    return round(time.time() - start, 1)


def run_mode(mode: str, listing: Path, args, work: Path) -> dict:
    db_url, drop = fresh_database()
    home = work / mode
    home.mkdir()
    env = dict(
        os.environ,
        MEDAI_HOME=str(home),
        MEDAI_DATABASE_URL=db_url,
        MEDAI_JOB_THREADS="1" if mode == "embedded" else "0",
    )
    if mode == "celery":
        env["MEDAI_BROKER_URL"] = REDIS
    # a radiologist chooses their own password with the enrolment code `users add` prints
    add = subprocess.run(
        [
            sys.executable,
            "-m",
            "medai.cli",
            "users",
            "add",
            "bench",
            "--role",
            "radiologist",
            "--json",
        ],
        text=True,
        env=env,
        capture_output=True,
    )
    assert add.returncode == 0, add.stderr
    enrol = subprocess.run(
        [
            sys.executable,
            "-m",
            "medai.cli",
            "users",
            "enrol",
            json.loads(add.stdout)["enrol_code"],
            "--password-stdin",
        ],
        input=PASSWORD + "\n",
        text=True,
        env=env,
        capture_output=True,
    )
    assert enrol.returncode == 0, enrol.stderr
    procs, base = start(mode, env, work)
    try:
        token = httpx.post(
            f"{base}/api/v1/auth/login",
            json={"username": "bench", "password": PASSWORD},
            timeout=30,
        ).json()["access_token"]
        memory = Memory(procs)
        print(f"[{mode}] wrk {args.duration}s, {args.connections} clients", file=sys.stderr)
        load = wrk(base, token, listing, args.duration, args.connections, args.upload_share)
        at_end = count(db_url)
        print(f"[{mode}] draining {at_end['job_status']}", file=sys.stderr)
        drained_s = drain(db_url, args.drain_timeout)
        result = {
            "mode": mode,
            "load": load,
            "drain_s": drained_s,
            "peak_rss_mb": memory.stop(),
            "jobs_at_end_of_load": at_end["job_status"],
            **count(db_url),
        }
    finally:
        stop(procs)
        drop()
    result["lost_studies"] = result["load"]["created"] - result["studies"]
    result["unfinished_jobs"] = sum(
        v for k, v in result["job_status"].items() if k not in ("done", "failed")
    )
    return result


def render(results: list[dict], meta: dict) -> str:
    lines = [
        "| mode | req/s | p50 ms | p95 ms | p99 ms | errors | studies accepted / stored | "
        "unfinished | duplicated | jobs/min | drain s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        load = r["load"]
        lines.append(
            f"| {r['mode']} | {load['rps']} | {load['p50_ms']} | {load['p95_ms']} | "
            f"{load['p99_ms']} | {load['non_2xx'] + load['socket_errors']} | "
            f"{load['created']} / {r['studies']} | {r['unfinished_jobs']} | "
            f"{r['duplicated_results'] + r['duplicated_reports']} | {r.get('jobs_per_minute')} | "
            f"{r['drain_s']} | {r['peak_rss_mb']} |"
        )
    return (
        f"Run {meta['date']} on {meta['machine']}; {meta['connections']} wrk clients, "
        f"{meta['duration_s']} s each, {meta['upload_share']:.0%} uploads, images: "
        f"{meta['images']}.\n\n" + "\n".join(lines) + "\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=120)
    ap.add_argument("--connections", type=int, default=20)
    ap.add_argument("--upload-share", type=float, default=0.05)
    ap.add_argument("--drain-timeout", type=float, default=1800)
    ap.add_argument("--modes", default="embedded,celery")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="medai-platform-bench-"))
    _texts, images = inputs(work, 1, 40)
    listing = image_listing(work, images)
    results = [run_mode(m, listing, args, work) for m in args.modes.split(",")]
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} CPU cores, no GPU",
        "connections": args.connections,
        "duration_s": args.duration,
        "upload_share": args.upload_share,
        "images": "real chest X-rays (shared data)"
        if "shared" in str(images[0])
        else "made-up PNGs",
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=2) + "\n"
    )
    (OUT / "results.md").write_text(render(results, meta))
    print(render(results, meta))


if __name__ == "__main__":
    main()
