"""Reports that leave the system: the PDF says what state the report is in, on every page and in
the report's language, never leaks report text into the log; FHIR exports every state."""

from __future__ import annotations

import base64
import io
import logging
import re
import warnings
from datetime import datetime

import pytest
from fhir.resources.R4B.bundle import Bundle

from medai.platform.documents.fhir.fhir_bundle import fhir_bundle, report_pdf
from medai.platform.documents.words import report_words as rw
from medai.platform.records.localtime import format_local, local_times

FINDINGS = [
    {"label": "Cardiomegaly", "probability": 0.734, "threshold": 0.5, "positive": True},
    {"label": "Effusion", "probability": 0.12, "threshold": 0.4, "positive": False},
]
MODEL = {"name": "medai-cxr-test", "version": "1.0.0", "content_hash": "sha256:" + "ab" * 32}
TR = {
    "technique": "PA akciğer grafisi.",
    "findings": "Kalp gölgesi genişlemiş [1].",
    "impression": "Kardiyomegali ile uyumlu görünüm.",
    "recommendation": "Ekokardiyografi önerilir.",
}
EN = {
    "technique": "PA chest radiograph.",
    "findings": "The heart is enlarged [1].",
    "impression": "Cardiomegaly.",
    "recommendation": "Echocardiography.",
}
CITES = [
    {"n": 1, "title": "Cardiomegaly", "source": "medai knowledge base", "licence": "CC BY 4.0"}
]
SIGNED_AT = "2026-11-23T11:05:00Z"  # 14:05 in Istanbul


def study(lang: str = "tr", **kw) -> dict:
    return {
        "id": 7,
        "task": "cxr",
        "modality": "chest X-ray",
        "patient_ref": "P-1",
        "language": lang,
        **kw,
    }


def report(sections=None, **kw) -> dict:
    out = {
        "version": 1,
        "status": "preliminary",
        "sections": dict(sections or TR),
        "citations": CITES,
        "findings": FINDINGS,
        "signed_by": None,
        "signed_at": None,
        "created_at": "2026-11-23T11:01:00Z",
        "ai_assisted": True,
    }
    out.update(kw)
    return out


def signed(sections=None, **kw) -> dict:
    return report(
        sections,
        **{"version": 2, "status": "final", "signed_by": "dr.ayse", "signed_at": SIGNED_AT, **kw},
    )


def pages(pdf: bytes) -> list[str]:
    from pypdf import PdfReader

    return [" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(pdf)).pages]


def render(s: dict, r: dict, zone: str = "Europe/Istanbul") -> list[str]:
    return pages(report_pdf(s, r, MODEL, None, None, None, zone=zone))


CLAIMS = (
    "imzalanmıştır",
    "incelenip imzalan",
    "signed by the radiologist",
    "reviewed and signed",
    "reviewed, edited and signed",
)


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_an_unsigned_pdf_is_stamped_on_every_page_and_claims_no_signature(lang):
    long = {k: (v + " ") * 120 for k, v in (TR if lang == "tr" else EN).items()}
    texts = render(study(lang), report(long))
    stamp = rw.WORDS[lang]["stamp"]
    assert len(texts) >= 3
    assert all(stamp in t for t in texts), [i for i, t in enumerate(texts) if stamp not in t]
    whole = " ".join(texts)
    assert not any(c in whole for c in CLAIMS)
    assert rw.WORDS[lang]["not_signed"] in whole


@pytest.mark.parametrize(
    "lang, when",
    [("tr", "23.11.2026 14:05 (Europe/Istanbul)"), ("en", "23 Nov 2026 14:05 (Europe/Istanbul)")],
)
def test_a_signed_pdf_names_the_signer_and_the_local_time(lang, when):
    texts = render(study(lang), signed(TR if lang == "tr" else EN))
    whole = " ".join(texts)
    assert "dr.ayse" in whole and when in whole
    assert not any(rw.WORDS[lang]["stamp"] in t for t in texts)
    assert "2026-11-23T" not in whole  # no raw ISO timestamp


def test_the_time_zone_is_a_setting(monkeypatch):
    from medai.settings import Settings, get_settings

    monkeypatch.setenv("MEDAI_TIMEZONE", "Europe/Berlin")
    get_settings.cache_clear()
    try:
        assert format_local("2026-07-01T10:00:00Z", "en") == "1 Jul 2026 12:00 (Europe/Berlin)"
        whole = " ".join(pages(report_pdf(study(), signed(), MODEL, None, None, None)))
        assert "23.11.2026 12:05 (Europe/Berlin)" in whole
        monkeypatch.setenv("MEDAI_TIMEZONE", "Europe/Istambul")
        with pytest.raises(ValueError, match="time zone"):
            Settings()
    finally:
        get_settings.cache_clear()


def test_local_times_accept_stored_and_api_forms():
    naive = datetime(2026, 11, 23, 11, 5)  # the database keeps naive UTC
    assert format_local(naive, "tr", "Europe/Istanbul") == "23.11.2026 14:05 (Europe/Istanbul)"
    assert format_local(None, "tr") is None
    assert local_times({"created_at": SIGNED_AT, "signed_at": None}, "en", "UTC") == {
        "created_at_local": "23 Nov 2026 11:05 (UTC)",
        "signed_at_local": None,
    }


ENGLISH_IN_A_TURKISH_PDF = [
    v
    for k, v in rw.WORDS["en"].items()
    if k
    in (
        "title",
        "status",
        "examination",
        "patient",
        "signed_by",
        "signed_at",
        "version_date",
        "ai_model",
        "findings_title",
        "col_finding",
        "col_probability",
        "col_threshold",
        "col_decision",
        "technique",
        "findings",
        "impression",
        "recommendation",
        "sources",
        "image",
        "preliminary",
        "final",
        "present",
        "absent",
        "not_signed",
        "stamp",
    )
] + ["Cardiomegaly", "Pleural effusion", "Chest X-ray", "not a diagnosis", "AI "]


@pytest.mark.parametrize("make", [report, signed])
def test_a_turkish_pdf_has_no_english_headings_or_names(make):
    pdf = report_pdf(
        study("tr"), make(), MODEL, _png(), _png(1), "Cardiomegaly", zone="Europe/Istanbul"
    )
    whole = " ".join(pages(pdf))
    found = [w for w in ENGLISH_IN_A_TURKISH_PDF if re.search(rf"\b{re.escape(w)}", whole)]
    assert not found
    for word in (
        "Rapor durumu",
        "Bulgu",
        "Olasılık",
        "YZ kararı",
        "Sonuç",
        "Kardiyomegali",
        "Akciğer grafisi",
        "Kaynaklar",
        "Grad-CAM ısı haritası",
    ):
        assert word in whole


def test_the_disclosure_follows_the_state():
    def text(r, lang="tr"):
        return " ".join(render(study(lang), r))

    hand = text(report(ai_assisted=False))
    assert "yapay zekâ taslağı kullanılmadan" in hand and "desteğiyle" not in hand
    assert "imzalanmamıştır" in hand
    hand_signed = text(signed(ai_assisted=False), "en")
    assert "by hand, without an AI draft" in hand_signed and "dr.ayse" in hand_signed
    missing_field = {k: v for k, v in report().items() if k != "ai_assisted"}
    assert "yapay zekâ tarafından hazırlanmış bir taslaktır" in text(missing_field)
    amended = text(report(status="amended", version=4))
    assert "Düzeltilmiş rapor taslağı" in amended and "Düzeltilmiş rapor (sürüm 4)" in amended
    assert not any(c in amended for c in CLAIMS)
    amended_signed = text(signed(status="amended", version=5), "en")
    assert "Amended report" in amended_signed and "reviewed and signed by dr.ayse" in amended_signed


UNUSUAL = "ğüşıöçĞÜŞİÖÇ αβγΩ Привет 胸部検査 🙂👍 \ue000"


def test_no_report_character_reaches_the_log(caplog):
    secret = {name: f"{UNUSUAL} {name}" for name in TR}
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report_pdf(study("tr"), report(secret, signed_by=UNUSUAL), MODEL, None, None, None)
    logged = caplog.text + " ".join(str(w.message) for w in caught)
    leaked = sorted({c for c in UNUSUAL if not c.isascii() and c in logged})
    assert not leaked
    assert "\\ue000" not in logged and "\\U0001f642" not in logged and "uni04" not in logged
    counts = [r for r in caplog.records if r.name == "medai.platform.documents.pdf.report_pdf"]
    assert len(counts) == 1 and "study 7" in counts[0].getMessage()
    assert re.search(r": \d+ characters had no glyph", counts[0].getMessage())


def test_fonts_cover_turkish_greek_and_cyrillic_without_fallbacks():
    from medai.platform.documents.pdf.report_pdf import fallbacks_for

    assert fallbacks_for("ğüşıöçĞÜŞİÖÇ αβγΩ Привет") == []


def _png(seed: int = 0) -> bytes:
    from helpers.platform import png_bytes

    return png_bytes(seed, size=(60, 80))


def _strings(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


CREATED = datetime(2026, 11, 23, 11, 1)
STATES = {
    "preliminary": (study(), report(), MODEL),
    "final": (study(), signed(), MODEL),
    "amended signed": (study(), signed(status="amended", version=5), MODEL),
    "amended unsigned": (study(), report(status="amended", version=4), MODEL),
    "empty sections": (study(), report(dict.fromkeys(TR, "")), MODEL),
    "empty impression": (study(), report({**TR, "impression": ""}), MODEL),
    "blank impression": (study(), signed({**TR, "impression": "  \n"}), MODEL),
    "no findings": (study(), report(findings=[]), MODEL),
    "no model": (study(), report(), None),
    "model without a version": (study(), report(), {"name": "m", "content_hash": ""}),
    "no patient": (study(patient_ref=None), report(), MODEL),
    "empty patient": (study(patient_ref=""), report(), MODEL),
    "hand-written": (study(), signed(ai_assisted=False, findings=[], citations=[]), None),
    "finding without a label": (study(), report(findings=[{"label": ""}, *FINDINGS]), MODEL),
    "english": (study("en"), signed(EN), MODEL),
}


@pytest.mark.parametrize("state", STATES)
def test_fhir_exports_every_report_state(state):
    from fhir.resources.R4B.bundle import Bundle

    s, r, model = STATES[state]
    signed_at = datetime(2026, 11, 23, 11, 5) if r["signed_by"] else None
    bundle = fhir_bundle(s, r, model, r["signed_by"], CREATED, signed_at)
    parsed = Bundle.model_validate(bundle)
    assert not [x for x in _strings(bundle) if not x.strip()]  # empty strings are left out
    dr = parsed.entry[0].resource
    assert dr.get_resource_type() == "DiagnosticReport" and dr.status == r["status"]
    impression = r["sections"].get("impression", "").strip()
    assert dr.conclusion == (impression or None)
    assert bool(dr.resultsInterpreter) == bool(r["signed_by"])
    text = base64.b64decode(bundle["entry"][0]["resource"]["presentedForm"][0]["data"]).decode()
    lang = s["language"]
    assert dr.presentedForm[0].language == lang
    if not r["signed_by"]:
        assert not any(c in text for c in CLAIMS)
    if lang == "tr":
        assert "IMPRESSION" not in text and "FINDINGS" not in text
        assert ("SONUÇ:" in text) == bool(impression)
        assert ("Yapay zekâ" in text) == r["ai_assisted"]
    kinds = [e.resource.get_resource_type() for e in parsed.entry]
    assert kinds.count("Observation") == len([f for f in r["findings"] if f["label"]])
    assert ("Device" in kinds) == bool(model)
    assert ("Patient" in kinds) == bool(s.get("patient_ref"))


def _obs(bundle: dict) -> list[dict]:
    return [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
    ]


def _code(o: dict) -> str:
    return o["interpretation"][0]["coding"][0]["code"]


def test_fhir_observations_follow_the_decision_and_the_signature():
    indeterminate = {
        "label": "Effusion",
        "probability": 0.5,
        "threshold": 0.5,
        "positive": False,
        "basis": "indeterminate",
    }
    unsigned = fhir_bundle(
        study(), report(findings=[*FINDINGS, indeterminate]), MODEL, None, CREATED, None
    )
    obs = _obs(unsigned)
    assert [_code(o) for o in obs] == ["POS", "NEG", "IND"]
    assert all(o["status"] == "preliminary" for o in obs)
    assert "henüz radyolog incelemesinden geçmedi" in obs[0]["method"]["text"]
    assert obs[0]["code"]["text"] == "Kardiyomegali"
    assert [n["text"] for n in obs[0]["note"]] == ["var", "karar eşiği 0.5000"]  # Turkish
    # signed, but the signature stored no labels: the AI's suggestions stay preliminary
    final = fhir_bundle(study(), signed(), MODEL, "dr.ayse", CREATED, datetime(2026, 11, 23))
    assert all(o["status"] == "preliminary" for o in _obs(final))
    assert final["entry"][0]["resource"]["issued"] == "2026-11-23T00:00:00+00:00"


def test_after_sign_off_the_signers_labels_are_the_final_results():
    """The tryout's film: the AI said bacterial pneumonia, the radiologist signed a normal
    film and rejected it. The EHR must receive a final NEG from the signer, the AI's POS
    only as a preliminary suggestion the signer rejected, never a final positive."""
    from medai.platform.documents.words.finding_states import with_states

    ai = {
        "task": "cxr",
        "findings": [
            {
                "label": "Bacterial_Pneumonia",
                "probability": 0.81,
                "threshold": 0.41,
                "positive": True,
                "basis": "above_threshold",
            },
            {
                "label": "Pneumonia",
                "probability": 0.7,
                "threshold": 0.58,
                "positive": True,
                "basis": "above_threshold",
            },
            {
                "label": "No Finding",
                "probability": 0.2,
                "threshold": 0.7,
                "positive": False,
                "basis": "below_threshold",
            },
        ],
    }
    said = [
        {"label": "Bacterial_Pneumonia", "present": False, "source": "rejected"},
        {"label": "Pneumonia", "present": False, "source": "text"},
        {"label": "No Finding", "present": True, "source": "text"},
    ]
    sections = {"findings": "Normal akciğer grafisi.", "impression": "Pnömoni bulgusu yok."}
    r = with_states(signed(sections), ai, said)
    bundle = fhir_bundle(study(), r, MODEL, "dr.ayse", CREATED, datetime(2026, 11, 23))
    Bundle.model_validate(bundle)
    obs = _obs(bundle)
    finals = {o["code"]["coding"][0]["code"]: o for o in obs if o["status"] == "final"}
    assert {k: (o["valueBoolean"], _code(o)) for k, o in finals.items()} == {
        "Bacterial_Pneumonia": (False, "NEG"),
        "Pneumonia": (False, "NEG"),
        "No Finding": (True, "POS"),
    }
    assert all(o["performer"][0]["reference"] == "Practitioner/signer-7" for o in finals.values())
    ai_obs = [o for o in obs if o["status"] != "final"]
    assert all(o["status"] == "preliminary" and "device" in o for o in ai_obs)
    bact = next(o for o in ai_obs if o["code"]["coding"][0]["code"] == "Bacterial_Pneumonia")
    assert _code(bact) == "POS" and "radyolog reddetti" in bact["method"]["text"]
    assert (
        finals["Bacterial_Pneumonia"]["derivedFrom"][0]["reference"] == f"Observation/{bact['id']}"
    )
    assert not [
        o
        for o in obs
        if o["status"] == "final"
        and _code(o) == "POS"
        and o["code"]["coding"][0]["code"] != "No Finding"
    ]
    dr = bundle["entry"][0]["resource"]
    refs = [x["reference"] for x in dr["result"]]
    assert refs[:3] == [f"Observation/{o['id']}" for o in obs if o["status"] == "final"]


def test_an_undecided_mri_is_indeterminate_in_fhir_for_both_candidates():
    from medai.platform.documents.words.finding_states import with_states

    ai = {
        "task": "mri",
        "decision": {
            "kind": "exclusive",
            "state": "indeterminate",
            "indeterminate_reason": "low_confidence",
            "candidates": ["Pituitary", "Meningioma"],
            "labels": [
                {
                    "label": "Pituitary",
                    "probability": 0.408,
                    "threshold": 0.9,
                    "positive": False,
                    "basis": "indeterminate",
                },
                {
                    "label": "Meningioma",
                    "probability": 0.361,
                    "threshold": 0.9,
                    "positive": False,
                    "basis": "not_top",
                },
                {
                    "label": "Glioma",
                    "probability": 0.2,
                    "threshold": 0.9,
                    "positive": False,
                    "basis": "not_top",
                },
                {
                    "label": "No_Tumor",
                    "probability": 0.031,
                    "threshold": 0.9,
                    "positive": False,
                    "basis": "not_top",
                },
            ],
        },
    }
    r = with_states(report(findings=[]), ai, None)
    obs = _obs(fhir_bundle(study(task="mri"), r, MODEL, None, CREATED, None))
    assert {o["code"]["coding"][0]["code"]: _code(o) for o in obs} == {
        "Pituitary": "IND",
        "Meningioma": "IND",
        "Glioma": "NEG",
        "No_Tumor": "NEG",
    }


def test_a_finding_implied_by_another_says_so():
    from medai.platform.documents.words.finding_states import with_states

    stored = [
        {"label": "COVID-19", "probability": 0.76, "threshold": 0.04, "positive": True},
        {"label": "Viral_Pneumonia", "probability": 0.09, "threshold": 0.97, "positive": True},
    ]
    payload = {
        "findings": [
            {**stored[0], "basis": "above_threshold"},
            {**stored[1], "basis": "implied", "implied_by": "COVID-19"},
        ]
    }
    r = with_states(report(findings=stored), payload, None)
    assert r["findings"][1]["implied_by"] == "COVID-19" and "basis" not in stored[1]
    whole = " ".join(render(study("tr"), r))
    assert "COVID-19 kapsamında" in whole and "var (COVID-19" not in whole
