"""Re-analysing a study as another type (``POST /api/v1/studies/{id}/reanalyse``,
``platform.reading.reanalysis``), on the tiny chest and MRI models, through the API: the AI's own
unsigned draft is replaced by the new type's and the study says its new type; each request
is a reading of its own (back to the first type reads it again, the newest result shown); a
person's edited report is kept and its reader told (``reread.retask``); a signed report is
refused by name (409 ``report_signed``) and nothing is queued; an unknown task is a 422 that
lists the valid ones; the study's own task is refused; an admin, a patient 403; every
request audited. SQLite."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from helpers.platform import bearer, clinic, colour_png, decided, png_bytes


@pytest.fixture
def hosp(tmp_path, tfidf_model_dir, tiny_imaging_dir, tiny_mri_dir):
    with clinic(
        "sqlite",
        tmp_path / "home",
        tfidf_model_dir,
        tiny_imaging_dir,
        models={"mri": str(tiny_mri_dir)},
        outbox_threads=0,
        job_threads=0,  # the test runs each analysis itself
    ) as (app, client):
        yield app, client


def analysed(app, client, headers, task: str = "cxr", seed: int = 1) -> int:
    from medai.platform.reading.analysis import analyse_study

    r = client.post(
        "/api/v1/studies",
        headers=headers,
        files={"file": ("film.png", png_bytes(seed), "image/png")},
        data={"task": task},
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert analyse_study(app.state.platform, sid) == "ai_drafted"
    return sid


def reanalyse(client, headers, sid: int, task: str):
    return client.post(f"/api/v1/studies/{sid}/reanalyse", headers=headers, json={"task": task})


def run(app, sid: int) -> str:
    from medai.platform.reading.analysis import analyse_study

    return analyse_study(app.state.platform, sid)


def events(app, sid: int) -> list[tuple[str, str, dict]]:
    from medai.platform.records.tables import AuditEvent

    with app.state.platform.db.reader() as db:
        return [
            (e.action, e.outcome, e.detail)
            for e in db.scalars(
                select(AuditEvent)
                .where(AuditEvent.target_id == str(sid), AuditEvent.action == "reanalyse_as")
                .order_by(AuditEvent.id)
            )
        ]


def test_a_draft_is_replaced_by_the_new_types_and_back_again(hosp):
    app, client = hosp
    rad = bearer(client, "rad1")
    sid = analysed(app, client, rad)
    first = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()
    assert client.get(f"/api/v1/studies/{sid}", headers=rad).json()["ai_result"]["task"] == "cxr"

    r = reanalyse(client, rad, sid, "mri")
    assert r.status_code == 202, r.text
    # the chest draft is withdrawn at once: analysed as a new study is, never signable as
    # the new type's report while (or whether) the new reading runs
    assert r.json()["task"] == "mri" and r.json()["status"] == "received"
    withdrawn = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()
    assert withdrawn["version"] == first["version"] + 1 and withdrawn["source"] == "ai"
    assert not any(withdrawn["sections"].values()) and withdrawn["findings"] == []
    signed = client.post(
        f"/api/v1/studies/{sid}/report/sign", headers=rad, json={"version": withdrawn["version"]}
    )
    assert signed.status_code in (409, 422), signed.text  # nothing of the chest's to sign
    history = client.get(f"/api/v1/studies/{sid}/report/versions", headers=rad).json()["items"]
    assert any(v["sections"] == first["sections"] for v in history)  # kept in the history
    assert run(app, sid) == "ai_drafted"
    study = client.get(f"/api/v1/studies/{sid}", headers=rad).json()
    assert study["task"] == "mri" and study["ai_result"]["task"] == "mri"
    assert {f["label"] for f in study["ai_result"]["findings"]} == {
        "Glioma",
        "Meningioma",
        "Pituitary",
        "No_Tumor",
    }
    report = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()
    assert report["version"] == first["version"] + 2 and report["source"] == "ai"
    assert {f["label"] for f in report["findings"]} <= {
        "Glioma",
        "Meningioma",
        "Pituitary",
        "No_Tumor",
    }
    assert study["reread"] is None  # the draft was the AI's own: replaced, nothing to tell

    # back to the chest: read again (a reading of its own), the newest result is shown
    assert reanalyse(client, rad, sid, "cxr").status_code == 202
    assert run(app, sid) == "ai_drafted"
    study = client.get(f"/api/v1/studies/{sid}", headers=rad).json()
    assert study["task"] == "cxr" and study["ai_result"]["task"] == "cxr"
    assert client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()["version"] == (
        report["version"] + 2  # withdrawn, then the chest's draft again
    )
    assert [(a, o, d["task"], d["previous"]) for a, o, d in events(app, sid)] == [
        ("reanalyse_as", "ok", "mri", "cxr"),
        ("reanalyse_as", "ok", "cxr", "mri"),
    ]


def test_an_edited_report_is_kept_and_its_reader_told(hosp):
    app, client = hosp
    rad = bearer(client, "rad1")
    sid = analysed(app, client, rad, seed=2)
    cur = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()
    sections = {**cur["sections"], "impression": "Radyoloğun kendi yorumu."}
    r = client.put(
        f"/api/v1/studies/{sid}/report",
        headers=rad,
        json={"version": cur["version"], "sections": sections},
    )
    assert r.status_code == 200, r.text
    assert reanalyse(client, rad, sid, "mri").status_code == 202
    run(app, sid)
    after = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()
    assert after["version"] == cur["version"] + 1  # the person's edit: nothing replaced it
    assert after["sections"]["impression"] == "Radyoloğun kendi yorumu."
    reread = client.get(f"/api/v1/studies/{sid}", headers=rad).json()["reread"]
    assert reread["retask"] is True and reread["signed"] is False


def job_of(app, sid: int) -> tuple:
    from medai.platform.records.tables import Job

    with app.state.platform.db.reader() as db:
        job = db.scalar(select(Job).where(Job.study_id == sid))
        return job.id, job.status, job.attempts, job.not_before, job.finished_at


def test_a_signed_report_is_refused_by_name_and_nothing_is_queued(hosp):
    app, client = hosp
    rad = bearer(client, "rad1")
    sid = analysed(app, client, rad, seed=3)
    version = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()["version"]
    # each label in doubt decided, as a radiologist would (every one absent, the normal label
    # included, is a contradiction a signature is refused for: issue 67)
    choices = decided(client, rad, sid)
    r = client.post(
        f"/api/v1/studies/{sid}/report/sign",
        headers=rad,
        json={"version": version, "labels": choices},
    )
    assert r.status_code == 200, r.text
    before = job_of(app, sid)
    r = reanalyse(client, rad, sid, "mri")
    assert r.status_code == 409 and r.json()["code"] == "report_signed", r.text
    assert "amend" in r.json()["detail"]
    study = client.get(f"/api/v1/studies/{sid}", headers=rad).json()
    assert study["task"] == "cxr" and study["status"] == "final"
    assert job_of(app, sid) == before  # nothing queued again
    assert [(o, d["code"]) for _a, o, d in events(app, sid)] == [("refused", "report_signed")]


def test_a_wrong_task_lists_the_valid_ones_and_roles_are_checked(hosp):
    app, client = hosp
    rad = bearer(client, "rad1")
    sid = analysed(app, client, rad, seed=4)
    r = reanalyse(client, rad, sid, "knee")
    assert r.status_code == 422 and r.json()["code"] == "invalid", r.text
    said = str(r.json())
    assert "'cxr'" in said and "'mri'" in said
    r = reanalyse(client, rad, sid, "cxr")  # its own type
    assert r.status_code == 422 and "already analysed as 'cxr'" in r.json()["detail"], r.text
    for who in ("admin", "pat1"):
        r = reanalyse(client, bearer(client, who), sid, "mri")
        assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
    r = reanalyse(client, bearer(client, "clin"), 99999, "mri")
    assert r.status_code == 404, r.text
    assert client.get(f"/api/v1/studies/{sid}", headers=rad).json()["task"] == "cxr"


def test_a_refused_study_is_analysed_again_as_another_type(hosp):
    app, client = hosp
    clin = bearer(client, "clin")
    r = client.post(
        "/api/v1/studies",
        headers=clin,
        files={"file": ("photo.png", colour_png(), "image/png")},
        data={"task": "cxr"},
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert run(app, sid) == "refused"
    r = reanalyse(client, clin, sid, "mri")  # a clinician who uploads may correct the type
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "received" and r.json()["task"] == "mri"
    r = reanalyse(client, clin, sid, "cxr")  # queued, not yet analysed
    assert r.status_code == 409 and r.json()["code"] == "analysis_running", r.text
    assert run(app, sid) == "refused"  # a colour photograph is no MRI either
    study = client.get(f"/api/v1/studies/{sid}", headers=clin).json()
    assert study["ai_result"]["task"] == "mri" and study["ai_result"]["refused"]
