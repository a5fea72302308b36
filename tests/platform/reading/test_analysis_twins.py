"""One reading per study and model, whichever run stored it. Two runs of one study's analysis
(a redelivery, a second node, the job pool and a caller) can each read the study; the first to
store its read is the study's, and the other goes on from that stored read as a repeated job
does: never a draft from one read with the refusal or the urgency of another. And a film whose
heatmap step refuses the image is refused, with no findings stored beside the refusal.

Deterministic: the other run's read is stored at the moment it can happen (after this run read
the study, before it stores), by wrapping the one call that reads."""

from __future__ import annotations

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import select

from helpers.dicom import make_dicom
from helpers.platform import bearer, clinic


@pytest.fixture
def hospital(tmp_path, tfidf_model_dir, tiny_imaging_dir):
    with clinic(
        "sqlite",
        tmp_path / "home",
        tfidf_model_dir,
        tiny_imaging_dir,
        outbox_threads=0,
        job_threads=0,
    ) as (app, client):
        yield app, client


def _uploaded(client, tmp_path) -> int:
    path = make_dicom(tmp_path / "twin.dcm", study=generate_uid(), seed=4, rows=80, cols=64)
    r = client.post(
        "/api/v1/studies",
        headers=bearer(client, "rad1"),
        data={"task": "cxr"},
        files={"file": ("t.dcm", path.read_bytes(), "application/dicom")},
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _rows(p, sid: int) -> dict[str, list]:
    from medai.platform.records.tables import AIResultRow

    with p.db.session() as db:
        rows = db.scalars(select(AIResultRow).where(AIResultRow.study_id == sid)).all()
        out: dict[str, list] = {}
        for r in rows:
            out.setdefault(r.kind, []).append(r.payload)
        return out


def test_a_twin_runs_stored_refusal_is_the_studys_never_drafted_from(
    hospital, tmp_path, monkeypatch
):
    from medai.imaging.results import ImagingResult
    from medai.platform.reading import analysis
    from medai.platform.worklist.ai_results import save_result
    from medai.services import study_read

    app, client = hospital
    p = app.state.platform
    sid = _uploaded(client, tmp_path)
    real = study_read.read_study

    def read_then_twin_stores(predictor, **kw):
        got = real(predictor, **kw)
        assert got.result is not None and not got.result.refused  # this run read findings
        ref = predictor.identity
        twin = ImagingResult(
            status="refused",
            task=ref.task,
            refused=True,
            reason="this image does not look like the training images",
            reason_code="out_of_distribution",
            model=ref,
        ).model_dump(mode="json")
        with p.db.session() as db:
            from medai.platform.worklist.filing import reading_key

            reading = reading_key(db, sid)
        save_result(p, sid, "imaging", ref, twin, reading=reading)  # the other run, first
        monkeypatch.setattr(study_read, "read_study", real)  # the next turn reads as it is
        return got

    monkeypatch.setattr(study_read, "read_study", read_then_twin_stores)
    assert analysis.analyse_study(p, sid) == "refused"
    rows = _rows(p, sid)
    assert [r["refused"] for r in rows["imaging"]] == [True]  # one reading: the twin's
    assert "draft" not in rows  # nothing drafted from this run's findings
    report = client.get(f"/api/v1/studies/{sid}/report", headers=bearer(client, "rad1"))
    assert report.status_code == 404 or not report.json().get("sections"), report.text


def test_a_film_whose_heatmap_step_refuses_it_is_refused_without_findings(
    hospital, tmp_path, monkeypatch
):
    from medai.imaging import reading
    from medai.imaging.io import ImageRefused, Refusal
    from medai.platform.reading import analysis

    app, client = hospital
    p = app.state.platform
    sid = _uploaded(client, tmp_path)

    def refused(*_a, **_k):  # the gate's distance read again at the heatmap, over its limit
        raise ImageRefused(Refusal("out_of_distribution", "unlike the training images"))

    monkeypatch.setattr(reading, "heatmap", refused)  # the study read's heatmap step
    assert analysis.analyse_study(p, sid) == "refused"
    (stored,) = _rows(p, sid)["imaging"]
    assert stored["refused"] and stored["reason_code"] == "out_of_distribution"
    assert not stored.get("findings"), stored  # no findings beside the refusal


def test_a_failing_drafter_keeps_the_read_and_a_retry_drafts_from_it_without_reading_again(
    hospital, tmp_path, monkeypatch
):
    """The draft is made in the study read's one call; a drafter that fails there (a knowledge
    base or captioner that does not load) fails the job only once the read is kept, so the
    findings, the heatmap and the monitoring sample survive and the retry infers nothing."""
    from medai.imaging import reading
    from medai.platform.reading import analysis
    from medai.platform.records.tables import MonitorSample
    from medai.services import study_read

    app, client = hospital
    p = app.state.platform
    sid = _uploaded(client, tmp_path)

    class Broken:
        def draft(self, *_a, **_k):
            raise RuntimeError("the knowledge base did not load")

    monkeypatch.setattr(study_read, "shared_drafter", lambda _dir=None: Broken())
    with pytest.raises(RuntimeError, match="knowledge base"):
        analysis.analyse_study(p, sid)
    rows = _rows(p, sid)
    (kept,) = rows["imaging"]
    assert not kept["refused"] and kept["findings"]  # the read is the study's
    assert "draft" not in rows
    with p.db.session() as db:
        samples = db.scalars(select(MonitorSample).where(MonitorSample.study_id == sid)).all()
    assert len(samples) == 1

    monkeypatch.undo()
    inferred: list[int] = []
    real = reading.findings

    def counted(*a, **k):
        inferred.append(1)
        return real(*a, **k)

    monkeypatch.setattr(reading, "findings", counted)
    assert analysis.analyse_study(p, sid) == "ai_drafted"  # the job's retry
    assert inferred == []  # drafted from the kept read: nothing inferred again
    rows = _rows(p, sid)
    assert rows["imaging"] == [kept] and len(rows["draft"]) == 1
    with p.db.session() as db:
        assert (
            len(db.scalars(select(MonitorSample).where(MonitorSample.study_id == sid)).all()) == 1
        )
