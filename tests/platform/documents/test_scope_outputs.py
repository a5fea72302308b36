"""The model's scope in every output, in the report's language: what the AI model looks for, what
it does not assess (one words table), and a film flagged out of its scope said plainly beside
its findings — in the PDF (read back as text) and FHIR (the AI Observations' notes and the
DiagnosticReport's text, validated by fhir.resources), through the API of a real platform whose
chest model has a fitted scope, in Turkish and English; a lateral film is refused, never read."""

from __future__ import annotations

import base64
import io

import pytest

from helpers.platform import bearer, clinic, wait_status
from helpers.scope import frontal_film, lateral_film, png, scoped_model

WORDS = {
    "tr": {
        "title": "YZ modelinin kapsamı (yapay zekâ önerisi)",
        "detects": "YZ modelinin aradığı bulgular: pnömoni ve COVID-19.",
        "cannot": "Tüberküloz, akciğer nodülü veya kitlesi, pnömotoraks",
        "flag": "Kapsam dışı (YZ): bu görüntü modelin eğitildiği görüntülere benzemiyor",
        "lateral": "lateral grafi",
    },
    "en": {
        "title": "Scope of the AI model (AI suggestion)",
        "detects": "The AI model looks for: pneumonia and COVID-19.",
        "cannot": "The AI model does not assess tuberculosis, lung nodules or masses, pneumothorax",
        "flag": "Out of scope (AI): this image does not look like the images the model was trained",
        "lateral": "lateral film",
    },
}


@pytest.fixture(scope="module")
def hosp(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    home = tmp_path_factory.mktemp("scope-outputs")
    model = scoped_model(tiny_imaging_dir, home / "cxr-scoped", flag_all=True)
    with clinic("sqlite", home, tfidf_model_dir, model, outbox_threads=0) as (app, client):
        yield app, client


def upload(client, data: bytes, lang: str, ref: str) -> dict:
    rad = bearer(client, "rad1")
    r = client.post(
        "/api/v1/studies",
        headers=rad,
        data={"task": "cxr", "lang": lang, "patient_ref": ref},
        files={"file": (f"{ref}.png", data, "image/png")},
    )
    assert r.status_code == 201, r.text
    return wait_status(client, rad, r.json()["id"], {"ai_drafted", "refused"})


def pdf_text(client, sid: int) -> str:
    from pypdf import PdfReader

    r = client.get(f"/api/v1/studies/{sid}/report/pdf", headers=bearer(client, "rad1"))
    assert r.status_code == 200, r.text
    pages = PdfReader(io.BytesIO(r.content)).pages
    return " ".join(" ".join((p.extract_text() or "").split()) for p in pages)


def fhir(client, sid: int) -> dict:
    r = client.get(f"/api/v1/studies/{sid}/report/fhir", headers=bearer(client, "rad1"))
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_a_flagged_film_shows_its_scope_in_the_pdf_fhir_and_the_study(hosp, lang):
    _app, client = hosp
    study = upload(client, png(frontal_film(40)), lang, f"P-SCOPE-{lang}")
    assert study["status"] == "ai_drafted"
    scope = client.get(f"/api/v1/studies/{study['id']}", headers=bearer(client, "rad1")).json()[
        "ai_result"
    ]["scope"]
    assert scope["detects"] == ["Pneumonia", "COVID-19"]
    assert scope["out_of_scope"]["flagged"] and scope["out_of_scope"]["reason"] == "unlike_training"
    w = WORDS[lang]
    text = pdf_text(client, study["id"])
    for key in ("title", "detects", "cannot", "flag"):
        assert w[key] in text, (key, text)
    # the flag is said above the findings table, the scope under it
    assert text.index(w["flag"]) < text.index(w["detects"])
    bundle = fhir(client, study["id"])  # validated as FHIR R4(B) by the export itself
    ai = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
        and e["resource"]["status"] == "preliminary"
    ]
    assert ai
    for obs in ai:
        notes = " ".join(n["text"] for n in obs["note"])
        assert w["detects"] in notes and w["cannot"] in notes and w["flag"] in notes
    dr = next(
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "DiagnosticReport"
    )
    report_text = base64.b64decode(dr["presentedForm"][0]["data"]).decode()
    assert w["cannot"] in report_text and w["flag"] in report_text
    heading = {"tr": "YZ MODELİNİN KAPSAMI (yapay zekâ önerisi)", "en": "SCOPE OF THE AI MODEL"}
    assert heading[lang] in report_text
    # the draft's AI note beside the editor opens with it (issue 69: never in the report's
    # text a radiologist signs), and the report's impression is left to the radiologist
    draft = client.get(
        f"/api/v1/studies/{study['id']}/report", headers=bearer(client, "rad1")
    ).json()
    assert draft["ai_note"][0].startswith(w["flag"])
    assert w["flag"] not in " ".join(draft["sections"].values())
    assert draft["sections"]["impression"] == ""
    # and the FHIR Device carries the note as the AI's disclosure
    device = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Device"
    )
    assert next(n["text"] for n in device["note"]).startswith(w["flag"])


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_a_lateral_png_is_refused_and_its_pdf_says_why(hosp, lang):
    _app, client = hosp
    study = upload(client, png(lateral_film(41)), lang, f"P-LAT-{lang}")
    assert study["status"] == "refused"
    res = client.get(f"/api/v1/studies/{study['id']}", headers=bearer(client, "rad1")).json()[
        "ai_result"
    ]
    assert res["reason_code"] == "lateral_view" and not res["findings"]
    assert res["scope"]["out_of_scope"]["reason"] == "lateral_view"
    # reported by hand; its PDF names the model's scope and why it read nothing
    rad = bearer(client, "rad1")
    sections = {
        "technique": "Lateral grafi.",
        "findings": "-",
        "impression": "-",
        "recommendation": "-",
    }
    r = client.put(
        f"/api/v1/studies/{study['id']}/report",
        headers=rad,
        json={"version": 0, "sections": sections},
    )
    assert r.status_code == 200, r.text
    text = pdf_text(client, study["id"])
    assert WORDS[lang]["title"] in text and WORDS[lang]["lateral"] in text.lower()


def test_a_report_without_an_ai_result_exports_without_a_scope():
    from medai.platform.documents.fhir.fhir_bundle import fhir_bundle, report_pdf

    study = {"id": 9, "task": "cxr", "language": "tr"}
    report = {
        "version": 1,
        "status": "preliminary",
        "sections": {"findings": "Elle yazıldı."},
        "findings": [],
        "created_at": "2026-11-23T11:01:00Z",
    }
    bundle = fhir_bundle(study, report, None, None, "2026-11-23T11:01:00Z", None)
    assert "KAPSAM" not in str(bundle)
    assert report_pdf(study, report, None, None, None, None)
