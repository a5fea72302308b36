"""Sign-off is one use case (``reading.sign_off``, issue 70 §2): a face other than the API (a
script, the CLI, a test) signs exactly as the route does — the labels stored, the signature
audited, a stale version refused and its refusal audited — and the route is one call to it."""

from __future__ import annotations

import inspect

import pytest
from sqlalchemy import select

from helpers.platform import bearer, clinic, png_bytes, wait_status


@pytest.fixture
def env(tmp_path, tfidf_model_dir, tiny_imaging_dir):
    with clinic("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as (app, client):
        yield app, client


def test_a_script_signs_as_the_route_does_and_a_stale_version_is_refused_and_audited(env):
    from medai.platform.access import audit
    from medai.platform.reading import review
    from medai.platform.reading.sign_off import sign_off
    from medai.platform.records.tables import AuditEvent, StudyLabel, User

    app, client = env
    p = app.state.platform
    rad = bearer(client, "rad1")
    r = client.post(
        "/api/v1/studies",
        headers=rad,
        files={"file": ("film.png", png_bytes(), "image/png")},
        data={"task": "cxr", "patient_ref": "P-SIGN"},
    )
    assert r.status_code == 201, r.text
    study = wait_status(client, rad, r.json()["id"], {"ai_drafted"})
    draft = client.get(f"/api/v1/studies/{study['id']}/report", headers=rad).json()
    with p.db.reader() as db:
        user = db.scalar(select(User).where(User.username == "rad1"))
        db.expunge(user)
    actor = audit.Actor(name=user.username, id=user.id, role=user.role, client="script")
    # the labels the AI left undecided, decided the way a reader of a normal film would
    undecided = {
        f["label"]: f["label"] == "No Finding"
        for f in study["ai_result"]["findings"]
        if f["state"] == "indeterminate"
    }
    out = sign_off(p, study["id"], user, actor, draft["version"], choices=undecided)
    assert out["status"] == "final" and out["version"] == draft["version"] + 1
    shown = client.get(f"/api/v1/studies/{study['id']}/report", headers=rad).json()
    assert shown["version"] == out["version"] and shown["signed_by"] == "rad1"
    with p.db.reader() as db:
        stored = db.scalars(select(StudyLabel).where(StudyLabel.study_id == study["id"])).all()
        events = db.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "sign", AuditEvent.target_id == str(study["id"])
            )
        ).all()
    assert stored, "the signature stored no labels"
    assert [(e.outcome, e.client) for e in events] == [("ok", "script")]

    # the same version again: 409 as the API says it, and audited as a conflict
    with pytest.raises(review.Conflict):
        sign_off(p, study["id"], user, actor, draft["version"])
    with p.db.reader() as db:
        outcomes = db.scalars(
            select(AuditEvent.outcome).where(
                AuditEvent.action == "sign", AuditEvent.target_id == str(study["id"])
            )
        ).all()
    assert outcomes == ["ok", "conflict"]
    again = client.post(
        f"/api/v1/studies/{study['id']}/report/sign",
        headers=rad,
        json={"version": draft["version"]},
    )
    assert again.status_code == 409 and again.json()["code"] == "conflict"


def test_the_sign_route_is_one_call_to_the_use_case():
    from medai.platform.api.routes import studies

    source = inspect.getsource(studies.sign_report)
    assert source.count("sign_off.sign_off(") == 1
    for domain in ("review.", "labels.", "audit.", "monitoring.", "versions."):
        assert domain not in source, domain
