"""Monitoring (issue 26): a model's analyses are compared with its reference (its first 100
analyses here) over a window of the latest 50. A shifted population — brighter films, another
view — raises an alert within 30 studies of the shift (the least window a verdict needs); a
stable stream of the same length raises none. Radiologists disagreeing with a label on the
signed studies raises an agreement alert. Alerts are stored, audited and POSTed to a webhook,
and cleared when the condition goes away."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest
from sqlalchemy import select

from helpers.lifecycle import _alerts, film
from helpers.platform import bare_platform, reread_settings
from medai.platform.dicom.arrival import Arrival

pytestmark = pytest.mark.slow
REFERENCE, WITHIN = 100, 30


def stream(p, n: int, start: int, brighter: float = 0.0, view: str = "PA", files=None) -> list[int]:
    """Analyse ``n`` films (or the images ``files(i)`` returns) the way a study's analysis
    does and keep their samples; returns the 1-based positions in this stream at which a new
    alert appeared."""
    from medai.platform.lifecycle import monitoring
    from medai.services import imaging as imaging_service

    predictor = p.models.get("cxr")
    fired = []
    for i in range(n):
        data = files(start + i) if files else film(start + i, brighter)
        image = imaging_service.read_image(data)
        result = predictor.predict(image)
        payload = result.model_dump(mode="json")
        assert "embedding" not in payload  # kept for monitoring, never stored with the result
        before = _alerts(p)
        monitoring.observe(
            p,
            None,
            "cxr",
            predictor.identity.content_hash,
            payload,
            image,
            5.0,
            {"modality": "CR", "view": view, "source": "dicom"},
            result.embedding,
        )
        if len(_alerts(p)) > len(before):
            fired.append(i + 1)
    return fired


def monitoring_summary(p) -> dict:
    from medai.platform.lifecycle import monitoring

    return monitoring.summary(p, "cxr", p.models.get("cxr").identity.content_hash)


@pytest.fixture()
def plat(tmp_path, tfidf_model_dir, tiny_imaging_dir):
    with bare_platform("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as p:
        yield p


def test_a_stable_stream_raises_no_alert(plat):
    from medai.platform.lifecycle import monitoring

    assert stream(plat, REFERENCE, 0) == []
    assert stream(plat, 60, 10_000) == []
    assert _alerts(plat) == []
    summary = monitoring.summary(plat, "cxr", plat.models.get("cxr").identity.content_hash)
    assert summary["volume"]["window_n"] == 50  # judged on a full window, and quiet
    assert summary["inputs"]["mean"]["p"] > 1e-4
    assert summary["embedding"]["window_n"] == 50 and summary["embedding"]["p"] > 1e-4


def test_brighter_films_raise_an_input_alert_within_30_studies(plat, monkeypatch):
    hook = Hook().start()
    monkeypatch.setenv("MEDAI_MONITOR_WEBHOOK_URL", hook.url)
    reread_settings(monkeypatch, plat)
    stream(plat, REFERENCE, 0)
    fired = stream(plat, 60, 20_000, brighter=0.25)
    assert fired and fired[0] <= WITHIN
    kinds = {(k, key) for k, key, _ in _alerts(plat)}
    assert ("input", "mean") in kinds
    summary = monitoring_summary(plat)
    assert summary["embedding"]["dimensions"] > 0 and summary["embedding"]["reference_n"] > 0
    assert ("input", "embedding") in kinds, summary["embedding"]  # the features moved too
    hook.wait()
    assert hook.received[0]["event"] == "medai.monitor.alert"
    assert hook.received[0]["kind"] in ("input", "output")
    from medai.platform.records.tables import AuditEvent

    with plat.db.reader() as db:
        assert db.scalar(select(AuditEvent).where(AuditEvent.action == "monitor")) is not None
    # the population comes back: once the window is all normal films again, the alert clears
    stream(plat, 60, 30_000)
    assert all(cleared is not None for k, key, cleared in _alerts(plat) if k == "input")
    hook.stop()


def test_another_view_raises_a_metadata_alert(plat):
    stream(plat, REFERENCE, 0)
    fired = stream(plat, 40, 40_000, view="AP")
    assert fired and fired[0] <= WITHIN
    assert ("metadata", "mix") in {(k, key) for k, key, _ in _alerts(plat)}


def _film_dicom(tmp_path, age: str, sex: str, maker: str):
    """A chest film as a DICOM file whose header names the patient's age and sex and the
    device's manufacturer."""
    from helpers.dicom import make_dicom

    def make(i: int) -> bytes:
        path = make_dicom(
            tmp_path / f"f{i}.dcm",
            seed=i,
            rows=96,
            cols=80,
            PatientAge=age,
            PatientSex=sex,
            Manufacturer=maker,
        )
        data = path.read_bytes()
        path.unlink()
        return data

    return make


def test_a_paediatric_only_stream_raises_an_age_band_alert(plat, tmp_path):
    adults = _film_dicom(tmp_path, "054Y", "F", "ACME")
    children = _film_dicom(tmp_path, "006Y", "F", "ACME")
    assert stream(plat, REFERENCE, 0, files=adults) == []
    fired = stream(plat, 40, 50_000, files=children)
    assert fired and fired[0] <= WITHIN
    kinds = {(k, key) for k, key, _ in _alerts(plat)}
    assert ("metadata", "age_band") in kinds
    assert ("metadata", "sex") not in kinds and ("metadata", "manufacturer") not in kinds
    from medai.platform.lifecycle import monitoring

    summary = monitoring.summary(plat, "cxr", plat.models.get("cxr").identity.content_hash)
    assert summary["population"]["age_band"]["reference"] == {"40-64": 1.0}
    assert summary["population"]["age_band"]["window"] == {"2-11": 1.0}


def test_a_new_device_manufacturer_raises_a_manufacturer_alert(plat, tmp_path):
    assert stream(plat, REFERENCE, 0, files=_film_dicom(tmp_path, "054Y", "M", "ACME")) == []
    fired = stream(plat, 40, 60_000, files=_film_dicom(tmp_path, "061Y", "M", "Other Corp"))
    assert fired and fired[0] <= WITHIN
    kinds = {(k, key) for k, key, _ in _alerts(plat)}
    assert ("metadata", "manufacturer") in kinds and ("metadata", "sex") not in kinds


def test_the_embedding_moves_with_the_films_and_stays_put_on_a_stable_stream():
    """Hotelling's T² on the whitened features: a mean shift of one standard deviation on
    100 + 50 samples is found; the same distribution is not."""
    from medai.platform.lifecycle import drift

    rng = np.random.default_rng(0)
    ref = rng.normal(size=(100, 8))
    same_d, same_p = drift.hotelling(ref, rng.normal(size=(50, 8)))
    moved_d, moved_p = drift.hotelling(ref, rng.normal(size=(50, 8)) + [1, 0, 0, 0, 0, 0, 0, 0])
    assert same_p > 1e-4 and same_d < 0.5
    assert moved_p < 1e-4 and moved_d > 0.7
    assert drift.hotelling(ref, []) == (0.0, 1.0)
    assert drift.hotelling(ref[:3], ref[:3]) == (0.0, 1.0)  # too few for 8 dimensions


def test_disagreeing_signatures_raise_an_agreement_alert(plat):
    from medai.platform.lifecycle import monitoring
    from medai.platform.records.tables import StudyLabel, User
    from medai.platform.worklist import filing

    model_hash = plat.models.get("cxr").identity.content_hash
    with plat.db.session() as db:
        user = db.scalar(select(User))
        for i in range(25):
            study, _ = filing.create(
                db,
                Arrival(
                    sha=f"{i:064x}",
                    size=1,
                    content_type="image/png",
                    task="cxr",
                    uploaded_by=user.id,
                ),
            )
            db.flush()
            # the AI calls pneumonia; the radiologist agrees on 5 of 25
            db.add(
                StudyLabel(
                    study_id=study.id,
                    report_version=2,
                    label="Pneumonia",
                    present=i < 5,
                    ai_positive=True,
                    source="text",
                    model_hash=model_hash,
                    decided_by=user.id,
                )
            )
    new = monitoring.check(plat, "cxr", model_hash)
    assert [(a.kind, a.key) for a in new] == [("agreement", "Pneumonia")]
    summary = monitoring.summary(plat, "cxr", model_hash)
    agreement = summary["agreement"]["Pneumonia"]
    assert agreement["n"] == 25 and agreement["agreement"][0] == 0.2
    assert agreement["ppv"][0] == 0.2 and agreement["ppv"][1] < 0.2 < agreement["ppv"][2]


class Hook:
    """A webhook receiver that keeps the JSON bodies it was sent."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.got = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append(json.loads(body))
                outer.got.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def start(self) -> Hook:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def wait(self) -> None:
        assert self.got.wait(30), "the webhook was not called"

    def stop(self) -> None:
        self.server.shutdown()


def test_the_header_gives_age_band_sex_and_manufacturer_and_nothing_else(tmp_path):
    """Validation subgroups and the monitoring mix read these from the DICOM header: bands,
    not ages; PatientAge when present, else birth date against the study date."""
    from helpers.dicom import make_dicom
    from medai.services.imaging import header_population

    def header(**attrs) -> dict:
        return header_population(make_dicom(tmp_path / "h.dcm", **attrs).read_bytes())

    assert header(PatientAge="006M", PatientSex="F", Manufacturer="ACME") == {
        "view": "PA",
        "age_band": "0-1",
        "sex": "F",
        "manufacturer": "ACME",
    }
    assert header(PatientAge="017Y")["age_band"] == "12-17"
    assert header(PatientAge="065Y")["age_band"] == "65+"
    assert header(PatientBirthDate="19801121")["age_band"] == "40-64"  # study 2025-11-20
    assert header(PatientBirthDate="20071121")["age_band"] == "12-17"  # 17 the day before 18
    assert header(PatientAge="garbage", PatientSex="X") == {
        "view": "PA",
        "age_band": "",
        "sex": "",
        "manufacturer": "",
    }
    assert header_population(b"\x89PNG not a dicom") == {}


def test_an_empty_window_has_no_numbers_and_agreement_covers_only_the_models_labels(plat):
    """Five analyses, all still the reference: the window is empty, so no label, image
    statistic, mix or embedding has a PSI, KS or p (None with n = 0, never 0.0 and 1.0, which
    read as "no drift"). A radiologist adds a pneumothorax the model never outputs: agreement
    is reported for the model's own labels only."""
    from medai.platform.records.tables import StudyLabel, User
    from medai.platform.worklist import filing

    assert stream(plat, 5, 0) == []
    model_hash = plat.models.get("cxr").identity.content_hash
    with plat.db.session() as db:
        user = db.scalar(select(User))
        for i in range(3):
            study, _ = filing.create(
                db,
                Arrival(
                    sha=f"{i:064x}",
                    size=1,
                    content_type="image/png",
                    task="cxr",
                    uploaded_by=user.id,
                ),
            )
            db.flush()
            for label, present, ai in (("Pneumonia", True, True), ("Pneumothorax", True, False)):
                db.add(
                    StudyLabel(
                        study_id=study.id,
                        report_version=2,
                        label=label,
                        present=present,
                        ai_positive=ai,
                        source="added",
                        model_hash=model_hash,
                        decided_by=user.id,
                    )
                )
    summary = monitoring_summary(plat)
    assert summary["volume"]["window_n"] == 0 and summary["volume"]["reference_n"] == 5
    assert set(summary["labels"]) == {"Pneumonia", "COVID-19", "No Finding"}
    for label, x in summary["labels"].items():  # they used to read PSI 0.0, KS p 1.0
        assert (x["psi"], x["ks"], x["p"]) == (None, None, None), (label, x)
        assert (x["window_n"], x["reference_n"], x["window_positive_rate"]) == (0, 5, None)
    for name, x in summary["inputs"].items():
        assert (x["ks"], x["p"], x["window_median"]) == (None, None, None), (name, x)
        assert x["window_n"] == 0
    assert (summary["metadata"]["psi"], summary["metadata"]["p"]) == (None, None)
    assert summary["metadata"]["window_n"] == 0
    assert (summary["embedding"]["distance"], summary["embedding"]["p"]) == (None, None)
    assert set(summary["agreement"]) == {"Pneumonia"}  # not Pneumothorax: not the model's
    assert summary["agreement"]["Pneumonia"]["n"] == 3
