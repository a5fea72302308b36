"""Retraining and validation as jobs (issue 26), without a broker: the server's own runner
takes them, one at a time. Refusals are named (unknown kind or option with the valid ones, a
triage retrain, a model that does not exist, a non-admin); the same job twice is a 409; a queued
job is cancelled at once; a retraining with too few signed studies fails with the reason; a
job whose worker died (lease run out) is taken over by exactly one claimer. The full loop on
the Celery ``training`` queue is in ``test_lifecycle_e2e``."""

from __future__ import annotations

import time

import pytest

from helpers.platform import bare_platform, bearer, clinic

pytestmark = pytest.mark.slow


@pytest.fixture()
def served(tmp_path, tfidf_model_dir, tiny_imaging_dir):
    with clinic("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as pair:
        yield pair


def _wait(client, admin, job_id: int) -> dict:
    for _ in range(600):
        job = client.get(f"/api/v1/models/jobs/{job_id}", headers=admin).json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['status']}")


def test_refusals_are_named(served):
    _app, client = served
    admin, rad = bearer(client, "admin"), bearer(client, "rad1")
    post = lambda body, who=admin: client.post("/api/v1/models/jobs", headers=who, json=body)  # noqa: E731
    assert post({"kind": "retrain", "task": "cxr"}, rad).status_code == 403
    assert post({"kind": "explode", "task": "cxr"}).status_code == 422
    r = post({"kind": "retrain", "task": "triage"})
    assert r.status_code == 422 and r.json()["code"] == "job_refused"
    assert "cxr" in r.json()["detail"]
    r = post({"kind": "retrain", "task": "cxr", "options": {"epoch": 3}})
    assert r.status_code == 422 and "epochs" in r.json()["detail"]  # the valid ones listed
    r = post({"kind": "retrain", "task": "cxr", "options": {"epochs": 0}})
    assert r.status_code == 422 and "from 1 to" in r.json()["detail"]
    assert post({"kind": "validate", "model_id": 999}).status_code == 404
    # issue 45 (8): any job naming a model that does not exist is a 404 naming the id (a
    # retrain with a model_id was the database's IntegrityError: a 500)
    for kind in ("retrain", "validate"):
        r = post({"kind": kind, "task": "cxr", "model_id": 2**31 - 1})
        assert r.status_code == 404, r.text
        assert r.json()["code"] == "not_found" and str(2**31 - 1) in r.json()["detail"]
    assert client.get("/api/v1/models/jobs/999", headers=admin).status_code == 404


def test_a_retrain_with_too_few_signed_studies_fails_with_the_reason(served):
    _app, client = served
    admin = bearer(client, "admin")
    r = client.post(
        "/api/v1/models/jobs",
        headers=admin,
        json={"kind": "retrain", "task": "cxr", "options": {"epochs": 1}},
    )
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued" and r.json()["options"]["epochs"] == 1
    job = _wait(client, admin, r.json()["id"])
    assert job["status"] == "failed"
    assert "labelled cxr studies" in job["error"] and job["finished_at"]
    assert job["result"] == {"error_code": "too_few_studies", "studies": 0, "needed": 10}
    listed = client.get("/api/v1/models/jobs", headers=admin).json()["items"]
    assert [j["id"] for j in listed] == [job["id"]]
    events = client.get("/api/v1/audit", headers=admin, params={"action": "model"}).json()["items"]
    assert any(e["detail"].get("op") == "retrain_job" for e in events)


def test_the_same_job_twice_conflicts_and_a_queued_job_cancels(
    tmp_path, tfidf_model_dir, tiny_imaging_dir
):
    from medai.platform.access import audit
    from medai.platform.lifecycle import model_jobs

    with bare_platform("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as p:
        actor = audit.Actor(name="admin")
        first = model_jobs.submit(p, "retrain", actor, task="cxr")
        with pytest.raises(model_jobs.JobConflict):
            model_jobs.submit(p, "retrain", actor, task="cxr")
        other = model_jobs.submit(p, "retrain", actor, task="mri")  # another task: fine
        cancelled = model_jobs.cancel(p, first["id"], actor)
        assert (cancelled["status"], cancelled["cancel_requested"]) == ("cancelled", True)
        with pytest.raises(model_jobs.JobConflict):
            model_jobs.cancel(p, first["id"], actor)
        assert model_jobs.run(p, first["id"], "w1", 60) == "cancelled"  # never runs
        assert model_jobs.pending(p) == [other["id"]]


def test_a_job_whose_worker_died_is_taken_over_once(tmp_path, tfidf_model_dir, tiny_imaging_dir):
    from concurrent.futures import ThreadPoolExecutor

    from medai.platform.access import audit
    from medai.platform.lifecycle import model_jobs

    with bare_platform("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as p:
        job = model_jobs.submit(p, "retrain", audit.Actor(name="admin"), task="cxr")
        assert model_jobs.claim(p, job["id"], "dead-worker", lease_s=-1)  # lease already out
        assert model_jobs.pending(p) == [job["id"]]
        with ThreadPoolExecutor(4) as pool:
            won = list(
                pool.map(
                    lambda w: model_jobs.claim(p, job["id"], w, 60), [f"w{i}" for i in range(4)]
                )
            )
        assert won.count(True) == 1
        assert model_jobs.pending(p) == []
        assert model_jobs.get(p, job["id"])["attempts"] == 2
