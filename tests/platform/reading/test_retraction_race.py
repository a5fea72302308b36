"""A retraction racing a signature or the analysis's draft (issue 57 item 4): concurrent =
serial. On PostgreSQL (READ COMMITTED) a signature that read the study before a retraction
committed used to commit over it: the study read ``final`` again and its signed report went
out although it had been entered in error. Each of them now locks the study's row first
(``study_state.lock_study``), so the second waits for the first and sees its outcome.

Deterministic: the first party's transaction is held open (it has done its work, not yet
committed) while the second runs in a thread; the second must still be waiting when the first
commits, and its outcome is then checked. SQLite serialises every writing session already."""

from __future__ import annotations

import threading

import pytest
from pydicom.uid import generate_uid

from helpers.dicom import make_dicom
from helpers.platform import bearer, clinic


@pytest.fixture
def pg(tmp_path, tfidf_model_dir, tiny_imaging_dir):
    with clinic(
        "postgresql",
        tmp_path / "home",
        tfidf_model_dir,
        tiny_imaging_dir,
        outbox_threads=0,
        job_threads=0,
    ) as (app, client):
        yield app, client


def _drafted(app, client, tmp_path, seed: int) -> int:
    from medai.platform.reading.analysis import analyse_study

    path = make_dicom(tmp_path / f"r{seed}.dcm", study=generate_uid(), seed=seed, rows=80, cols=64)
    r = client.post(
        "/api/v1/studies",
        headers=bearer(client, "rad1"),
        data={"task": "cxr"},
        files={"file": ("r.dcm", path.read_bytes(), "application/dicom")},
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert analyse_study(app.state.platform, sid) == "ai_drafted"
    return sid


def _in_thread(fn):
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except Exception as exc:  # the outcome is what the test checks
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def _user(db, name: str):
    from sqlalchemy import select

    from medai.platform.records.tables import User

    return db.scalar(select(User).where(User.username == name))


def test_a_signature_waiting_on_a_retraction_is_refused(pg, tmp_path):
    from medai.platform.reading import retraction, review
    from medai.platform.records.tables import Study
    from medai.platform.worklist import study_state, versions

    app, client = pg
    p = app.state.platform
    sid = _drafted(app, client, tmp_path, 1)
    version = client.get(f"/api/v1/studies/{sid}/report", headers=bearer(client, "rad1")).json()[
        "version"
    ]

    def sign():
        with p.db.session() as db:
            return review.sign(
                db,
                db.get(Study, sid),
                version,
                _user(db, "rad1"),
                destinations=p.settings.destinations(),
            ).version

    with p.db.session() as db:  # the retraction, done but not yet committed
        retraction.retract(
            db,
            db.get(Study, sid),
            _user(db, "rad1"),
            "wrong_patient",
            None,
            p.clock(),
            destinations=p.settings.destinations(),
        )
        t, out = _in_thread(sign)
        t.join(1.0)
        assert t.is_alive(), out  # the signature waits on the study's row
    t.join(60)
    assert isinstance(out.get("error"), study_state.StudyRetracted), out
    with p.db.reader() as db:
        assert db.get(Study, sid).status == study_state.RETRACTED
        assert all(v.signed_by is None for v in versions.versions(db, sid))


def test_a_retraction_waiting_on_a_signature_retracts_the_signed_study(pg, tmp_path):
    from medai.platform.reading import retraction, review
    from medai.platform.records.tables import Study
    from medai.platform.worklist import study_state

    app, client = pg
    p = app.state.platform
    sid = _drafted(app, client, tmp_path, 2)
    version = client.get(f"/api/v1/studies/{sid}/report", headers=bearer(client, "rad1")).json()[
        "version"
    ]

    def retract():
        with p.db.session() as db:
            done = retraction.retract(
                db,
                db.get(Study, sid),
                _user(db, "rad1"),
                "wrong_study",
                None,
                p.clock(),
                destinations=p.settings.destinations(),
            )
            return done.row.previous_status

    with p.db.session() as db:  # the signature, done but not yet committed
        study = db.get(Study, sid)
        open_ = review.undecided(db, study, None)  # decided by the signer: the first present
        choices = {lab: k == 0 for k, lab in enumerate(open_)}
        review.sign(
            db,
            study,
            version,
            _user(db, "rad1"),
            choices=choices,
            destinations=p.settings.destinations(),
        )
        t, out = _in_thread(retract)
        t.join(1.0)
        assert t.is_alive(), out
    t.join(60)
    assert out.get("value") == "final", out  # it saw the signature, and retracted after it
    with p.db.reader() as db:
        assert db.get(Study, sid).status == study_state.RETRACTED


def test_a_draft_waiting_on_a_retraction_is_not_made(pg, tmp_path, monkeypatch):
    """The analysis finishing while a radiologist retracts: no draft, the status stays."""
    from medai.platform.reading import analysis, retraction
    from medai.platform.records.tables import Study
    from medai.platform.worklist import study_state, versions

    app, client = pg
    p = app.state.platform
    path = make_dicom(tmp_path / "d.dcm", study=generate_uid(), seed=3, rows=80, cols=64)
    r = client.post(
        "/api/v1/studies",
        headers=bearer(client, "rad1"),
        data={"task": "cxr"},
        files={"file": ("d.dcm", path.read_bytes(), "application/dicom")},
    )
    sid = r.json()["id"]
    with p.db.session() as db:  # the retraction, done but not yet committed
        retraction.retract(
            db,
            db.get(Study, sid),
            _user(db, "rad1"),
            "safety",
            None,
            p.clock(),
            destinations=p.settings.destinations(),
        )
        t, out = _in_thread(lambda: analysis.analyse_study(p, sid))
        t.join(1.0)
    t.join(120)
    assert out.get("value") == study_state.RETRACTED, out
    with p.db.reader() as db:
        assert db.get(Study, sid).status == study_state.RETRACTED
        assert versions.versions(db, sid) == []
