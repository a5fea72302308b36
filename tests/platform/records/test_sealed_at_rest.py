"""Every free text that can hold patient data is sealed at rest: a clinical question, a report's
sections (the AI draft and the radiologist's edit), a triage result's red-flag evidence, a
patient reference, a DICOM series description. So is the clinical content beside them: a
report version's findings and citations, the signer's verdict on each label, what monitoring
keeps of each analysis (probabilities, positives, age band and sex), a site set's frozen
verdicts and a validation's per-study outputs. A scan of every row of every table finds none
of it in clear; the views read it back; a key rotation covers it (the old key removed,
everything still reads); the migrations seal what an older version kept in clear (and a
downgrade opens it again), and the upgrade keeps a patient found by its reference."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import inspect, text

from helpers.dicom import make_dicom
from helpers.platform import (  # noqa: F401 (urgent_cxr_dir: a fixture)
    bearer,
    clinic,
    decided,
    png_bytes,
    urgent_cxr_dir,
    use_keys,
    wait_status,
)

QUESTION = "Ayşe Yılmaz 05321234567 öksürük"
REF = "PREF-778899"
COMPLAINT = "Kızım nefes alamıyor, dudakları morardı"
EDIT = "Karaca Hanım kötüyüm dedi; akciğerler temiz."
SERIES = "Karaca yatak 12 portabl"  # operator free text in SeriesDescription
MARKERS = (
    "Yılmaz",
    "05321234567",
    REF,
    "Kızım",
    "nefes alamıyor",
    "Karaca",
    "kötüyüm",
    "yatak 12",
)
# the clinical columns sealed by migration 0019 (table, column): none holds a label name, a
# probability, an age band or a sex in clear
CLINICAL = (
    ("report_versions", "findings"),
    ("report_versions", "citations"),
    ("study_labels", "label"),
    ("study_labels", "present"),
    ("study_labels", "ai_positive"),
    ("study_labels", "source"),
    ("monitor_samples", "probs"),
    ("monitor_samples", "positives"),
    ("monitor_samples", "stats"),
    ("monitor_samples", "meta"),
    ("dicom_instances", "series_description"),
    ("studies", "urgent_because"),
)


def _cell(value) -> str:
    if isinstance(value, memoryview):
        value = bytes(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _scan(app, markers=MARKERS) -> list[str]:
    """Every marker found in clear in any column of any row (the database as a thief sees
    it)."""
    found = []
    with app.state.platform.db.session() as db:
        for name in inspect(db.get_bind()).get_table_names():
            for row in db.execute(text(f"SELECT * FROM {name}")).all():
                cells = " ".join(_cell(c) for c in row)
                found += [f"{name}: {m}" for m in markers if m in cells]
    return found


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request, tmp_path_factory, tfidf_model_dir, urgent_cxr_dir):  # noqa: F811
    # a model that decides (Pneumothorax present, Effusion absent): the AI's side of a verdict
    with clinic(
        request.param,
        tmp_path_factory.mktemp(f"sealed-{request.param}"),
        tfidf_model_dir,
        urgent_cxr_dir,
    ) as (app, client):
        rad = bearer(client, "rad1")
        r = client.post(
            "/api/v1/studies",
            headers=rad,
            data={"task": "cxr", "patient_ref": REF, "clinical_question": QUESTION},
            files={"file": ("x.png", png_bytes(3), "image/png")},
        )
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        wait_status(client, rad, sid, {"ai_drafted"})
        report = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()
        r = client.put(
            f"/api/v1/studies/{sid}/report",
            headers=rad,
            json={
                "version": report["version"],
                "sections": {**report["sections"], "impression": EDIT},
            },
        )
        assert r.status_code == 200, r.text
        pat = bearer(client, "pat1")
        r = client.post("/api/v1/triage", headers=pat, json={"text": COMPLAINT})
        assert r.status_code == 200, r.text
        # a DICOM study (a series description, the patient's sex and age), analysed and signed:
        # findings and citations, the signer's labels, a monitoring sample
        dcm = make_dicom(
            tmp_path_factory.mktemp("dcm") / "cr.dcm",
            description=SERIES,
            PatientSex="F",
            PatientAge="047Y",
        )
        r = client.post(
            "/api/v1/studies",
            headers=rad,
            data={"task": "cxr"},
            files={"file": ("cr.dcm", dcm.read_bytes(), "application/dicom")},
        )
        assert r.status_code == 201, r.text
        dicom_sid = r.json()["id"]
        wait_status(client, rad, dicom_sid, {"ai_drafted"})
        report = client.get(f"/api/v1/studies/{dicom_sid}/report", headers=rad).json()
        r = client.post(
            f"/api/v1/studies/{dicom_sid}/report/sign",
            headers=rad,
            json={
                "version": report["version"],
                "labels": decided(client, rad, dicom_sid, {"Pneumothorax": True}),
            },
        )
        assert r.status_code == 200, r.text
        yield app, client, sid, dicom_sid


def _raw(app, table: str, column: str) -> list:
    """The stored values of a column as the database holds them (no ORM type in between)."""
    with app.state.platform.db.session() as db:
        return [
            r[0]
            for r in db.execute(
                text(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL")
            ).all()
        ]


def _opens(value) -> str:
    """A stored value's plaintext: it must be a Fernet token (text, or a JSON string of one)."""
    from medai.platform.records.crypto import cipher

    if isinstance(value, str) and value.startswith('"'):
        value = json.loads(value)  # a JSON column holds the token as a JSON string
    assert isinstance(value, str), f"not a sealed token: {value!r}"
    return cipher().decrypt(value.encode("ascii"))


def _clinical_in_clear(app) -> list[str]:
    """Each clinical column (``CLINICAL``) with a stored value that is not a token or that
    shows a label name, a probability, an age band, a sex or the series description."""
    from medai.core import task_registry

    words = [*task_registry.get("cxr").labels, "40-64", '"F"', "probability", SERIES, "true"]
    bad = []
    for table, column in CLINICAL:
        values = _raw(app, table, column)
        if not values:
            bad.append(f"{table}.{column}: no rows to check")
        for v in values:
            try:
                _opens(v)
            except Exception as exc:  # not a token, or a token no key opens
                bad.append(f"{table}.{column}: {type(exc).__name__}")
                continue
            bad += [f"{table}.{column}: {w}" for w in words if w in _cell(v)]
    return bad


def _clinical_reads_back(app, client, dicom_sid: int) -> None:
    """The sealed clinical columns read back through the API and the ORM."""
    from sqlalchemy import select

    from medai.core import task_registry
    from medai.platform.records.tables import MonitorSample

    rad = bearer(client, "rad1")
    report = client.get(f"/api/v1/studies/{dicom_sid}/report", headers=rad).json()
    assert report["findings"] and all(
        isinstance(f["probability"], float) for f in report["findings"]
    )
    assert isinstance(report["citations"], list)
    study = client.get(f"/api/v1/studies/{dicom_sid}", headers=rad).json()
    assert study["dicom"]["series_description"] == SERIES
    labels = client.get(f"/api/v1/studies/{dicom_sid}/labels", headers=rad).json()
    assert labels["report_version"] == report["version"] and labels["labels"]
    assert any(item["present"] for item in labels["labels"])
    assert {item["label"] for item in labels["labels"]} <= set(task_registry.get("cxr").labels)
    with app.state.platform.db.session() as db:
        sample = db.scalars(select(MonitorSample).where(MonitorSample.study_id == dicom_sid)).one()
        assert sample.meta["sex"] == "F" and sample.meta["age_band"] == "40-64"
        assert set(sample.probs) == {f["label"] for f in report["findings"]}
        assert sample.stats["width"] > 0


def test_nothing_a_patient_or_clinician_wrote_is_in_clear_in_the_database(site):
    app, client, sid, _dicom_sid = site
    assert _scan(app) == []
    assert _scan(app, ("rad1",))  # the scan does see what is kept in clear
    rad = bearer(client, "rad1")
    study = client.get(f"/api/v1/studies/{sid}", headers=rad).json()
    assert study["clinical_question"] == QUESTION and study["patient_ref"] == REF
    assert (
        client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()["sections"]["impression"]
        == EDIT
    )
    history = client.get("/api/v1/triage/history", headers=bearer(client, "pat1")).json()
    assert history["items"][0]["result"]  # the result reads back whole
    # the same reference again finds the same patient (by its keyed hash)
    r = client.post(
        "/api/v1/studies",
        headers=rad,
        data={"task": "cxr", "patient_ref": REF},
        files={"file": ("y.png", png_bytes(4), "image/png")},
    )
    with app.state.platform.db.session() as db:
        assert db.execute(text("SELECT count(*) FROM patients")).scalar() == 1
    assert r.json()["patient_ref"] == REF


def test_findings_labels_monitoring_and_series_descriptions_are_sealed(site):
    app, client, _sid, dicom_sid = site
    assert _clinical_in_clear(app) == []
    _clinical_reads_back(app, client, dicom_sid)


def test_key_rotation_covers_every_sealed_text(site, monkeypatch):
    from medai.platform.ops.rotation import rotate_all
    from medai.settings import get_settings

    app, client, sid, dicom_sid = site
    old = (get_settings().storage.home / "secret.key").read_text().strip()
    new = Fernet.generate_key().decode()
    try:
        use_keys(monkeypatch, new, old)
        with app.state.platform.db.session() as db:
            assert rotate_all(db) >= 5
        use_keys(monkeypatch, new)  # the old key removed
        rad = bearer(client, "rad1")
        study = client.get(f"/api/v1/studies/{sid}", headers=rad).json()
        assert study["clinical_question"] == QUESTION and study["patient_ref"] == REF
        assert (
            client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()["sections"][
                "impression"
            ]
            == EDIT
        )
        history = client.get("/api/v1/triage/history", headers=bearer(client, "pat1"))
        assert history.status_code == 200 and history.json()["items"][0]["result"]
        r = client.post(
            "/api/v1/studies",
            headers=rad,
            data={"task": "cxr", "patient_ref": REF},
            files={"file": ("z.png", png_bytes(6), "image/png")},
        )
        assert r.status_code == 201
        with app.state.platform.db.session() as db:  # still one patient under the new key
            assert db.execute(text("SELECT count(*) FROM patients")).scalar() == 1
        assert _scan(app) == []
        assert _clinical_in_clear(app) == []  # every clinical column opens under the new key
        _clinical_reads_back(app, client, dicom_sid)
    finally:  # back under the home's own key, for whatever runs after
        use_keys(monkeypatch, old, new)
        with app.state.platform.db.session() as db:
            rotate_all(db)
        use_keys(monkeypatch)


def test_the_upgrade_seals_what_an_older_version_kept_in_clear(tmp_path, monkeypatch):
    from alembic import command
    from sqlalchemy import create_engine

    from helpers.platform import migrator, use_home
    from medai.platform.records.crypto import cipher
    from medai.platform.records.db import Database

    use_home(tmp_path)
    cipher.cache_clear()
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    migrate = migrator(engine)
    migrate(command.upgrade, "0015")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, username, password_hash, role, active, "
                "created_at) VALUES (1, 'u', '', 'radiologist', 1, '2026-01-01')"
            )
        )
        conn.execute(
            text(f"INSERT INTO patients (id, ref, created_at) VALUES (1, '{REF}', '2026-01-01')")
        )
        conn.execute(
            text(
                "INSERT INTO studies (id, patient_id, task, modality, file_sha256, "
                "file_size, content_type, clinical_question, language, status, urgent, "
                "uploaded_by, created_at, updated_at) VALUES (1, 1, 'cxr', 'CR', 'x', "
                f"1, 'image/png', '{QUESTION}', 'tr', 'received', 0, 1, '2026-01-01', "
                "'2026-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO triage_requests (id, user_id, complaint, result, urgent, "
                "model_hash, created_at) VALUES (1, 1, x'00', :r, 0, 'h', "
                "'2026-01-01')"
            ),
            {"r": json.dumps({"red_flags": [{"evidence": COMPLAINT}]})},
        )
    migrate(command.upgrade, "head")
    with engine.begin() as conn:
        raw = [
            str(v)
            for row in conn.execute(
                text(
                    "SELECT p.ref, p.ref_sealed, s.clinical_question, t.result FROM patients p, "
                    "studies s, triage_requests t"
                )
            ).all()
            for v in row
        ]
    assert not any(m in v for v in raw for m in MARKERS)
    db = Database(url)
    with db.session() as s:
        from medai.platform.records.tables import Study, TriageRecord
        from medai.platform.worklist import filing

        assert filing.patient_for(s, REF).id == 1  # found by its keyed hash
        assert s.get(Study, 1).clinical_question == QUESTION
        assert s.get(TriageRecord, 1).result["red_flags"][0]["evidence"] == COMPLAINT
    db.dispose()
    migrate(command.downgrade, "0015")  # and back in clear
    with engine.begin() as conn:
        assert conn.execute(text("SELECT ref FROM patients")).scalar() == REF
        assert conn.execute(text("SELECT clinical_question FROM studies")).scalar() == QUESTION
    engine.dispose()


FINDINGS = [{"label": "Pneumothorax", "probability": 0.9321, "positive": True}]
CITATIONS = [{"n": 1, "title": "Pneumothorax: BTS guideline", "source": "bts"}]


def _old_clinical_rows(conn, sealed_sections: str) -> None:
    """A site at 0018 with one of each clinical row in clear (as that version wrote them)."""
    rows = (
        "INSERT INTO users (id, username, password_hash, role, active, created_at) "
        "VALUES (1, 'u', '', 'radiologist', true, '2026-01-01')",
        "INSERT INTO studies (id, task, modality, file_sha256, file_size, content_type, "
        "language, status, urgent, urgent_because, uploaded_by, created_at, updated_at) VALUES "
        "(1, 'cxr', 'CR', 'x', 1, 'image/png', 'tr', 'final', true, :urgent, 1, '2026-01-01', "
        "'2026-01-01'), (2, 'cxr', 'CR', 'y', 1, 'image/png', 'tr', 'final', false, 'null', 1, "
        "'2026-01-01', '2026-01-01')",
        "INSERT INTO report_versions (id, study_id, version, status, source, sections, "
        "citations, findings, created_at) VALUES (1, 1, 1, 'final', 'human', :sections, "
        ":citations, :findings, '2026-01-01')",
        "INSERT INTO study_labels (id, study_id, report_version, label, present, ai_positive, "
        "source, at) VALUES (1, 1, 1, 'Pneumothorax', true, false, 'added', '2026-01-01'), "
        "(2, 1, 1, 'No Finding', false, NULL, 'text', '2026-01-01')",
        "INSERT INTO monitor_samples (id, task, model_hash, study_id, at, refused, abstained, "
        "probs, positives, stats, meta) VALUES (1, 'cxr', 'h', 1, '2026-01-01', false, false, "
        ":probs, :positives, :stats, :meta)",
        "INSERT INTO dicom_instances (id, study_id, sop_uid, series_uid, sop_class, "
        "series_description, file_sha256, file_size, created_at) VALUES (1, 1, '1.2.3', "
        "'1.2.4', '1.2.840.10008.5.1.4.1.1.1', :series, 'x', 1, '2026-01-01')",
        "INSERT INTO registered_models (id, task, name, version, model_type, content_hash, "
        "path, state, source, card, registered_by, registered_at, state_at) VALUES (1, 'cxr', "
        "'m', '1', 'imaging', 'h', 'p', 'candidate', 'x', '{}', 'u', '2026-01-01', "
        "'2026-01-01')",
        "INSERT INTO site_sets (id, task, version, studies, label_counts, content_hash, "
        "created_by, created_at) VALUES (1, 'cxr', 1, :site_studies, '{}', 'h', 'u', "
        "'2026-01-01')",
        "INSERT INTO validations (id, model_id, site_set_id, margin, passed, metrics, "
        "created_by, created_at) VALUES (1, 1, 1, 0.02, true, :metrics, 'u', '2026-01-01')",
    )
    values = {
        "sections": json.dumps(sealed_sections),
        "citations": json.dumps(CITATIONS),
        "findings": json.dumps(FINDINGS),
        "probs": json.dumps({"Pneumothorax": 0.9321}),
        "positives": json.dumps(["Pneumothorax"]),
        "stats": json.dumps({"mean": 0.41, "std": 0.2, "width": 64, "height": 64}),
        "meta": json.dumps({"modality": "CR", "age_band": "40-64", "sex": "F"}),
        "series": SERIES,
        "urgent": json.dumps([{"code": "ai_finding", "label": "Pneumothorax"}]),
        "site_studies": json.dumps([{"study_id": 1, "labels": {"Pneumothorax": True}}]),
        "metrics": json.dumps({"monitor_reference": [{"probs": {"Pneumothorax": 0.9321}}]}),
    }
    for sql in rows:
        conn.execute(text(sql), {k: v for k, v in values.items() if f":{k}" in sql})


OLD_COLUMNS = (  # (table, column, what a clear value shows)
    ("report_versions", "findings", "Pneumothorax"),
    ("report_versions", "citations", "BTS guideline"),
    ("study_labels", "label", "Pneumothorax"),
    ("monitor_samples", "probs", "0.9321"),
    ("monitor_samples", "positives", "Pneumothorax"),
    ("monitor_samples", "stats", "0.41"),
    ("monitor_samples", "meta", "40-64"),
    ("dicom_instances", "series_description", "yatak 12"),
    ("site_sets", "studies", "Pneumothorax"),
    ("validations", "metrics", "0.9321"),
    ("studies", "urgent_because", "Pneumothorax"),
)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_upgrade_seals_the_clinical_columns_and_the_downgrade_opens_them(kind, tmp_path):
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import select

    from helpers.platform import database_url, migrator, use_home
    from medai.platform.records.crypto import cipher
    from medai.platform.records.db import Base, Database, make_engine
    from medai.platform.records.tables import (
        DicomInstance,
        MonitorSample,
        ReportVersion,
        SiteSet,
        StudyLabel,
        Validation,
    )

    use_home(tmp_path)
    cipher.cache_clear()
    with database_url(kind, tmp_path) as url:
        engine = make_engine(url)
        migrate = migrator(engine)
        migrate(command.upgrade, "0018")
        sections = cipher().encrypt(json.dumps({"impression": "x"})).decode("ascii")
        with engine.begin() as conn:
            _old_clinical_rows(conn, sections)
        migrate(command.upgrade, "head")
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
            for table, column, shown in OLD_COLUMNS:
                (value,) = conn.execute(text(f"SELECT {column} FROM {table} ORDER BY id")).first()
                assert shown not in _cell(value), (table, column)
                assert shown in _opens(value), (table, column)
            # a JSON null an older version wrote for "not urgent" is SQL NULL now (no token)
            assert (
                conn.execute(
                    text("SELECT count(*) FROM studies WHERE urgent_because IS NULL")
                ).scalar()
                == 1
            )
            for column in ("present", "ai_positive", "source"):
                values = [
                    r[0]
                    for r in conn.execute(
                        text(f"SELECT {column} FROM study_labels ORDER BY id")
                    ).all()
                ]
                assert _opens(values[0]) in ("true", "false", '"added"', "added"), column
        db = Database(url)
        with db.session() as s:
            assert s.get(ReportVersion, 1).findings == FINDINGS
            assert s.get(ReportVersion, 1).citations == CITATIONS
            labels = s.scalars(select(StudyLabel).order_by(StudyLabel.id)).all()
            assert [(x.label, x.present, x.ai_positive, x.source) for x in labels] == [
                ("Pneumothorax", True, False, "added"),
                ("No Finding", False, None, "text"),
            ]
            sample = s.get(MonitorSample, 1)
            assert sample.probs == {"Pneumothorax": 0.9321} and sample.meta["sex"] == "F"
            assert s.get(DicomInstance, 1).series_description == SERIES
            assert s.get(SiteSet, 1).studies[0]["labels"] == {"Pneumothorax": True}
            assert s.get(Validation, 1).metrics["monitor_reference"][0]["probs"]
        db.dispose()
        migrate(command.downgrade, "0018")  # and back in clear
        with engine.connect() as conn:
            for table, column, shown in OLD_COLUMNS:
                (value,) = conn.execute(text(f"SELECT {column} FROM {table} ORDER BY id")).first()
                assert shown in _cell(value), (table, column)
            rows = conn.execute(
                text("SELECT label, present, ai_positive, source FROM study_labels ORDER BY id")
            ).all()
            assert [tuple(r) for r in rows] == [
                ("Pneumothorax", True, False, "added"),
                ("No Finding", False, None, "text"),
            ]
            (findings,) = conn.execute(text("SELECT findings FROM report_versions")).first()
            assert (json.loads(findings) if isinstance(findings, str) else findings) == FINDINGS
        engine.dispose()
