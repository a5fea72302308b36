"""Retracting a study as entered in error (``platform.reading.retraction``), through the API, with
the real FHIR and HL7 receivers of the outbox tests and a PACS that is down: radiologists only
(an admin and a clinician 403), a wrong reason 422 naming the valid ones, a second retraction
409, audited without the note; the study leaves the worklist (listed under its filter), its
FHIR export reads entered-in-error, it can no longer be edited or signed; its queued
deliveries are cancelled and only a destination that received something gets a correction;
an analysis that runs after the retraction drafts and sends nothing; the same instance sent
again is held as an identity conflict (never dropped as a duplicate) and can be reassigned to
a study of its own. SQLite."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid
from sqlalchemy import select

from helpers.dicom import make_dicom
from helpers.outbox_peers import FhirServer, MllpServer
from helpers.platform import bearer, clinic, decided, refusing_port

# patient text: sealed at rest, never in the audit log
NOTE = "Hasta Zeynep Kaya 4471 değil; yanlış hastaya işlenmiş"


@pytest.fixture
def hosp(tmp_path, tfidf_model_dir, tiny_imaging_dir, monkeypatch):
    fhir, hl7 = FhirServer().start(), MllpServer().start()
    monkeypatch.setenv("MEDAI_FHIR_URL", fhir.url)
    monkeypatch.setenv("MEDAI_HL7_MLLP", f"127.0.0.1:{hl7.port}")
    try:
        with refusing_port() as pacs_port:  # a PACS that is down
            monkeypatch.setenv("MEDAI_DICOM_SEND_TO", f"PACS@127.0.0.1:{pacs_port}")
            with clinic(
                "sqlite",
                tmp_path / "home",
                tfidf_model_dir,
                tiny_imaging_dir,
                outbox_threads=0,
                job_threads=0,  # the test runs each analysis itself
            ) as (app, client):
                yield app, client, fhir, hl7
    finally:
        fhir.stop()
        hl7.stop()


def loop(app):
    from medai.platform.delivery.delivery import DeliveryLoop
    from medai.platform.delivery.outbox import Backoff

    return DeliveryLoop(app.state.platform, rng=random.Random(1), backoff=Backoff(3600, 3600))


def upload(client, path: Path, status: int = 201) -> dict:
    r = client.post(
        "/api/v1/studies",
        headers=bearer(client, "rad1"),
        data={"task": "cxr"},
        files={"file": ("cr.dcm", path.read_bytes(), "application/dicom")},
    )
    assert r.status_code == status, r.text
    return r.json()


def held(client, path: Path) -> int:
    """Upload ``path`` expecting it held as an identity conflict; the conflict's id."""
    body = upload(client, path, 409)
    assert body["code"] == "identity_conflict", body
    return int(body["detail"].split("identity conflict ")[1].split()[0])


def analysed(app, client, tmp_path: Path, seed: int = 1) -> tuple[int, Path]:
    from medai.platform.reading.analysis import analyse_study

    path = make_dicom(tmp_path / f"cr{seed}.dcm", study=generate_uid(), seed=seed, rows=80, cols=64)
    sid = upload(client, path)["id"]
    assert analyse_study(app.state.platform, sid) == "ai_drafted"
    return sid, path


def rows(app, sid: int) -> dict:
    from medai.platform.records.tables import OutboxItem

    with app.state.platform.db.reader() as db:
        return {
            (r.event, r.destination): (r.state, r.code)
            for r in db.scalars(select(OutboxItem).where(OutboxItem.study_id == sid))
        }


def retract(client, sid: int, who: str = "rad1", **body):
    return client.post(
        f"/api/v1/studies/{sid}/retract",
        headers=bearer(client, who),
        json={"reason": "wrong_patient", "note": NOTE, **body},
    )


def test_a_radiologist_retracts_a_study_and_only_the_correction_goes_out(hosp, tmp_path):
    app, client, fhir, hl7 = hosp
    rad = bearer(client, "rad1")
    sid, _path = analysed(app, client, tmp_path)
    assert loop(app).run_once() == {"delivered": 1, "retrying": 1}  # FHIR got it, the PACS is down
    version = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()["version"]
    body = {"version": version, "labels": decided(client, rad, sid)}
    r = client.post(f"/api/v1/studies/{sid}/report/sign", headers=rad, json=body)
    assert r.status_code == 200, r.text
    assert rows(app, sid)[("signed", "hl7")] == ("queued", None)  # not sent yet

    # who may: a radiologist, not an admin (no patient data) nor a clinician
    for who in ("admin", "clin"):
        r = retract(client, sid, who)
        assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
    r = retract(client, sid, reason="wrong_modality")
    assert r.status_code == 422, r.text
    assert all(x in r.text for x in ("wrong_patient", "wrong_study", "safety"))
    r = retract(client, sid, note="x" * 2001)
    assert r.status_code == 422, r.text
    assert client.get(f"/api/v1/studies/{sid}", headers=rad).json()["status"] == "final"

    r = retract(client, sid)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "entered_in_error"
    assert body["retraction"]["by"] == "rad1" and body["retraction"]["reason"] == "wrong_patient"
    assert body["retraction"]["note"] == NOTE and body["retraction"]["previous_status"] == "final"
    again = retract(client, sid, reason="safety")
    assert again.status_code == 409 and again.json()["code"] == "retracted", again.text

    # audited, the note's text never in the log of events
    events = client.get(
        "/api/v1/audit", headers=bearer(client, "admin"), params={"action": "retract"}
    ).json()["items"]  # newest first
    assert [(e["actor"], e["outcome"]) for e in events] == [("rad1", "conflict"), ("rad1", "ok")]
    assert events[1]["detail"]["reason"] == "wrong_patient"
    assert events[1]["detail"]["note_chars"] == len(NOTE)
    assert "Zeynep" not in json.dumps(events) and "4471" not in json.dumps(events)

    # off the worklist, listed under its own filter
    listed = client.get("/api/v1/studies", headers=rad).json()
    assert sid not in [s["id"] for s in listed["items"]]
    only = client.get("/api/v1/studies", headers=rad, params={"status": "entered_in_error"}).json()
    assert [s["id"] for s in only["items"]] == [sid]

    # exported as entered in error; never edited or signed again
    dr = client.get(f"/api/v1/studies/{sid}/report/fhir", headers=rad).json()["entry"][0]
    assert dr["resource"]["resourceType"] == "DiagnosticReport"
    assert dr["resource"]["status"] == "entered-in-error"
    current = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()
    for r in (
        client.post(
            f"/api/v1/studies/{sid}/report/sign",
            headers=rad,
            json={"version": current["version"], "sections": {"findings": "yeni metin"}},
        ),
        client.put(
            f"/api/v1/studies/{sid}/report",
            headers=rad,
            json={"version": current["version"], "sections": {"findings": "yeni metin"}},
        ),
    ):
        assert r.status_code == 409 and r.json()["code"] == "retracted", r.text
    pdf = client.get(f"/api/v1/studies/{sid}/report/pdf", headers=rad)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")

    # queued deliveries cancelled; the correction only where something arrived (FHIR)
    state = rows(app, sid)
    for key in (("analysed", "dicom"), ("signed", "dicom"), ("signed", "fhir"), ("signed", "hl7")):
        assert state[key] == ("skipped", "retracted"), (key, state)
    assert state[("retracted", "fhir")] == ("queued", None)
    assert ("retracted", "dicom") not in state and ("retracted", "hl7") not in state
    assert loop(app).run_once() == {"delivered": 1}
    assert fhir.reports()[f"medai-report-{sid}"]["status"] == "entered-in-error"
    assert hl7.messages == []  # the signed ORU never went, so no correction either


def test_an_analysis_after_the_retraction_drafts_and_sends_nothing(hosp, tmp_path):
    from medai.platform.reading.analysis import analyse_study
    from medai.platform.records.tables import AIResultRow, ReportVersion

    app, client, fhir, _hl7 = hosp
    path = make_dicom(tmp_path / "late.dcm", study=generate_uid(), seed=5)
    sid = upload(client, path)["id"]  # queued for analysis, not run yet
    r = retract(client, sid, reason="safety", note="")
    assert r.status_code == 200, r.text
    assert r.json()["retraction"]["note"] is None and r.json()["retraction"]["by"] == "rad1"
    assert analyse_study(app.state.platform, sid) == "entered_in_error"
    with app.state.platform.db.reader() as db:
        assert db.scalars(select(AIResultRow).where(AIResultRow.study_id == sid)).all() == []
        assert db.scalars(select(ReportVersion).where(ReportVersion.study_id == sid)).all() == []
    assert rows(app, sid) == {}
    assert loop(app).run_once() == {}
    assert fhir.requests == 0


def test_an_event_enqueued_after_the_retraction_is_recorded_skipped(hosp, tmp_path):
    from medai.platform.delivery import outbox
    from medai.platform.records.tables import Study
    from medai.platform.worklist import ai_results, versions

    app, client, _fhir, _hl7 = hosp
    sid, _path = analysed(app, client, tmp_path, seed=7)
    assert loop(app).run_once() == {"delivered": 1, "retrying": 1}
    assert retract(client, sid).status_code == 200
    with app.state.platform.db.session() as db:  # an event recorded at that very moment
        study = db.get(Study, sid)
        added = outbox._enqueue(
            db,
            "analysed",
            f"analysed:{sid}:late",
            study,
            app.state.platform.settings.destinations(),
            versions.current(db, sid).version,
            ai_results.latest_result(db, sid).id,
        )
        assert {(r.destination, r.state, r.code) for r in added} == {
            ("fhir", "skipped", "retracted"),
            ("dicom", "skipped", "retracted"),
        }
    assert loop(app).run_once() == {"delivered": 1}  # only the FHIR correction


def test_the_same_instance_sent_again_is_held_not_dropped_and_can_be_refiled(hosp, tmp_path):
    app, client, _fhir, _hl7 = hosp
    rad = bearer(client, "rad1")
    sid, path = analysed(app, client, tmp_path, seed=9)
    assert loop(app).run_once() == {"delivered": 1, "retrying": 1}
    assert retract(client, sid).status_code == 200
    conflict_id = held(client, path)  # the same bytes, the same SOP Instance UID
    conflict = client.get(f"/api/v1/conflicts/{conflict_id}", headers=rad).json()
    assert conflict["reason"] == "retracted_study" and conflict["state"] == "open"
    assert conflict["study_id"] == sid
    assert held(client, path) == conflict_id  # once, not twice
    implicit = _implicit(path, tmp_path / "implicit.dcm")  # the same instance, other bytes
    assert held(client, implicit) == conflict_id  # still once: no second study from it later
    study = client.get(f"/api/v1/studies/{sid}", headers=rad).json()
    assert study["identity_conflicts"] == [conflict_id]
    # a new instance under the retracted study's StudyInstanceUID is held the same way
    uid = pydicom.dcmread(path).StudyInstanceUID
    other = make_dicom(tmp_path / "new.dcm", study=uid, seed=10, patient_id="TC-1")
    held_other = held(client, other)
    assert held_other != conflict_id
    # the correction is not held by them, and the admin page does not say it is
    admin = bearer(client, "admin")
    view = client.get("/api/v1/admin/outbox", headers=admin, params={"state": "held"}).json()
    assert view["items"] == []
    shown = client.get("/api/v1/admin/outbox", headers=admin).json()["items"]
    assert [i["state"] for i in shown if i["event"] == "retracted"] == ["queued"]
    assert loop(app).run_once() == {"delivered": 1}
    r = client.post(f"/api/v1/conflicts/{conflict_id}/reassign", headers=rad)
    assert r.status_code == 200, r.text
    new = r.json()["resolved_study_id"]
    assert new != sid
    assert client.get(f"/api/v1/studies/{new}", headers=rad).json()["status"] == "received"
    assert client.get(f"/api/v1/studies/{sid}", headers=rad).json()["status"] == (
        "entered_in_error"
    )
    # sent again after the reassignment, in either syntax: the study it went to, nothing new
    for again in (path, implicit):
        body = upload(client, again, 200)
        assert body["id"] == new and body["identity_conflicts"] == []
    conflicts = client.get("/api/v1/conflicts", headers=rad, params={"state": "open"}).json()
    assert [c["id"] for c in conflicts["items"] if c["study_id"] == sid] == [held_other]


def _implicit(path: Path, out: Path) -> Path:
    """``path``'s instance written in Implicit VR Little Endian (what ``storescu -xi`` sends)."""
    from pydicom.uid import ImplicitVRLittleEndian

    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.save_as(out, implicit_vr=True, little_endian=True, enforce_file_format=True)
    assert out.read_bytes() != path.read_bytes()
    return out


def test_the_note_is_sealed_at_rest(hosp, tmp_path):
    from sqlalchemy import text

    app, client, _fhir, _hl7 = hosp
    sid, _path = analysed(app, client, tmp_path, seed=11)
    assert retract(client, sid).status_code == 200
    with app.state.platform.db.reader() as db:
        raw = db.execute(text("SELECT note FROM study_retractions")).scalar_one()
    assert "Zeynep" not in raw and NOTE not in raw
    assert base64.urlsafe_b64decode(raw.encode())  # a Fernet token


def test_a_retracted_study_teaches_nothing(hosp, tmp_path):
    """Its signed labels are another patient's (or another study's): neither the training
    export nor the site's validation set takes them."""
    from medai.platform.lifecycle import dataset
    from medai.platform.lifecycle.site_sets import signed_labels

    app, client, _fhir, _hl7 = hosp
    rad = bearer(client, "rad1")
    kept, gone = (analysed(app, client, tmp_path, seed)[0] for seed in (1, 2))
    for sid in (kept, gone):
        version = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()["version"]
        r = client.post(
            f"/api/v1/studies/{sid}/report/sign",
            headers=rad,
            json={
                "version": version,
                "labels": decided(
                    client, rad, sid, {"Pneumonia": True, "COVID-19": False, "No Finding": False}
                ),
            },
        )
        assert r.status_code == 200, r.text
    with app.state.platform.db.reader() as db:
        assert set(signed_labels(db, "cxr")) == {kept, gone}
    assert retract(client, gone).status_code == 200
    with app.state.platform.db.reader() as db:
        assert set(signed_labels(db, "cxr")) == {kept}
    sheet = dataset.export(app.state.platform, "cxr", tmp_path / "export")
    assert sheet["study_ids"] == [kept] and sheet["skipped"] == {"entered_in_error": 1}


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from medai.platform.records.db import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


def test_the_migration_will_not_downgrade_past_a_retraction(hosp, tmp_path):
    """The release before 0020 knows no ``entered_in_error``: a downgrade would hand the study
    back to be signed and sent. It refuses while a study is retracted, and goes once none is."""
    from alembic import command
    from sqlalchemy import text

    from helpers.platform import migrator

    app, client, _fhir, _hl7 = hosp
    sid, _path = analysed(app, client, tmp_path)
    assert retract(client, sid).status_code == 200
    engine = app.state.platform.db.engine
    migrate = migrator(engine)
    with pytest.raises(RuntimeError, match="1 studies are retracted"):
        migrate(command.downgrade, "0019")
    with engine.begin() as conn:  # untouched: still at head, the retraction kept
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == _head()
        assert conn.execute(text("SELECT count(*) FROM study_retractions")).scalar() == 1
        conn.execute(text("UPDATE studies SET status = 'final' WHERE id = :i"), {"i": sid})
    migrate(command.downgrade, "0019")
    with engine.begin() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0019"


def test_the_node_tells_the_modality_why_when_no_field_differs():
    """An instance of a retracted study differs in nothing: the C-STORE failure's comment names
    the reason, not an empty list (the modality's operator is told why it was refused)."""
    from medai.platform.intake.receive import Quarantined

    assert Quarantined(1, 2, "retracted_study", []).comment == "identity conflict: retracted_study"
    assert Quarantined(1, 2, "sop_content_differs", ["ImageLaterality"]).comment == (
        "identity conflict: ImageLaterality"
    )


def test_a_retracted_study_is_not_talked_about_labelled_or_counted(hosp, tmp_path):
    """Image chat would quote its void report as the signed conclusion, label suggestions
    would prepare a signature that cannot happen, and monitoring would count its signature
    against the model: each is closed once the study is retracted."""
    from medai.platform.lifecycle import monitoring
    from medai.platform.records.tables import StudyLabel

    app, client, _fhir, _hl7 = hosp
    rad = bearer(client, "rad1")
    sid, _path = analysed(app, client, tmp_path, seed=12)
    version = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()["version"]
    r = client.post(
        f"/api/v1/studies/{sid}/report/sign",
        headers=rad,
        json={
            "version": version,
            "labels": decided(
                client, rad, sid, {"Pneumonia": True, "COVID-19": False, "No Finding": False}
            ),
        },
    )
    assert r.status_code == 200, r.text
    conv = client.post(f"/api/v1/studies/{sid}/conversations", headers=rad).json()["id"]
    with app.state.platform.db.session() as db:  # the tiny model decides nothing: as if it had
        rows = db.scalars(select(StudyLabel).where(StudyLabel.study_id == sid)).all()
        for row in rows:
            row.ai_positive = row.label == "Pneumonia"
        model_hash = rows[0].model_hash
    with app.state.platform.db.reader() as db:
        before = monitoring._agreement(db, "cxr", model_hash)
    assert before  # the signature counted
    assert retract(client, sid).status_code == 200
    r = client.post(f"/api/v1/studies/{sid}/conversations", headers=rad)
    assert r.status_code == 409 and r.json()["code"] == "retracted", r.text
    r = client.post(
        f"/api/v1/conversations/{conv}/messages", headers=rad, json={"text": "Pnömoni?"}
    )
    assert r.status_code == 409 and r.json()["code"] == "retracted", r.text
    r = client.post(
        f"/api/v1/studies/{sid}/labels/suggest",
        headers=rad,
        json={"sections": {"findings": "Pnömoni."}, "labels": {}},
    )
    assert r.status_code == 409 and r.json()["code"] == "retracted", r.text
    with app.state.platform.db.reader() as db:
        assert monitoring._agreement(db, "cxr", model_hash) == {}
