"""The upload service (``intake.upload``) without a server: the route only parses the form and
maps the answer, so what an upload files, refuses, replays and audits is tested here, on the
``Platform`` itself (SQLite). The HTTP answers of the same cases are in test_upload_idempotency,
test_patient_context and test_identity_conflicts."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select

from helpers.dicom import make_dicom
from helpers.platform import bare_platform, png_bytes
from medai.platform.access import audit
from medai.platform.intake import idempotency, upload
from medai.platform.records.tables import AuditEvent, IdentityConflict, Job, Study, User
from medai.platform.worklist import study_state

STROKE = "hasta aniden konuşamıyor, yüzünün bir tarafı kaydı"  # triage's "stroke" rule fires


@pytest.fixture
def site(tmp_path, tfidf_model_dir, tiny_imaging_dir):
    with bare_platform("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as p:
        with p.db.session() as db:
            rad = db.scalar(select(User).where(User.username == "rad"))
            who = (rad.id, audit.Actor(rad.username, rad.id, rad.role, "test"))
        yield p, who


async def _chunks(data: bytes):
    yield data


def _upload(p, who, data: bytes, **form):
    sent: list[tuple[int, int, bool]] = []
    done = asyncio.run(
        upload.upload(
            p,
            who[0],
            who[1],
            _chunks(data),
            upload.UploadForm(**{"task": "cxr", "content_type": "image/png", **form}),
            lambda study_id, job_id, urgent: sent.append((study_id, job_id, urgent)),
        )
    )
    return done, sent


def _count(p, table) -> int:
    with p.db.reader() as db:
        return db.scalar(select(func.count()).select_from(table))


def test_a_png_is_filed_as_a_new_study_its_analysis_dispatched_and_audited(site):
    p, who = site
    done, sent = _upload(
        p, who, png_bytes(1), patient_ref="P-1", patient_sex="F", birth_date="1971-03-12"
    )
    assert (done.status, done.replayed) == (201, False)
    study = done.study
    assert study["task"] == "cxr" and study["status"] == "received"
    assert study["patient"]["sex"] == "F" and study["patient"]["birth_date"] == "1971-03-12"
    with p.db.reader() as db:
        job = db.scalar(select(Job).where(Job.study_id == study["id"]))
        event = db.scalar(select(AuditEvent).where(AuditEvent.action == "upload"))
    assert sent == [(study["id"], job.id, False)]
    assert event.target_id == str(study["id"]) and event.actor == "rad"
    # a PNG has no DICOM identity: the detail names no filing outcome
    assert event.detail == {"task": "cxr", "bytes": len(png_bytes(1)), "urgent": False}


def test_a_red_flag_in_the_question_makes_the_study_urgent_with_its_rule(site):
    p, who = site
    done, sent = _upload(p, who, png_bytes(2), question=STROKE)
    assert sent[0][2] is True
    with p.db.reader() as db:
        study = db.get(Study, done.study["id"])
        assert study.urgent and study.red_flag
        assert [r.get("rule") for r in study.urgent_because] == ["stroke"]


@pytest.mark.parametrize("born", ["2021-02-30", "1850-01-01", "3000-01-01"])
def test_a_wrong_birth_date_is_refused_before_anything_is_stored(site, born):
    p, who = site
    with pytest.raises(study_state.StudyError, match="patient_birth_date"):
        _upload(p, who, png_bytes(3), birth_date=born)
    assert not p.store.exists(_sha(png_bytes(3)))
    assert _count(p, Study) == 0


def test_an_empty_file_is_refused_and_its_file_not_kept(site):
    p, who = site
    with pytest.raises(study_state.StudyError, match="empty") as refused:
        _upload(p, who, b"")
    assert (refused.value.status, refused.value.code) == (422, "invalid")
    assert not p.store.exists(_sha(b""))
    assert _count(p, Study) == 0


def test_a_keyed_retry_is_answered_from_the_first_study_and_files_nothing(site):
    p, who = site
    key = str(uuid.uuid4())
    first, sent = _upload(p, who, png_bytes(4), idempotency_key=key, question="öksürük")
    again, sent_again = _upload(p, who, png_bytes(4), idempotency_key=key, question="öksürük")
    assert (again.status, again.replayed) == (201, True)
    assert again.study["id"] == first.study["id"]
    assert len(sent) == 1 and sent_again == []
    assert _count(p, Study) == 1 and _count(p, Job) == 1
    with p.db.reader() as db:
        replayed = db.scalar(
            select(AuditEvent).where(AuditEvent.action == "view", AuditEvent.target_type == "study")
        )
    assert replayed.detail == {"replayed_upload": True}
    # the key for another upload (other fields): refused, nothing filed
    with pytest.raises(idempotency.KeyReused) as reused:
        _upload(p, who, png_bytes(4), idempotency_key=key, question="ateş")
    assert (reused.value.status, reused.value.code) == (422, "idempotency_key_reused")
    assert _count(p, Study) == 1


def test_a_malformed_key_is_refused_before_the_file_is_stored(site):
    p, who = site
    with pytest.raises(idempotency.InvalidKey):
        _upload(p, who, png_bytes(5), idempotency_key=" spaced ")
    assert not p.store.exists(_sha(png_bytes(5)))


def test_a_dicom_of_another_patient_is_held_as_a_conflict_never_filed(site, tmp_path):
    from pydicom.uid import generate_uid

    p, who = site
    study_uid = generate_uid()
    first = make_dicom(tmp_path / "a.dcm", study=study_uid, seed=1).read_bytes()
    other = make_dicom(
        tmp_path / "b.dcm", study=study_uid, seed=2, patient_id="OTHER-9", name="Baska^Hasta"
    ).read_bytes()
    filed, _sent = _upload(p, who, first, content_type="application/dicom")
    assert filed.status == 201
    with pytest.raises(upload.ConflictHeld) as held:
        _upload(p, who, other, content_type="application/dicom")
    exc = held.value
    assert (exc.status, exc.code, exc.study_id) == (409, "identity_conflict", filed.study["id"])
    assert "PatientID" in exc.fields
    assert {"loc": ["file", "PatientID"], "msg": "differs from the study it would join",
            "type": "identity_conflict"} in exc.errors  # fmt: skip
    assert f"kept as identity conflict {exc.conflict_id}" in str(exc)
    with p.db.reader() as db:
        row = db.get(IdentityConflict, exc.conflict_id)
        assert row.state == "open" and row.source == "upload" and row.uploaded_by == who[0]
    assert _count(p, Study) == 1


def test_the_same_dicom_again_joins_nothing_and_answers_200(site, tmp_path):
    p, who = site
    data = make_dicom(tmp_path / "a.dcm", seed=3).read_bytes()
    first, _sent = _upload(p, who, data, content_type="application/dicom")
    again, sent_again = _upload(p, who, data, content_type="application/dicom")
    assert (first.status, again.status) == (201, 200)
    assert again.study["id"] == first.study["id"] and sent_again == []
    with p.db.reader() as db:
        details = [e.detail["filed"] for e in db.scalars(
            select(AuditEvent).where(AuditEvent.action == "upload").order_by(AuditEvent.id)
        )]  # fmt: skip
    assert details == ["new", "duplicate"]


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
