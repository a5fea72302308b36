"""A study is analysed when it is complete (issue 58, item 1): a modality's instances settle for
``MEDAI_STUDY_STABLE_S`` before the analysis may start, each arrival moving the window on; an
instance arriving after the analysis re-opens the study — a new reading beside the old one,
the draft replaced only while it is the AI's own and unsigned, a signed report never changed.
Time is a fake clock (the platform's ``clock``); the jobs are claimed and run by hand."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from helpers.dicom import make_dicom
from helpers.platform import FakeClock, bare_platform
from medai.platform.dicom.arrival import Arrival

T0 = datetime(2026, 11, 27, 9, 0, 0)
WINDOW = 5.0


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request, tmp_path, monkeypatch, tfidf_model_dir, tiny_imaging_dir):
    from medai.settings import get_settings

    monkeypatch.setenv("MEDAI_STUDY_STABLE_S", str(WINDOW))
    get_settings.cache_clear()
    with bare_platform(request.param, tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as p:
        p.clock = FakeClock(T0)
        yield p, tmp_path
    get_settings.cache_clear()


def _film(folder, name: str, study: str, seed: int, **kw) -> bytes:
    return make_dicom(folder / f"{name}.dcm", "DX", study=study, seed=seed, **kw).read_bytes()


def _at(p, seconds: float) -> None:
    p.clock.at = T0 + timedelta(seconds=seconds)


def _claim(p):
    from medai.platform.jobs import jobs

    return jobs.claim(p, "w1", 60)


def _run(p):
    """Claim and run the due job; its resulting status, or None when none is due."""
    from medai.platform.jobs import jobs

    job = _claim(p)
    return None if job is None else jobs.run_claimed(p, job, "w1", 60)


def _study(p, sid):
    from medai.platform.records.tables import Study

    with p.db.reader() as db:
        return db.get(Study, sid).status


def _results(p, sid, kind="imaging"):
    from medai.platform.records.tables import AIResultRow

    with p.db.reader() as db:
        return list(
            db.scalars(
                select(AIResultRow)
                .where(AIResultRow.study_id == sid, AIResultRow.kind == kind)
                .order_by(AIResultRow.id)
            )
        )


def _reanalysed(p, sid) -> list[dict]:
    from medai.platform.records.tables import AuditEvent

    with p.db.reader() as db:
        rows = db.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "reanalyse", AuditEvent.target_id == str(sid)
            )
        )
        return [r.detail for r in rows]


def test_the_analysis_waits_until_the_instances_have_settled(site):
    from pydicom.uid import generate_uid

    from medai.platform.intake import receive

    p, folder = site
    study = generate_uid()
    first = receive.store(p, _film(folder, "a", study, 1), "MODALITY")
    assert first.outcome == "new" and first.job_id is not None
    _at(p, WINDOW - 1)
    assert _claim(p) is None  # the series is still arriving
    second = receive.store(p, _film(folder, "b", study, 2, view="AP"), "MODALITY")
    assert second.outcome == "joined" and second.job_id is None  # the queued job waits on
    _at(p, WINDOW + 1)  # the first instance's window has passed, the second's has not
    assert _claim(p) is None
    _at(p, 2 * WINDOW)
    assert _run(p) == "done"
    assert _study(p, first.study_id) == "ai_drafted"
    (row,) = _results(p, first.study_id)
    assert row.reading.startswith("2:")  # read after both instances were filed


def test_an_upload_is_analysed_at_once(site):
    from medai.platform.records.tables import Job, User
    from medai.platform.worklist import filing

    p, _folder = site
    with p.db.session() as db:
        rad = db.scalar(select(User).where(User.username == "rad"))
        filed = filing.file_study(
            db,
            Arrival(
                sha="0" * 64,
                size=10,
                content_type="image/png",
                task="cxr",
                uploaded_by=rad.id,
                received_at=p.clock(),
            ),
        )
        assert db.get(Job, filed.job.id).not_before is None


def test_a_late_instance_reopens_an_unsigned_ai_draft(site):
    from pydicom.uid import generate_uid

    from medai.platform.intake import receive
    from medai.platform.records.tables import Study
    from medai.platform.worklist import versions

    p, folder = site
    study = generate_uid()
    sid = receive.store(p, _film(folder, "a", study, 1), "MODALITY").study_id
    _at(p, WINDOW)
    assert _run(p) == "done"
    _at(p, 60)
    late = receive.store(p, _film(folder, "b", study, 7, rows=96, cols=80), "MODALITY")
    assert late.outcome == "joined" and late.job_id is not None  # queued again, to dispatch
    _at(p, 60 + WINDOW - 0.5)
    assert _claim(p) is None  # the re-opened study settles too
    _at(p, 60 + WINDOW)
    assert _run(p) == "done"
    first, second = _results(p, sid)  # the old reading kept beside the new one
    assert first.reading != second.reading and second.reading.startswith("2:")
    assert len(_results(p, sid, "draft")) == 2
    assert _study(p, sid) == "ai_drafted"
    (event,) = _reanalysed(p, sid)
    assert event["report"] in ("replaced", "unchanged")
    with p.db.reader() as db:
        cur = versions.current(db, sid)
        assert cur.source == "ai" and cur.signed_by is None
        if event["report"] == "replaced":
            assert cur.version == 2 and cur.ai_result_id == _results(p, sid, "draft")[1].id
        assert db.get(Study, sid).status == "ai_drafted"


def test_a_late_instance_never_changes_a_signed_or_edited_report(site):
    from pydicom.uid import generate_uid

    from medai.platform.intake import receive
    from medai.platform.reading import review
    from medai.platform.records.tables import Study, User
    from medai.platform.worklist import versions

    p, folder = site
    signed_uid, edited_uid = generate_uid(), generate_uid()
    signed = receive.store(p, _film(folder, "s1", signed_uid, 1), "MODALITY").study_id
    edited = receive.store(
        p, _film(folder, "e1", edited_uid, 2, accession="ACC-2002"), "MODALITY"
    ).study_id
    _at(p, WINDOW)
    assert _run(p) == "done" and _run(p) == "done"
    with p.db.session() as db:
        rad = db.scalar(select(User).where(User.username == "rad"))
        study = db.get(Study, signed)
        # the radiologist's choice for each label the AI left undecided (issue 59)
        review.sign(
            db,
            study,
            1,
            rad,
            choices=dict.fromkeys(review.undecided(db, study, None), False),
            destinations=p.settings.destinations(),
        )
        review.edit(db, db.get(Study, edited), 1, {"findings": "typed by the radiologist"}, rad)
    with p.db.reader() as db:
        before = {sid: len(versions.versions(db, sid)) for sid in (signed, edited)}
    _at(p, 100)
    receive.store(p, _film(folder, "s2", signed_uid, 3, view="AP"), "MODALITY")
    receive.store(
        p, _film(folder, "e2", edited_uid, 4, view="AP", accession="ACC-2002"), "MODALITY"
    )
    _at(p, 100 + WINDOW)
    assert _run(p) == "done" and _run(p) == "done"
    assert [e["report"] for e in _reanalysed(p, signed)] == ["kept_signed"]
    assert [e["report"] for e in _reanalysed(p, edited)] == ["kept_edited"]
    with p.db.reader() as db:
        for sid in (signed, edited):
            assert len(versions.versions(db, sid)) == before[sid]  # nothing written over
            assert len(_results(p, sid)) == 2  # the new reading is there to be seen
        assert db.get(Study, signed).status == "final"
        assert versions.current(db, edited).sections["findings"] == "typed by the radiologist"


def test_an_instance_filed_while_the_analysis_runs_reads_the_study_again(site):
    from pydicom.uid import generate_uid

    from medai.platform.intake import receive
    from medai.platform.jobs import jobs

    p, folder = site
    study = generate_uid()
    sid = receive.store(p, _film(folder, "a", study, 1), "MODALITY").study_id
    _at(p, WINDOW)
    job = _claim(p)  # the analysis has started ...
    late = receive.store(p, _film(folder, "b", study, 2, view="AP"), "MODALITY")
    assert late.job_id is None  # ... and will run again after this one
    assert jobs.run_claimed(p, job, "w1", 60) == "queued"
    assert _claim(p) is None  # after the late instance's window
    _at(p, 2 * WINDOW)
    assert _run(p) == "done"
    readings = [r.reading for r in _results(p, sid)]
    assert readings[-1].startswith("2:")
