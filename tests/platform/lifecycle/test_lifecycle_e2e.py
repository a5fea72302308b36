"""Issue 26's loop end to end, on SQLite and on PostgreSQL, with real Celery workers on Redis
(analysis on ``cpu``, retraining and validation on ``training``): a radiologist signs studies
(rejecting the AI's finding on some) → the export has those labels → a retraining job
registers a candidate → a validation job validates it beside the active model on the site set
→ shadowed (the worker analyses live studies with it too, unseen) → promoted without a restart
(the worker's new results name the new hash) → rolled back (they name the old one) → the
monitoring numbers show the agreement with the signatures and a drift alarm from a stream of
brighter films."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers.celery import _purge, broker_url, start_worker
from helpers.lifecycle import _model, film
from helpers.platform import add_users, bearer, database_url, use_home, wait_status

pytestmark = [
    pytest.mark.slow,
    pytest.mark.server,
    pytest.mark.broker,
    pytest.mark.usefixtures("broker_lock"),
]
MONITOR = {
    "MEDAI_MONITOR_REFERENCE_N": "20",
    "MEDAI_MONITOR_WINDOW": "10",
    "MEDAI_MONITOR_MIN_WINDOW": "8",
    "MEDAI_MODEL_WATCH_S": "1",
}


@pytest.mark.parametrize("db_kind", ["sqlite", "postgresql"])
def test_sign_export_retrain_validate_shadow_promote_rollback_monitor(
    db_kind, tmp_path, monkeypatch, tfidf_model_dir
):
    with database_url(db_kind, tmp_path) as db_url:
        _loop(db_url, tmp_path, monkeypatch, tfidf_model_dir)


def _loop(db_url: str, tmp_path, monkeypatch, tfidf_model_dir) -> None:
    from fastapi.testclient import TestClient

    from medai.platform.app import create_platform_app
    from medai.settings import get_settings

    url = broker_url("redis", str(tmp_path))
    _purge(url)
    active_dir = _model(tmp_path / "active", 0.0)  # calls pneumothorax and effusion on all
    env = {
        **os.environ,
        **MONITOR,
        "MEDAI_HOME": str(tmp_path),
        "MEDAI_BROKER_URL": url,
        "MEDAI_DATABASE_URL": db_url,
        "MEDAI_MODELS": f"cxr={active_dir},triage={tfidf_model_dir}",
        "OMP_NUM_THREADS": "1",
    }
    for k, v in MONITOR.items():
        monkeypatch.setenv(k, v)
    use_home(tmp_path)
    get_settings.cache_clear()
    app = create_platform_app(
        database_url=db_url,
        models={"triage": str(tfidf_model_dir), "cxr": str(active_dir)},
        broker_url=url,
        preload=False,
    )
    add_users(app)
    worker = start_worker(env)
    trainer = subprocess.Popen(  # the machine with the GPU, in a hospital
        [sys.executable, "-m", "medai.cli", "worker", "--queues", "training"],
        stdout=(tmp_path / "trainer.log").open("w"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )

    def cli(*args: str) -> dict:
        r = subprocess.run(
            [sys.executable, "-m", "medai.cli", *args, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
        return json.loads(r.stdout)

    try:
        with TestClient(app, base_url="http://localhost") as client:
            rad, admin = bearer(client, "rad1"), bearer(client, "admin")

            def upload(data: bytes) -> dict:
                r = client.post(
                    "/api/v1/studies",
                    headers=rad,
                    data={"task": "cxr"},
                    files={"file": ("f.png", data, "image/png")},
                )
                assert r.status_code == 201, r.text
                return wait_status(
                    client, rad, r.json()["id"], {"ai_drafted", "refused"}, timeout=180
                )

            # 1. sixteen studies signed; the pneumothorax the AI calls on every film is
            # rejected on every other one
            signed = []
            for i in range(16):
                study = upload(film(i))
                version = client.get(f"/api/v1/studies/{study['id']}/report", headers=rad).json()[
                    "version"
                ]
                present = i % 2 == 0
                text = (
                    "Sağ apikal pnömotoraks izlendi."
                    if present
                    else "Akciğerler normal görünümdedir."
                )
                r = client.post(
                    f"/api/v1/studies/{study['id']}/report/sign",
                    headers=rad,
                    json={
                        "version": version,
                        # a rejected film is a normal one: a click each (never read from text),
                        # its effusion rejected too (normal beside a finding is refused)
                        "labels": {"Pneumothorax": present, "No Finding": not present}
                        | ({} if present else {"Effusion": False}),
                        "sections": {"findings": text, "impression": text},
                    },
                )
                assert r.status_code == 200, r.text
                signed.append((study["id"], present))
            old_hash = study["ai_result"]["model"]["content_hash"]

            # 2. the export has those labels
            sheet = cli("dataset", "export", "--task", "cxr", "--out", str(tmp_path / "set"))
            # the AI's pneumothorax and effusion rejected on each of the 8 normal films
            assert sheet["studies"] == 16 and sheet["label_sources"]["rejected"] == 16
            with (tmp_path / "set" / "manifest.csv").open() as fh:
                rows = list(csv.DictReader(fh))
            assert sum("Pneumothorax" in r["label"] for r in rows) == 8

            # 3. a retraining job on the Celery training queue registers a candidate;
            # 4. a validation job validates it on the site set
            def job(body: dict) -> dict:
                r = client.post("/api/v1/models/jobs", headers=admin, json=body)
                assert r.status_code == 202, r.text
                seen = set()
                for _ in range(1500):
                    j = client.get(f"/api/v1/models/jobs/{r.json()['id']}", headers=admin).json()
                    seen.add(j["stage"])
                    if j["status"] not in ("queued", "running"):
                        break
                    time.sleep(0.2)
                assert j["status"] == "done", j
                assert j["progress"] == 1.0
                return {**j, "seen": seen}

            retrained = job(
                {
                    "kind": "retrain",
                    "task": "cxr",
                    "options": {"epochs": 1, "image_size": 32, "batch_size": 4, "min_studies": 5},
                }
            )
            cand = retrained["result"]["model"]
            assert cand["state"] == "candidate"
            assert retrained["result"]["datasheet"]["studies"] >= 5
            site = cli("models", "site-set", "--task", "cxr")
            assert site["studies"] >= 1
            verdict = job({"kind": "validate", "model_id": cand["id"]})["result"]["validation"]
            assert verdict["model_id"] == cand["id"] and "summary" in verdict["metrics"]

            # 5. shadow: the worker analyses a live study with it too; nobody sees it
            url_ = f"/api/v1/models/registry/{cand['id']}"
            r = client.post(f"{url_}/shadow", headers=admin, json={"reason": "watch it live"})
            assert r.status_code == 200, r.text
            shown = upload(film(100))
            assert shown["ai_result"]["model"]["content_hash"] == old_hash
            for _ in range(100):
                if client.get(f"{url_}/shadow", headers=admin).json()["studies"]:
                    break
                time.sleep(0.2)
            assert client.get(f"{url_}/shadow", headers=admin).json()["studies"] >= 1

            # 6. promoted (with the verdict, or an override when it did not pass)
            body = {"reason": "e2e: validated on the site set", "override": not verdict["passed"]}
            r = client.post(f"{url_}/promote", headers=admin, json=body)
            assert r.status_code == 200, r.text

            def serves(content_hash: str) -> bool:
                for attempt in range(20):  # the worker follows within MEDAI_MODEL_WATCH_S
                    if (
                        upload(film(200 + attempt))["ai_result"]["model"]["content_hash"]
                        == content_hash
                    ):
                        return True
                    time.sleep(0.5)
                return False

            assert serves(cand["content_hash"])
            # 7. rolled back
            r = client.post(
                "/api/v1/models/rollback",
                headers=admin,
                json={"task": "cxr", "reason": "e2e: back"},
            )
            assert r.status_code == 200, r.text
            assert serves(old_hash)

            # 8. monitoring: agreement from the signatures, and a drift alarm
            for i in range(10):
                upload(film(300 + i, brighter=0.25))
            report = client.get(
                "/api/v1/models/monitoring", headers=admin, params={"task": "cxr"}
            ).json()["models"][0]
            assert report["model_hash"] == old_hash
            agreement = report["agreement"]["Pneumothorax"]
            assert agreement["n"] == 16 and agreement["agreement"][0] == 0.5
            open_alerts = [a for a in report["alerts"] if not a["cleared_at"]]
            assert ("input", "mean") in {(a["kind"], a["key"]) for a in open_alerts}
    finally:
        for proc in (worker, trainer):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
        _purge(url)
        app.state.platform.db.dispose()
        get_settings.cache_clear()
