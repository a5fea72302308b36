"""The DICOM identity of a study, on SQLite and on the real PostgreSQL server: read from a
browser upload the same way as from the node, grouped by StudyInstanceUID (idempotent per
SOPInstanceUID), searchable by accession, carried into the FHIR bundle (Patient, ImagingStudy,
accession identifiers) and the PDF header, and the patient's name and ID never stored in
clear text."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import inspect, text

from helpers.dicom import NAME, PATIENT_ID, make_dicom
from helpers.platform import bearer, clinic, decided, wait_status

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="module", params=BACKENDS)
def env(request, tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    home = tmp_path_factory.mktemp(f"identity-{request.param}")
    with clinic(request.param, home, tfidf_model_dir, tiny_imaging_dir) as (app, client):
        files = home / "files"
        files.mkdir()
        yield app, client, home, files


def upload(client, headers, path, **form):
    return client.post(
        "/api/v1/studies",
        headers=headers,
        files={"file": (path.name, path.read_bytes(), "application/dicom")},
        data={"task": "cxr", **form},
    )


def test_a_dicom_upload_keeps_its_identity_and_joins_its_study(env):
    from pydicom.uid import generate_uid

    _app, client, _home, files = env
    rad = bearer(client, "rad1")
    study = generate_uid()
    first = make_dicom(files / "a.dcm", study=study, accession="UP-0001")
    r = upload(client, rad, first)
    assert r.status_code == 201, r.text
    out = r.json()
    d = out["dicom"]
    assert (d["patient_name"], d["patient_id"], d["accession"], d["study_uid"]) == (
        NAME,
        PATIENT_ID,
        "UP-0001",
        study,
    )
    assert (d["modality"], d["view_position"], d["body_part"], d["source"]) == (
        "CR",
        "PA",
        "CHEST",
        "upload",
    )
    again = upload(client, rad, first)  # the same instance: stored once, the same study
    assert again.status_code == 200 and again.json()["id"] == out["id"]
    second = make_dicom(files / "b.dcm", study=study, accession="UP-0001", view="LL", seed=2)
    joined = upload(client, rad, second)
    assert joined.status_code == 200 and joined.json()["id"] == out["id"]
    assert joined.json()["dicom"]["instances"] == 2
    assert len(joined.json()["dicom"]["series"]) == 2
    wait_status(client, rad, out["id"], {"ai_drafted"})


def test_a_dicom_without_its_uids_is_its_own_study_and_a_png_has_no_identity(env):
    _app, client, _home, files = env
    rad = bearer(client, "rad1")
    path = make_dicom(files / "no-uid.dcm", accession="UP-NOUID", drop=("StudyInstanceUID",))
    a, b = upload(client, rad, path).json(), upload(client, rad, path).json()
    assert a["id"] != b["id"]  # nothing to group by
    assert a["dicom"]["study_uid"] is None and a["dicom"]["accession"] == "UP-NOUID"
    from helpers.platform import png_bytes

    png = client.post(
        "/api/v1/studies",
        headers=rad,
        data={"task": "cxr"},
        files={"file": ("x.png", png_bytes(3), "image/png")},
    ).json()
    assert png["dicom"] is None


def test_the_worklist_finds_an_accession_and_only_it(env):
    _app, client, _home, files = env
    rad = bearer(client, "rad1")
    upload(client, rad, make_dicom(files / "w1.dcm", accession="W%_1"))
    upload(client, rad, make_dicom(files / "w2.dcm", accession="WX-2"))
    got = client.get("/api/v1/studies", headers=rad, params={"accession": "W%_"}).json()
    assert [s["dicom"]["accession"] for s in got["items"]] == ["W%_1"]  # % and _ are literal
    assert (
        client.get("/api/v1/studies", headers=rad, params={"accession": "%"}).json()["total"] == 0
    )
    assert (
        client.get("/api/v1/studies", headers=rad, params={"accession": "X" * 17}).status_code
        == 422
    )


def _drafted_and_signed(client, rad, files, accession: str) -> int:
    sid = upload(client, rad, make_dicom(files / f"{accession}.dcm", accession=accession)).json()[
        "id"
    ]
    wait_status(client, rad, sid, {"ai_drafted"})
    body = {"version": 1, "labels": decided(client, rad, sid)}
    r = client.post(f"/api/v1/studies/{sid}/report/sign", headers=rad, json=body)
    assert r.status_code == 200, r.text
    return sid


def test_the_identity_is_carried_into_fhir_and_the_pdf(env):
    _app, client, _home, files = env
    rad = bearer(client, "rad1")
    sid = _drafted_and_signed(client, rad, files, "OUT-0001")
    study = client.get(f"/api/v1/studies/{sid}", headers=rad).json()["dicom"]
    bundle = client.get(f"/api/v1/studies/{sid}/report/fhir", headers=rad).json()
    res = {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}
    patient, imaging, dr = res["Patient"], res["ImagingStudy"], res["DiagnosticReport"]
    assert {
        "system": "urn:medai:dicom-patient-id",
        "value": PATIENT_ID,
        "type": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]
        },
    } in patient["identifier"]
    assert patient["name"][0]["family"] == "YILMAZ"
    assert patient["name"][0]["given"] == ["AYSE", "NUR"]
    ids = {
        i.get("system") or i["type"]["coding"][0]["code"]: i["value"] for i in imaging["identifier"]
    }
    assert ids == {"urn:dicom:uid": f"urn:oid:{study['study_uid']}", "ACSN": "OUT-0001"}
    assert imaging["subject"] == {"reference": f"Patient/{patient['id']}"}
    assert imaging["started"] == "2025-11-20" and imaging["numberOfInstances"] == 1
    series = imaging["series"][0]
    assert series["uid"] == study["series_uid"] and series["modality"]["code"] == "CR"
    assert series["instance"][0]["uid"] == study["sop_uid"]
    assert dr["imagingStudy"] == [{"reference": f"ImagingStudy/{imaging['id']}"}]
    assert {
        "type": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]
        },
        "value": "OUT-0001",
    } in dr["identifier"]
    from pypdf import PdfReader

    pdf = client.get(f"/api/v1/studies/{sid}/report/pdf", headers=rad)
    assert pdf.status_code == 200
    words = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    for shown in ("YILMAZ, AYSE NUR", PATIENT_ID, "OUT-0001", "20.11.2025", "CR · PA · CHEST"):
        assert shown in words, shown


def test_the_patient_name_and_id_are_not_stored_in_clear_text(env):
    app, client, home, files = env
    rad = bearer(client, "rad1")
    upload(client, rad, make_dicom(files / "secret.dcm", accession="SECRET-1"))
    db = app.state.platform.db
    secrets = (NAME, "YILMAZ", PATIENT_ID)
    with db.engine.connect() as conn:  # every row of every table, as the database prints it
        for table in inspect(conn).get_table_names():
            quoted = conn.dialect.identifier_preparer.quote(table)
            sql = (
                f"SELECT {quoted}::text FROM {quoted}"
                if conn.dialect.name == "postgresql"
                else f"SELECT * FROM {quoted}"
            )
            for row in conn.execute(text(sql)):
                assert not any(s in repr(tuple(row)) for s in secrets), table
    if db.is_sqlite:  # and the file itself, with its write-ahead log
        raw = b"".join(p.read_bytes() for p in home.glob("medai.db*"))
        assert b"SECRET-1" in raw  # the accession is kept plainly (it is searched)
        assert not any(s.encode() in raw for s in secrets)
    stored = [p.read_bytes() for p in (home / "blobs").rglob("*") if p.is_file()]
    assert stored and not any(s.encode() in blob for blob in stored for s in secrets)
    assert not any(b"DICM" in blob for blob in stored)  # the files themselves are encrypted


def test_key_rotation_re_encrypts_the_patient_identity(env, monkeypatch):
    from cryptography.fernet import Fernet

    from medai.core.faults import StorageFault
    from medai.platform.ops.rotation import rotate_all
    from medai.platform.records.blobs import BlobStore
    from medai.platform.records.crypto import BlobCipher, cipher
    from medai.settings import get_settings

    app, client, home, files = env
    rad = bearer(client, "rad1")
    sid = upload(client, rad, make_dicom(files / "rot.dcm", accession="ROT-1")).json()["id"]
    # the analysis seals its result and draft under the key of the moment: let it finish
    # before the keys change under it (a real rotation restarts every process with the list)
    wait_status(client, rad, sid, {"ai_drafted"})
    old = (home / "secret.key").read_text().strip()
    new = Fernet.generate_key().decode()
    try:
        monkeypatch.setenv("MEDAI_SECRET_KEYS", json.dumps([new, old]))
        get_settings.cache_clear()
        cipher.cache_clear()
        with app.state.platform.db.session() as db:
            assert rotate_all(db) >= 1
        assert BlobStore(home / "blobs", BlobCipher([new, old])).rotate()["rotated"] >= 1
        monkeypatch.setenv("MEDAI_SECRET_KEYS", json.dumps([new]))  # the old key removed
        get_settings.cache_clear()
        cipher.cache_clear()
        d = client.get(f"/api/v1/studies/{sid}", headers=rad).json()["dicom"]
        assert (d["patient_name"], d["patient_id"]) == (NAME, PATIENT_ID)
        only_new = BlobStore(home / "blobs", BlobCipher([new]))
        sha = client.get(f"/api/v1/studies/{sid}", headers=rad).json()["file"]["sha256"]
        assert only_new.read(sha) == (files / "rot.dcm").read_bytes()
        with pytest.raises(StorageFault):  # the old key alone no longer opens it
            BlobStore(home / "blobs", BlobCipher([old])).read(sha)
        monkeypatch.setenv("MEDAI_SECRET_KEYS", json.dumps([Fernet.generate_key().decode()]))
        cipher.cache_clear()
        get_settings.cache_clear()
        # a key nobody has: never a 500. The study's AI result (sealed) cannot be opened: a
        # named 503; its worklist row still reads, the patient attributes empty
        lost = client.get(f"/api/v1/studies/{sid}", headers=rad)
        assert lost.status_code == 503 and lost.json()["code"] == "record_undecryptable"
        row = client.get("/api/v1/studies", headers=rad, params={"accession": "ROT-1"})
        assert row.status_code == 200
        assert row.json()["items"][0]["dicom"]["patient_name"] is None
        assert row.json()["items"][0]["dicom"]["accession"] == "ROT-1"
    finally:  # back under the home's own key, for whatever runs after
        monkeypatch.setenv("MEDAI_SECRET_KEYS", json.dumps([old, new]))
        get_settings.cache_clear()
        cipher.cache_clear()
        with app.state.platform.db.session() as db:
            rotate_all(db)
        BlobStore(home / "blobs", BlobCipher([old, new])).rotate()
        monkeypatch.delenv("MEDAI_SECRET_KEYS")
        get_settings.cache_clear()
        cipher.cache_clear()


def test_a_stored_file_altered_on_disk_is_a_named_503_never_altered_bytes(env, caplog):
    app, client, _home, files = env
    rad = bearer(client, "rad1")
    sid = upload(client, rad, make_dicom(files / "tamper.dcm", accession="TAMPER-1")).json()["id"]
    study = wait_status(client, rad, sid, {"ai_drafted"})
    assert client.get(f"/api/v1/studies/{sid}/image", headers=rad).status_code == 200
    shown = study["file"]["sha256"]
    with app.state.platform.db.reader() as db:
        from medai.platform.records.tables import Study

        shown = db.get(Study, sid).display_sha256 or shown
    path = app.state.platform.store.path(shown)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF  # one bit of the tag: the whole file is refused
    path.write_bytes(bytes(raw))
    r = client.get(f"/api/v1/studies/{sid}/image", headers=rad)
    assert r.status_code == 503 and r.json()["code"] == "storage_undecryptable", r.text
    assert "decrypted" in r.json()["detail"]
    assert any(
        "storage_undecryptable" in m or "cannot be decrypted" in m for m in caplog.messages
    ) and not any(NAME in m for m in caplog.messages)
