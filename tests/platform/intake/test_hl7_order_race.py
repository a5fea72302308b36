"""An order and its images arriving at once (issue 69 §3): concurrent = serial.

For each of several accessions, two threads start together behind a barrier: the RIS sends the
order over MLLP (the real listener), at a moment spread over the time the other thread takes,
while the modality stores the image over STOW-RS and the analysis drafts the study as soon as it
is filed. Whatever the interleaving, every study ends
as the serial order (order first, then images, then the draft) leaves it: the order applied
once (one "order" audit event on the study, one STAT reason), the question on the study and in
the AI's current draft, the order row matched to that study. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest

from helpers.dicom import make_dicom, stow
from helpers.hl7 import ACUTE, orm, send
from helpers.platform import bearer, clinic

ROUNDS = 8  # accessions raced per backend (each a fresh interleaving)


@pytest.fixture(params=["sqlite", "postgresql"])
def hospital(request, tmp_path, tfidf_model_dir, tiny_imaging_dir):
    from medai.platform.intake.hl7_listener import Hl7Listener

    home = tmp_path / "home"
    with clinic(request.param, home, tfidf_model_dir, tiny_imaging_dir) as (app, client):
        listener = Hl7Listener(app.state.platform, port=0, allow=["RIS"], idle_s=10)
        listener.start()
        try:
            yield app, client, listener.port
        finally:
            listener.stop()


def _study_of(client, headers, accession: str) -> dict | None:
    items = client.get("/api/v1/studies", headers=headers, params={"accession": accession}).json()[
        "items"
    ]
    return items[0] if items else None


def _end_state(app, client, headers, accession: str) -> dict:
    """What a reader and an auditor see of one accession once everything has arrived."""
    from sqlalchemy import func, select

    from medai.platform.records.tables import AuditEvent, ImagingOrder

    found = _study_of(client, headers, accession)
    assert found is not None, accession
    study = client.get(f"/api/v1/studies/{found['id']}", headers=headers).json()
    report = client.get(f"/api/v1/studies/{found['id']}/report", headers=headers).json()
    with app.state.platform.db.reader() as db:
        order = db.scalar(select(ImagingOrder).where(ImagingOrder.accession == accession))
        applied = db.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(
                AuditEvent.action == "order",
                AuditEvent.target_type == "study",
                AuditEvent.target_id == str(found["id"]),
            )
        )
        order_state = (order.state, order.study_id == found["id"])
    return {
        "status": study["status"],
        "question": study["clinical_question"],
        "stat_reasons": [r["code"] for r in study["urgent_because"]].count("order_stat"),
        "urgent": study["urgent"],
        "priority": (study["order"] or {}).get("priority"),
        "draft_source": report["source"],
        "draft_states_question": report["sections"]["technique"].startswith(
            f"Klinik bilgi: {ACUTE}"
        ),
        "order": order_state,
        "applied_events": applied,
    }


def test_an_order_and_its_images_arriving_together_end_as_if_one_came_after_the_other(
    hospital, tmp_path
):
    from medai.platform.reading.analysis import analyse_study

    app, client, port = hospital
    rad = bearer(client, "rad1")
    p = app.state.platform

    def images_then_draft(accession: str, seed: int) -> None:
        blob = make_dicom(
            tmp_path / f"{accession}.dcm", accession=accession, patient_id="P-1", seed=seed
        ).read_bytes()
        stow(client, rad, blob)
        found = _study_of(client, rad, accession)
        assert analyse_study(p, found["id"]) == "ai_drafted"

    # serial: the order, then the images, then the draft
    assert send(port, orm("SER-1", ACUTE, priority="S"))["code"] == "AA"
    started = time.monotonic()
    images_then_draft("SER-1", 0)
    span = time.monotonic() - started  # how long images and draft take here
    serial = _end_state(app, client, rad, "SER-1")
    assert serial == {
        "status": "ai_drafted",
        "question": ACUTE,
        "stat_reasons": 1,
        "urgent": True,
        "priority": "S",
        "draft_source": "ai",
        "draft_states_question": True,
        "order": ("matched", True),
        "applied_events": 1,
    }

    # the order sent at moments spread over the images' filing and the draft: each round a
    # different interleaving (before the study exists, while it is filed, while it is drafted)
    for n in range(ROUNDS):
        accession, delay = f"RACE-{n}", span * n / ROUNDS

        def order(accession: str = accession, delay: float = delay) -> dict:
            time.sleep(delay)
            return send(port, orm(accession, ACUTE, priority="S"))

        together(
            order,
            lambda accession=accession, n=n: images_then_draft(accession, n + 1),
        )
        assert _end_state(app, client, rad, accession) == serial, accession


def together(*steps) -> None:
    """Run the steps in threads released at the same moment; re-raise the first failure."""
    gate = threading.Barrier(len(steps))
    errors: list[BaseException] = []
    answers: list[object] = []

    def run(step) -> None:
        try:
            gate.wait(timeout=30)
            answers.append(step())
        except BaseException as e:  # re-raised in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(step,)) for step in steps]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads), "a step did not finish in 120 s"
    acks = [a for a in answers if isinstance(a, dict)]
    assert all(a["code"] == "AA" for a in acks), acks


def test_a_second_run_of_the_analysis_states_the_question_its_stored_draft_lacks(
    hospital, tmp_path
):
    """The interleaving CI found: two runs of one study's analysis (the job pool's and another:
    a redelivery, a second node), the first storing its draft before the order came, the second
    reading the study after. The second finds the first's stored draft, made without the
    question, and must still open the report with it (it once compared the question with the
    one it read itself, saw no change, and replaced the AI's draft with one lacking the line)."""
    from sqlalchemy import select

    from medai.platform.reading import analysis
    from medai.platform.records.tables import Study
    from medai.platform.worklist import filing
    from medai.platform.worklist.ai_results import stored_result
    from medai.services.imaging import decision_of
    from medai.services.study_read import StudyRead

    app, client, _port = hospital
    rad = bearer(client, "rad1")
    p = app.state.platform
    blob = make_dicom(tmp_path / "twice.dcm", accession="TWICE-1", patient_id="P-1").read_bytes()
    stow(client, rad, blob)
    found = _study_of(client, rad, "TWICE-1")
    assert analysis.analyse_study(p, found["id"]) == "ai_drafted"  # the first run: no question
    with p.db.session() as db:  # the order applied after the first run read the study
        study = db.scalar(select(Study).where(Study.id == found["id"]))
        study.clinical_question = ACUTE
        reading, task, lang = filing.reading_key(db, study.id), study.task, study.language
    ref = p.models.get(task).identity
    row = stored_result(p, found["id"], "imaging", ref.content_hash, reading)
    assert row is not None
    # the second run read the question, and finds the first run's stored draft
    job = analysis.Job(
        study_id=found["id"],
        task=task,
        sha="",
        question=ACUTE,
        lang=lang,
        want_display=False,
        meta={},
        members=[],
        reading=reading,
        reopened=False,
        prior=None,
    )
    draft_row = stored_result(p, found["id"], "draft", ref.content_hash, reading)
    assert draft_row is not None
    got = StudyRead(payload=row.payload, decision=decision_of(row.payload))
    analysis._drafted(p, job, ref, row, draft_row, got)
    report = client.get(f"/api/v1/studies/{found['id']}/report", headers=rad).json()
    assert report["sections"]["technique"].startswith(f"Klinik bilgi: {ACUTE}"), report["sections"]
