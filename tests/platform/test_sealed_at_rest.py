"""Every free text that can hold patient data is sealed at rest: a clinical question, a report's
sections (the AI draft and the radiologist's edit), a triage result's red-flag evidence, a
patient reference. A scan of every row of every table finds none of it in clear; the views read
it back; a key rotation covers it (the old key removed, everything still reads); the migration
seals what an older version kept in clear, and the upgrade keeps a patient found by its
reference."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import inspect, text

from helpers.platform import bearer, clinic, png_bytes, use_keys, wait_status

QUESTION = "Ayşe Yılmaz 05321234567 öksürük"
REF = "PREF-778899"
COMPLAINT = "Kızım nefes alamıyor, dudakları morardı"
EDIT = "Karaca Hanım kötüyüm dedi; akciğerler temiz."
MARKERS = ("Yılmaz", "05321234567", REF, "Kızım", "nefes alamıyor", "Karaca", "kötüyüm")


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
def site(request, tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    with clinic(
        request.param,
        tmp_path_factory.mktemp(f"sealed-{request.param}"),
        tfidf_model_dir,
        tiny_imaging_dir,
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
        yield app, client, sid


def test_nothing_a_patient_or_clinician_wrote_is_in_clear_in_the_database(site):
    app, client, sid = site
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


def test_key_rotation_covers_every_sealed_text(site, monkeypatch):
    from medai.platform.rotation import rotate_all
    from medai.settings import get_settings

    app, client, sid = site
    old = (get_settings().home / "secret.key").read_text().strip()
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
    finally:  # back under the home's own key, for whatever runs after
        use_keys(monkeypatch, old, new)
        with app.state.platform.db.session() as db:
            rotate_all(db)
        use_keys(monkeypatch)


def test_the_upgrade_seals_what_an_older_version_kept_in_clear(tmp_path, monkeypatch):
    from alembic import command
    from sqlalchemy import create_engine

    from helpers.platform import migrator, use_home
    from medai.platform.crypto import cipher
    from medai.platform.db import Database

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
        from medai.platform import studies
        from medai.platform.tables import Study, TriageRecord

        assert studies.patient_for(s, REF).id == 1  # found by its keyed hash
        assert s.get(Study, 1).clinical_question == QUESTION
        assert s.get(TriageRecord, 1).result["red_flags"][0]["evidence"] == COMPLAINT
    db.dispose()
    migrate(command.downgrade, "0015")  # and back in clear
    with engine.begin() as conn:
        assert conn.execute(text("SELECT ref FROM patients")).scalar() == REF
        assert conn.execute(text("SELECT clinical_question FROM studies")).scalar() == QUESTION
    engine.dispose()
