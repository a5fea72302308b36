"""The patient's context on a study (issue 59, item 4), through the real API and worker with
tiny models whose every answer is fixed:

- sex, birth date and the age at the study date from the DICOM header (PatientSex,
  PatientBirthDate, StudyDate), or from the upload form for a PNG (checked and bounded); the
  birth date sealed at rest;
- the signed PDF prints the clinical question and the patient line (read back by pdftotext);
- prior studies of the same patient are found by the keyed PatientID hash only: another patient
  with the same name and birth date is not a prior; each prior listed with its date and its
  signed impression ("unsigned" otherwise), newest first, and audited as a view of that study;
- the AI draft compares today's findings with the latest *signed* prior of the same task
  ("Önceki tetkik (05.01.2024) ile karşılaştırıldı …: yeni … iki tetkikte de var (boyut
  karşılaştırması için ölçüm yok) … düzelen …") and
  still names its model; no prior, no sentence;
- migration 0026 fills the hash, birth date and age of studies filed before it, and goes back.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from sqlalchemy import text

from helpers.builders import answering_model
from helpers.dicom import NAME, make_dicom
from helpers.platform import (
    bearer,
    clinic,
    database_url,
    migrator,
    png_bytes,
    use_home,
    wait_status,
)

PID = "TC-11122233344"
OTHER_PID = "TC-99988877766"  # another patient of the same name and birth date
BORN = "19710312"
CXR = {"Pneumothorax": 0.9, "Cardiomegaly": 0.85, "Effusion": 0.1, "No Finding": 0.05}
CXR_POLICY = {
    "thresholds": {"Pneumothorax": 0.5, "Cardiomegaly": 0.5, "Effusion": 0.5, "No Finding": 0.5}
}
MRI = {"Glioma": 0.8, "Meningioma": 0.1, "Pituitary": 0.05, "No_Tumor": 0.05}
QUESTION = "Nefes darlığı, sağ yan ağrısı; pnömotoraks?"


@pytest.fixture(scope="module")
def env(tmp_path_factory, tfidf_model_dir):
    home = tmp_path_factory.mktemp("patient-context")
    cxr = answering_model(home / "cxr-model", "cxr", CXR, CXR_POLICY)
    mri = answering_model(home / "mri-model", "mri", MRI, {"min_confidence": 0.5})
    with clinic("sqlite", home, tfidf_model_dir, cxr, models={"mri": str(mri)}) as (app, client):
        files = home / "files"
        files.mkdir()
        yield app, client, files


def upload(client, headers, path, task="cxr", **form):
    return client.post(
        "/api/v1/studies",
        headers=headers,
        files={"file": (path.name, path.read_bytes(), "application/dicom")},
        data={"task": task, **form},
    )


def dicom_study(client, rad, files, name, *, pid=PID, day="20251120", task="cxr", **form):
    extra = {"PatientSex": "F", "PatientBirthDate": BORN, "StudyDate": day}
    if task == "mri":
        path = make_dicom(
            files / f"{name}.dcm",
            "MR",
            body_part="BRAIN",
            view=None,
            patient_id=pid,
            accession=name[:16],
            **extra,
        )
    else:
        path = make_dicom(files / f"{name}.dcm", patient_id=pid, accession=name[:16], **extra)
    r = upload(client, rad, path, task=task, **form)
    assert r.status_code == 201, r.text
    return wait_status(client, rad, r.json()["id"], {"ai_drafted"})


def sign(client, rad, sid, labels=None):
    body = {"version": 1, **({"labels": labels} if labels is not None else {})}
    r = client.post(f"/api/v1/studies/{sid}/report/sign", headers=rad, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_dicom_header_gives_sex_birth_date_and_the_age_at_the_study_date(env):
    app, client, files = env
    rad = bearer(client, "rad1")
    study = dicom_study(client, rad, files, "CTX-DICOM", pid="TC-CTX-1")
    got = client.get(f"/api/v1/studies/{study['id']}", headers=rad).json()
    assert got["patient"] == {
        "sex": "F",
        "birth_date": "1971-03-12",
        "age_years": 54,  # on 20.11.2025, after the birthday
        "age_months": None,
        "on": "2025-11-20",
    }
    with app.state.platform.db.engine.connect() as conn:  # identifying: sealed at rest
        raw = conn.execute(
            text(
                "SELECT patient_birth_date, patient_sex, patient_age, patient_hash "
                "FROM studies WHERE id = :i"
            ),
            {"i": study["id"]},
        ).one()
    assert raw[0] and BORN not in raw[0] and "1971" not in raw[0]
    assert raw[1:3] == ("F", 54) and len(raw[3]) == 32 and "CTX" not in raw[3]
    # the FHIR Patient carries them too (beside the identifier a receiver matches on)
    bundle = client.get(f"/api/v1/studies/{study['id']}/report/fhir", headers=rad)
    assert bundle.status_code == 200, bundle.text
    (patient,) = [
        e["resource"] for e in bundle.json()["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    assert (patient["gender"], patient["birthDate"]) == ("female", "1971-03-12")


def test_a_png_takes_sex_and_birth_date_from_the_form_checked(env):
    _app, client, _files = env
    rad = bearer(client, "rad1")

    def post(**form):
        return client.post(
            "/api/v1/studies",
            headers=rad,
            files={"file": ("x.png", png_bytes(7), "image/png")},
            data={"task": "cxr", **form},
        )

    from datetime import date

    today = date.today()
    r = post(patient_sex="M", patient_birth_date="2025-01-15", patient_ref="P-CTX-PNG")
    assert r.status_code == 201, r.text
    p = r.json()["patient"]
    months = (today.year - 2025) * 12 + today.month - 1 - (today.day < 15)
    assert p["sex"] == "M" and p["birth_date"] == "2025-01-15"
    assert p["age_years"] == months // 12 and p["age_months"] == months  # an infant: months
    assert post(patient_sex="unknown").json()["patient"] is None
    for bad in (
        {"patient_sex": "X"},
        {"patient_sex": ""},
        {"patient_birth_date": "2021-02-30"},
        {"patient_birth_date": f"{today.year + 1}-01-01"},
        {"patient_birth_date": "1850-01-01"},
        {"patient_birth_date": "12.03.1971"},
    ):
        r = post(**bad)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["code"] in ("invalid", "validation_error"), r.text


def test_the_signed_pdf_prints_the_question_and_the_patient(env):
    if shutil.which("pdftotext") is None:
        pytest.skip("poppler-utils' pdftotext is not installed")
    _app, client, files = env
    rad = bearer(client, "rad1")
    study = dicom_study(client, rad, files, "CTX-PDF", pid="TC-CTX-PDF", clinical_question=QUESTION)
    sign(client, rad, study["id"])
    pdf = client.get(f"/api/v1/studies/{study['id']}/report/pdf", headers=rad)
    assert pdf.status_code == 200
    words = subprocess.run(
        ["pdftotext", "-layout", "-", "-"], input=pdf.content, capture_output=True, check=True
    ).stdout.decode()
    flat = " ".join(words.split())
    assert "Klinik soru" in flat and "Nefes darlığı, sağ yan ağrısı; pnömotoraks?" in flat
    assert "Kadın, 54 yaş" in flat and "doğum 12.03.1971" in flat


def test_priors_are_the_same_patients_by_keyed_id_and_the_draft_compares_the_latest_signed(env):
    app, client, files = env
    rad = bearer(client, "rad1")
    older = dicom_study(client, rad, files, "PRI-2023", day="20230601")
    # the AI's findings rejected: a normal film (every label absent is refused, issue 67)
    sign(
        client, rad, older["id"], {"Pneumothorax": False, "Cardiomegaly": False, "No Finding": True}
    )
    prior = dicom_study(client, rad, files, "PRI-2024", day="20240105")
    # the signer: pneumothorax yes, cardiomegaly no (the AI's rejected), effusion yes (added)
    sign(client, rad, prior["id"], {"Pneumothorax": True, "Cardiomegaly": False, "Effusion": True})
    # the same name and birth date, another PatientID: another patient, never a prior
    stranger = dicom_study(client, rad, files, "PRI-OTHER", pid=OTHER_PID, day="20250101")
    sign(client, rad, stranger["id"], {"Effusion": True})
    unsigned = dicom_study(client, rad, files, "PRI-UNSIGNED", day="20250301")
    brain = dicom_study(client, rad, files, "PRI-MRI", day="20250601", task="mri")
    sign(client, rad, brain["id"])
    today = dicom_study(client, rad, files, "PRI-TODAY", day="20251120")

    got = client.get(f"/api/v1/studies/{today['id']}", headers=rad).json()
    listed = got["priors"]
    assert [p["id"] for p in listed] == [brain["id"], unsigned["id"], prior["id"], older["id"]]
    assert stranger["id"] not in [p["id"] for p in listed]
    by_id = {p["id"]: p for p in listed}
    assert by_id[prior["id"]]["study_date"] == "2024-01-05" and by_id[prior["id"]]["signed"]
    signed_impression = client.get(f"/api/v1/studies/{prior['id']}/report", headers=rad).json()
    assert by_id[prior["id"]]["impression"] == signed_impression["sections"]["impression"]
    assert by_id[unsigned["id"]]["signed"] is False
    assert by_id[unsigned["id"]]["impression"] is None  # an unsigned draft is no one's word
    # the stranger's own list has none of this patient's studies
    theirs = client.get(f"/api/v1/studies/{stranger['id']}", headers=rad).json()["priors"]
    assert theirs == []

    # each prior listed is audited as a view of that study
    with app.state.platform.db.engine.connect() as conn:
        viewed = conn.execute(
            text(
                "SELECT target_id, detail FROM audit_events WHERE action = 'view' "
                "AND target_type = 'study'"
            )
        ).all()
    import json

    as_prior = {
        t
        for t, d in viewed
        if (json.loads(d) if isinstance(d, str) else d or {}).get("prior_of") == today["id"]
    }
    assert as_prior == {str(p["id"]) for p in listed}

    # the draft: the latest signed chest prior (not the unsigned one, not the MRI)
    report = client.get(f"/api/v1/studies/{today['id']}/report", headers=rad).json()
    findings = report["sections"]["findings"]
    assert "Önceki tetkik (05.01.2024) ile karşılaştırıldı (YZ önerisi): " in findings
    assert "yeni: kardiyomegali" in findings
    # present on both: never "unchanged" (labels do not compare sizes), and says why
    assert "iki tetkikte de var (boyut karşılaştırması için ölçüm yok): pnömotoraks" in findings
    assert "değişmeyen" not in findings
    assert "düzelen: plevral efüzyon" in findings
    assert "01.06.2025" not in findings and "01.03.2025" not in findings
    ai = got["ai_result"]["model"]
    assert ai["name"] and ai["content_hash"]  # the draft's findings still name their model
    # a study without a signed prior of its task: no comparison sentence
    first = client.get(f"/api/v1/studies/{older['id']}/report", headers=rad).json()
    assert "Önceki tetkik" not in first["sections"]["findings"]
    brain_report = client.get(f"/api/v1/studies/{brain['id']}/report", headers=rad).json()
    assert "Önceki tetkik" not in brain_report["sections"]["findings"]


def test_a_finding_on_the_signed_prior_is_known_and_ranks_below_a_new_one_and_a_red_flag(env):
    """Issue 69: row 1 of the reading day was a glioma already reported on a signed prior; it
    ranked above a new acute chest pain asking "pnömotoraks?". The AI's pneumothorax of a
    patient whose signed prior holds it is known ("bilinen") and ranks below a new
    pneumothorax and a red flag; one whose prior's signer decided it absent is new. The
    default worklist (signed=false) shows no signed study, the signed filter only those."""
    _app, client, files = env
    rad = bearer(client, "rad1")
    known_pid, new_pid = "TC-KNOWN-0001", "TC-NEW-0002"
    prior = dicom_study(client, rad, files, "KNOWN-PRIOR", pid=known_pid, day="20251001")
    sign(client, rad, prior["id"], {"Pneumothorax": True, "Cardiomegaly": True})
    cleared = dicom_study(client, rad, files, "NEW-PRIOR", pid=new_pid, day="20251001")
    sign(client, rad, cleared["id"], {"Pneumothorax": False, "Cardiomegaly": True})
    known = dicom_study(client, rad, files, "KNOWN-TODAY", pid=known_pid, day="20251120")
    new = dicom_study(client, rad, files, "NEW-TODAY", pid=new_pid, day="20251120")
    flag = dicom_study(
        client,
        rad,
        files,
        "FLAG-TODAY",
        pid="TC-FLAG-0003",
        day="20251120",
        clinical_question="Hasta aniden konuşamıyor, yüzünün bir tarafı kaydı",
    )
    answer = client.get("/api/v1/studies?signed=false&limit=500", headers=rad)
    assert answer.status_code == 200, answer.text
    rows = answer.json()["items"]
    assert all(r["status"] not in ("final", "amended") for r in rows)
    order = [r["id"] for r in rows]
    by_id = {r["id"]: r for r in rows}
    assert by_id[new["id"]]["reading"]["rank"] == "ai_urgent"
    assert by_id[new["id"]]["reading"]["known"] == []
    assert by_id[known["id"]]["reading"]["rank"] == "rest"
    assert by_id[known["id"]]["reading"]["known"] == ["Pneumothorax"]
    assert by_id[flag["id"]]["reading"]["rank"] in ("ai_urgent", "red_flag")
    assert order.index(new["id"]) < order.index(known["id"])
    assert order.index(flag["id"]) < order.index(known["id"])
    assert prior["id"] not in order and cleared["id"] not in order
    signed = client.get("/api/v1/studies?signed=true&limit=500", headers=rad).json()["items"]
    assert {prior["id"], cleared["id"]} <= {r["id"] for r in signed}
    assert all(r["status"] in ("final", "amended") for r in signed)
    # the study page says why: known, with the label, beside the AI's urgency reasons
    page = client.get(f"/api/v1/studies/{known['id']}", headers=rad).json()
    said = [(r["code"], r["label"]) for r in page["urgent_because"]]
    assert ("ai_known_finding", "Pneumothorax") in said


def test_what_is_known_follows_the_prior_signed_amended_or_retracted_after_todays_draft(env):
    """Known is the prior's signature as it stands, not as it stood when today's study was
    drafted: the prior signed after today's draft makes today's pneumothorax known; the prior
    amended to record it absent makes it new again; the prior retracted leaves nothing known
    (``reading_order.refresh_patient``, called by the sign-off and the retraction use cases)."""
    _app, client, files = env
    rad = bearer(client, "rad1")
    pid = "TC-LATER-0004"
    prior = dicom_study(client, rad, files, "LATER-PRIOR", pid=pid, day="20251001")
    today = dicom_study(client, rad, files, "LATER-TODAY", pid=pid, day="20251120")

    def reading() -> dict:
        rows = client.get("/api/v1/studies?signed=false&limit=500", headers=rad).json()["items"]
        (row,) = [r for r in rows if r["id"] == today["id"]]
        return {"rank": row["reading"]["rank"], "known": row["reading"]["known"]}

    assert reading() == {"rank": "ai_urgent", "known": []}  # the prior is not signed yet
    signed = sign(client, rad, prior["id"], {"Pneumothorax": True, "Cardiomegaly": True})
    assert reading() == {"rank": "rest", "known": ["Pneumothorax"]}
    # the prior amended: its signer now records the pneumothorax absent
    r = client.post(
        f"/api/v1/studies/{prior['id']}/report/sign",
        headers=rad,
        json={
            "version": signed["version"],
            "sections": {**signed["sections"], "impression": "Pnömotoraks yok."},
            "labels": {"Pneumothorax": False, "Cardiomegaly": True},
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "amended"
    assert reading() == {"rank": "ai_urgent", "known": []}
    # signed again with it present, then retracted as entered in error: nothing known
    again = r.json()
    r = client.post(
        f"/api/v1/studies/{prior['id']}/report/sign",
        headers=rad,
        json={
            "version": again["version"],
            "sections": {**again["sections"], "impression": "Sağ pnömotoraks."},
            "labels": {"Pneumothorax": True, "Cardiomegaly": True},
        },
    )
    assert r.status_code == 200, r.text
    assert reading() == {"rank": "rest", "known": ["Pneumothorax"]}
    r = client.post(
        f"/api/v1/studies/{prior['id']}/retract",
        headers=rad,
        json={"reason": "wrong_patient", "note": "başka hastanın tetkiki"},
    )
    assert r.status_code == 200, r.text
    assert reading() == {"rank": "ai_urgent", "known": []}


def test_the_comparison_sentence_is_not_read_as_findings():
    from medai.reporting.findings import denied_labels, stated_labels, states_normal

    said = (
        "Önceki tetkik (05.01.2024) ile karşılaştırıldı (YZ önerisi): yeni: kardiyomegali — "
        "düzelen: plevral efüzyon. Kardiyomegali izlenmektedir."
    )
    assert stated_labels(said) == {"Cardiomegaly"}  # never the resolved effusion
    assert "Effusion" not in denied_labels(said)
    assert not states_normal(
        "Önceki tetkik (05.01.2024) ile karşılaştırıldı (YZ önerisi): yeni, süregelen ya da "
        "düzelen bulgu yok."
    )
    assert (
        stated_labels(
            "Compared with the prior study of 2024-01-05 (AI suggestion): resolved: pleural effusion."
        )
        == set()
    )


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_migration_fills_studies_filed_before_it(kind, tmp_path):
    import json

    from alembic import command

    from medai.platform.records.crypto import cipher
    from medai.platform.records.db import make_engine
    from medai.platform.worklist.patient_context import patient_hash

    use_home(tmp_path)
    with database_url(kind, tmp_path) as url:
        engine = make_engine(url)
        migrate = migrator(engine)
        migrate(command.upgrade, "0025")
        c = cipher()
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (id, username, password_hash, role, active, created_at) "
                    "VALUES (1, 'u', '', 'radiologist', true, CURRENT_TIMESTAMP)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO studies (id, task, modality, file_sha256, file_size, "
                    "content_type, language, status, urgent, uploaded_by, created_at, "
                    "updated_at, patient_key, patient_name, patient_identity, study_date, "
                    "source) VALUES (1, 'cxr', 'CR', :sha, 1, 'application/dicom', 'tr', "
                    "'ai_drafted', false, 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, :key, "
                    ":name, :ident, '20251120', 'dicom')"
                ),
                {
                    "sha": "0" * 64,
                    "key": c.encrypt(PID),
                    "name": c.encrypt(NAME),
                    "ident": c.encrypt(
                        json.dumps({"patient_id": PID, "issuer": "HOSP", "birth_date": BORN})
                    ),
                },
            )
        migrate(command.upgrade, "0026")
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT patient_hash, patient_birth_date, patient_age, patient_sex FROM studies"
                )
            ).one()
        assert row[0] == patient_hash(PID, "HOSP") != patient_hash(PID, "")
        assert c.decrypt(row[1].encode()) == BORN and row[2] == 54 and row[3] is None
        migrate(command.downgrade, "0025")
        with engine.connect() as conn:
            cols = (
                [r[1] for r in conn.execute(text("PRAGMA table_info(studies)"))]
                if (kind == "sqlite")
                else [
                    r[0]
                    for r in conn.execute(
                        text(
                            "SELECT column_name FROM information_schema.columns WHERE table_name='studies'"
                        )
                    )
                ]
            )
        assert "patient_hash" not in cols and "patient_birth_date" not in cols
        migrate(command.upgrade, "head")
        engine.dispose()
