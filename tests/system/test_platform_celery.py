"""Studies analysed by real `medai worker` processes (Celery) on the real local Redis and
RabbitMQ brokers: every study analysed exactly once, and a worker SIGKILLed mid-task loses
nothing and duplicates nothing (late acknowledgement + leases + idempotent analysis)."""

from __future__ import annotations

import os
import signal
import sqlite3
import time

import pytest

from helpers.celery import _purge, broker_url, start_worker
from helpers.platform import add_users, bearer, png_bytes, use_home

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("broker_lock")]


@pytest.mark.parametrize("kind", ["redis", "rabbitmq"])
def test_workers_analyse_every_study_once_even_when_one_is_killed(
    kind, tmp_path, tfidf_model_dir, tiny_imaging_dir
):
    from fastapi.testclient import TestClient

    from medai.platform.app import create_platform_app

    url = broker_url(kind, str(tmp_path))
    _purge(url)
    db_url = f"sqlite:///{tmp_path / 'medai.db'}"
    env = {
        **os.environ,
        "MEDAI_HOME": str(tmp_path),
        "MEDAI_BROKER_URL": url,
        "MEDAI_DATABASE_URL": db_url,
        "MEDAI_JOB_LEASE_S": "3",
        "MEDAI_MODELS": f"cxr={tiny_imaging_dir},triage={tfidf_model_dir}",
    }
    use_home(tmp_path)
    os.environ["MEDAI_JOB_LEASE_S"] = "3"
    app = create_platform_app(
        database_url=db_url,
        models={"triage": str(tfidf_model_dir), "cxr": str(tiny_imaging_dir)},
        broker_url=url,
        preload=False,
    )
    add_users(app)
    victim = start_worker(env)
    survivor = None
    try:
        with TestClient(app, base_url="http://localhost") as client:
            rad = bearer(client, "rad1")
            ready = client.get("/api/v1/health/ready").json()
            assert ready["broker"] == {"ready": True} and ready["database"] == {"ready": True}
            ids = [
                client.post(
                    "/api/v1/studies",
                    headers=rad,
                    data={"task": "cxr"},
                    files={"file": ("x.png", png_bytes(200 + i, (256, 256)), "image/png")},
                ).json()["id"]
                for i in range(12)
            ]
            deadline = time.time() + 120
            while time.time() < deadline:  # kill the first worker mid-analysis
                statuses = [
                    client.get(f"/api/v1/studies/{i}", headers=rad).json()["status"] for i in ids
                ]
                if "analysing" in statuses:
                    break
                time.sleep(0.02)
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait(timeout=30)
            assert "received" in statuses, statuses
            survivor = start_worker(env)
            deadline = time.time() + 180
            while time.time() < deadline:
                statuses = [
                    client.get(f"/api/v1/studies/{i}", headers=rad).json()["status"] for i in ids
                ]
                if all(s == "ai_drafted" for s in statuses):
                    break
                time.sleep(0.5)
            assert statuses == ["ai_drafted"] * len(ids)
    finally:
        os.environ.pop("MEDAI_JOB_LEASE_S", None)
        for proc in (victim, survivor):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
        _purge(url)
    con = sqlite3.connect(tmp_path / "medai.db")
    rows = con.execute(
        "SELECT study_id, kind, COUNT(*) FROM ai_results GROUP BY study_id, kind"
    ).fetchall()
    assert sorted(rows) == sorted((i, k, 1) for i in ids for k in ("imaging", "draft"))
    assert con.execute("SELECT COUNT(*) FROM report_versions").fetchone() == (len(ids),)
    assert con.execute("SELECT COUNT(*) FROM jobs WHERE status = 'done'").fetchone() == (len(ids),)


def test_a_worker_sends_what_it_analysed_without_serve(
    tmp_path, monkeypatch, tfidf_model_dir, tiny_imaging_dir
):
    """With no delivery thread in serve (MEDAI_OUTBOX_THREADS=0 there) and none run apart,
    the preliminary FHIR reports still arrive: the worker that analysed each study delivers
    it from its own outbox threads, woken by its own commit, and each once."""
    from fastapi.testclient import TestClient

    from helpers.outbox_peers import FhirServer
    from medai.platform.app import create_platform_app

    url = broker_url("redis", str(tmp_path) + "outbox")
    _purge(url)
    fhir = FhirServer().start()
    db_url = f"sqlite:///{tmp_path / 'medai.db'}"
    env = {
        **os.environ,
        "MEDAI_HOME": str(tmp_path),
        "MEDAI_BROKER_URL": url,
        "MEDAI_DATABASE_URL": db_url,
        "MEDAI_FHIR_URL": fhir.url,
        "MEDAI_MODELS": f"cxr={tiny_imaging_dir},triage={tfidf_model_dir}",
    }
    monkeypatch.setenv("MEDAI_FHIR_URL", fhir.url)
    use_home(tmp_path)
    app = create_platform_app(
        database_url=db_url,
        models={"triage": str(tfidf_model_dir), "cxr": str(tiny_imaging_dir)},
        broker_url=url,
        preload=False,
        outbox_threads=0,
    )
    add_users(app)
    worker = start_worker(env)
    try:
        with TestClient(app, base_url="http://localhost") as client:
            rad = bearer(client, "rad1")
            ids = [
                client.post(
                    "/api/v1/studies",
                    headers=rad,
                    data={"task": "cxr"},
                    files={"file": ("x.png", png_bytes(300 + i, (128, 128)), "image/png")},
                ).json()["id"]
                for i in range(3)
            ]
            deadline = time.time() + 120
            while time.time() < deadline and len(fhir.reports()) < len(ids):
                time.sleep(0.2)
            rows = client.get("/api/v1/admin/outbox", headers=bearer(client, "admin")).json()
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
        fhir.stop()
        _purge(url)
    assert len(fhir.reports()) == len(ids), rows
    assert all(r["status"] == "preliminary" for r in fhir.reports().values())
    con = sqlite3.connect(tmp_path / "medai.db")
    assert con.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall() == [
        ("delivered", len(ids))
    ]
