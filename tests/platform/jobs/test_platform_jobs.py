"""Background jobs: one claimer per job, leases taken over when a worker dies, urgent first,
an analysis repeated after a crash duplicates nothing — and a real server killed with
SIGKILL mid-analysis finishes every study after its restart."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest
from sqlalchemy import func, select

from helpers.platform import (
    bare_platform,
    cli_add_user,
    free_port,
    http_login,
    png_bytes,
    start_serve,
)
from medai.platform.dicom.arrival import Arrival

pytestmark = [pytest.mark.server]


@pytest.fixture(params=["sqlite", "postgresql"])
def plat(request, tmp_path, tfidf_model_dir, tiny_imaging_dir):
    with bare_platform(request.param, tmp_path, tfidf_model_dir, tiny_imaging_dir) as p:
        yield p


def make_studies(p, n: int, urgent_every: int = 0) -> list[tuple[int, int]]:
    from medai.platform.records.tables import User
    from medai.platform.worklist import filing

    out = []
    for i in range(n):
        sha = p.store.put_bytes(png_bytes(i))
        with p.db.session() as db:
            user = db.scalar(select(User))
            s, j = filing.create(
                db,
                Arrival(
                    sha=sha,
                    size=1,
                    content_type="image/png",
                    task="cxr",
                    uploaded_by=user.id,
                    urgent=bool(urgent_every and i % urgent_every == 0),
                ),
            )
            out.append((s.id, j.id))
    return out


def test_concurrent_claimers_never_share_a_job(plat):
    from medai.platform.jobs.jobs import claim

    make_studies(plat, 24)
    claimed: list[int] = []
    lock = threading.Lock()

    def worker(name):
        while (job := claim(plat, name, lease_s=60)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == 24 and len(set(claimed)) == 24


def test_an_expired_lease_is_taken_over_and_the_dead_worker_cannot_finish_it(plat):
    from medai.platform.jobs.jobs import claim, finish, renew

    make_studies(plat, 1)
    job = claim(plat, "dead", lease_s=0.2)
    assert claim(plat, "other", lease_s=60) is None  # the lease still holds
    time.sleep(0.4)
    taken = claim(plat, "other", lease_s=60)
    assert taken is not None and taken.id == job.id and taken.attempts == 2
    assert not renew(plat, job.id, "dead", 60)
    assert finish(plat, job, "dead") == "running"  # ignored: "other" owns it now
    assert finish(plat, taken, "other") == "done"


def test_urgent_jobs_are_claimed_first(plat):
    from medai.platform.jobs.jobs import claim

    made = make_studies(plat, 6, urgent_every=3)  # studies 0 and 3 are urgent
    order = [claim(plat, "w", 60).study_id for _ in range(6)]
    assert order[:2] == [made[0][0], made[3][0]]


def test_a_repeated_analysis_duplicates_nothing(plat):
    from medai.platform.reading.analysis import analyse_study
    from medai.platform.records.tables import AIResultRow, ReportVersion, Study

    ((sid, _),) = make_studies(plat, 1)
    assert analyse_study(plat, sid) == "ai_drafted"
    with plat.db.session() as db:  # as if a crash hit after the work, before the job closed
        db.get(Study, sid).status = "analysing"
    assert analyse_study(plat, sid) == "ai_drafted"
    with plat.db.session() as db:
        assert db.scalar(select(func.count()).select_from(AIResultRow)) == 2  # imaging+draft
        assert db.scalar(select(func.count()).select_from(ReportVersion)) == 1


def test_a_failing_analysis_is_retried_then_marked_failed(plat, monkeypatch):
    from medai.platform.jobs.jobs import MAX_ATTEMPTS, JobPool
    from medai.platform.reading import analysis
    from medai.platform.records.tables import Job, Study

    ((sid, jid),) = make_studies(plat, 1)
    calls = []

    def broken(p, study_id):
        calls.append(study_id)
        raise RuntimeError("disk full")

    monkeypatch.setattr(analysis, "analyse_study", broken)
    pool = JobPool(plat, threads=1, lease_s=30, poll_s=0.05)
    pool.start()
    try:
        assert pool.drain(30)
    finally:
        pool.stop()
    with plat.db.session() as db:
        assert db.get(Job, jid).status == "failed" and db.get(Job, jid).error == "RuntimeError"
        study = db.get(Study, sid)
        assert study.status == "failed" and "RuntimeError" in study.reason
    assert len(calls) == MAX_ATTEMPTS


@pytest.mark.slow
def test_server_killed_mid_analysis_finishes_every_study_after_restart(tmp_path, tiny_imaging_dir):
    """SIGKILL the whole server (supervisor and worker) while a study is being analysed and
    the rest wait; restarted, it resumes: every study reaches ai_drafted, with exactly one AI
    result of each kind and one AI report version per study."""
    env = {
        **os.environ,
        "MEDAI_HOME": str(tmp_path),
        "MEDAI_JOB_LEASE_S": "3",
        "MEDAI_MODELS": f"cxr={tiny_imaging_dir}",
    }
    cli_add_user(env, "rad", "radiologist")
    port = free_port()
    proc, base = start_serve(env, port)
    headers = http_login(base, "rad")
    ids = []
    for i in range(30):
        r = httpx.post(
            f"{base}/api/v1/studies",
            headers=headers,
            data={"task": "cxr"},
            files={"file": ("x.png", png_bytes(100 + i, (512, 512)), "image/png")},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    deadline = time.time() + 60
    while time.time() < deadline:
        statuses = [
            httpx.get(f"{base}/api/v1/studies/{i}", headers=headers, timeout=30).json()["status"]
            for i in ids
        ]
        if "analysing" in statuses:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert "analysing" in statuses and "received" in statuses, statuses

    proc, base = start_serve(env, port)
    try:
        headers = http_login(base, "rad")
        deadline = time.time() + 180
        while time.time() < deadline:
            statuses = [
                httpx.get(f"{base}/api/v1/studies/{i}", headers=headers, timeout=30).json()[
                    "status"
                ]
                for i in ids
            ]
            if all(s == "ai_drafted" for s in statuses):
                break
            time.sleep(0.5)
        assert statuses == ["ai_drafted"] * len(ids)
        for i in ids:
            versions = httpx.get(
                f"{base}/api/v1/studies/{i}/report/versions", headers=headers, timeout=30
            ).json()["items"]
            assert [v["version"] for v in versions] == [1]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    import sqlite3

    con = sqlite3.connect(tmp_path / "medai.db")
    per_study = con.execute(
        "SELECT study_id, kind, COUNT(*) FROM ai_results GROUP BY study_id, kind"
    ).fetchall()
    assert sorted(per_study) == sorted((i, k, 1) for i in ids for k in ("imaging", "draft"))
    assert con.execute("SELECT COUNT(*) FROM jobs WHERE status != 'done'").fetchone() == (0,)
