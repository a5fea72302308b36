"""What a report says about how its text was made — the API's ``ai_disclosure``, the signed
report DICOM SR's comment, the FHIR DiagnosticReport's text and the PDF carry one sentence — says
what happened, in the report's language: edited when the signed text differs from the AI draft,
reviewed and signed without changes when it does not, an amendment as one; an unsigned draft
claims no signature. SQLite; the PACS is down, so each SR is built from its outbox row and read
here, never sent."""

from __future__ import annotations

import base64
import io

import pytest
from sqlalchemy import select

from helpers.dicom import make_dicom
from helpers.platform import bearer, clinic, decided, refusing_port, wait_status

CLAIMS = ("imzalanmıştır", "signed by", "signed on")


@pytest.fixture(scope="module")
def hosp(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    home = tmp_path_factory.mktemp("disclosure")
    with pytest.MonkeyPatch.context() as mp, refusing_port() as pacs_port:
        mp.setenv("MEDAI_DICOM_SEND_TO", f"PACS@127.0.0.1:{pacs_port}")
        mp.setenv("MEDAI_INSTITUTION_NAME", "Ankara Test Hastanesi")
        with clinic("sqlite", home, tfidf_model_dir, tiny_imaging_dir, outbox_threads=0) as (
            app,
            client,
        ):
            yield app, client, home


def dicom_study(client, home, seed: int, lang: str) -> int:
    path = make_dicom(
        home / f"cr{seed}.dcm", "CR", seed=seed, rows=96, cols=80, accession=f"ACC-D{seed}"
    )
    rad = bearer(client, "rad1")
    r = client.post(
        "/api/v1/studies",
        headers=rad,
        data={"task": "cxr", "lang": lang},
        files={"file": ("cr.dcm", path.read_bytes(), "application/dicom")},
    )
    assert r.status_code == 201, r.text
    return wait_status(client, rad, r.json()["id"], {"ai_drafted"})["id"]


def sr_comment(app, sid: int, version: int) -> str:
    """The Comment of the report SR the outbox holds for signed ``version`` (built as the
    delivery loop builds it)."""
    from medai.platform.delivery import payloads
    from medai.platform.records.tables import OutboxItem

    p = app.state.platform
    with p.db.reader() as db:
        item = db.scalar(
            select(OutboxItem).where(
                OutboxItem.study_id == sid,
                OutboxItem.event == "signed",
                OutboxItem.report_version == version,
                OutboxItem.destination == "dicom",
            )
        )
        assert item is not None, "no SR queued for the signed version"
        (sr,) = payloads.dicom_objects(p, item, payloads.gather(p, item))
    (comment,) = [
        i.TextValue
        for i in sr.ContentSequence
        if i.ValueType == "TEXT" and i.ConceptNameCodeSequence[0].CodeMeaning == "Comment"
    ]
    return comment


def fhir_text(client, sid: int) -> str:
    r = client.get(f"/api/v1/studies/{sid}/report/fhir", headers=bearer(client, "rad1"))
    assert r.status_code == 200, r.text
    dr = next(
        e["resource"]
        for e in r.json()["entry"]
        if e["resource"]["resourceType"] == "DiagnosticReport"
    )
    return base64.b64decode(dr["presentedForm"][0]["data"]).decode()


def pdf_text(client, sid: int) -> str:
    from pypdf import PdfReader

    r = client.get(f"/api/v1/studies/{sid}/report/pdf", headers=bearer(client, "rad1"))
    assert r.status_code == 200
    return " ".join(
        " ".join((page.extract_text() or "").split())
        for page in PdfReader(io.BytesIO(r.content)).pages
    )


def sign(client, sid: int, version: int, sections: dict | None = None) -> dict:
    rad = bearer(client, "rad1")
    body = {"version": version, **({"sections": sections} if sections else {})}
    body["labels"] = decided(client, rad, sid)
    r = client.post(f"/api/v1/studies/{sid}/report/sign", headers=rad, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_turkish_report_says_in_turkish_whether_the_ai_draft_was_edited(hosp):
    app, client, home = hosp
    sid = dicom_study(client, home, seed=21, lang="tr")
    draft = client.get(f"/api/v1/studies/{sid}/report", headers=bearer(client, "rad1")).json()
    assert not any(c in draft["ai_disclosure"] for c in CLAIMS)  # not signed yet: no claim
    assert "incelenip onaylanmamıştır" in draft["ai_disclosure"]

    signed = sign(client, sid, draft["version"])  # the AI draft, signed as it is
    said = signed["ai_disclosure"]
    assert signed["ai_edited"] is False
    assert "rad1 tarafından incelenmiş" in said and "değiştirilmeden imzalanmıştır" in said
    assert signed["signed_at_local"] in said and "tanı değil" in said
    assert "düzenlenmiş" not in said and "edited" not in said and "Drafted" not in said
    assert sr_comment(app, sid, signed["version"]) == said  # the PACS reads the same
    assert said in fhir_text(client, sid) and said in pdf_text(client, sid)

    amended = sign(
        client,
        sid,
        signed["version"],
        {**signed["sections"], "impression": "Düzeltme: sağ alt zonda konsolidasyon."},
    )
    said = amended["ai_disclosure"]
    assert amended["ai_edited"] is True and amended["status"] == "amended"
    assert said.startswith("Düzeltilmiş rapor") and "incelenip düzenlenmiş" in said
    assert "değiştirilmeden" not in said and "edited" not in said
    assert sr_comment(app, sid, amended["version"]) == said
    assert said in fhir_text(client, sid) and said in pdf_text(client, sid)


def test_an_english_report_says_edited_only_when_the_text_was(hosp):
    app, client, home = hosp
    kept = dicom_study(client, home, seed=22, lang="en")
    signed = sign(client, kept, 1)
    said = signed["ai_disclosure"]
    assert "reviewed and signed without changes by rad1" in said and "edited" not in said
    assert sr_comment(app, kept, signed["version"]) == said

    changed = dicom_study(client, home, seed=23, lang="en")
    ai = client.get(f"/api/v1/studies/{changed}/report", headers=bearer(client, "rad1")).json()
    signed = sign(
        client, changed, 1, {**ai["sections"], "impression": "Right lower zone consolidation."}
    )
    said = signed["ai_disclosure"]
    assert "reviewed, edited and signed by rad1" in said and "without changes" not in said
    assert sr_comment(app, changed, signed["version"]) == said
    assert said in fhir_text(client, changed)
