"""The wording of a report and its outputs (issue 59): a probability is never shown as 100 % or 0 %;
a label whose name is a negative ("Tümör yok", "Bulgu yok") is never printed with present/absent
words that make a double negative; an undecided finding the signer did not choose reads "karar
verilmedi", never "reddetti"; "reddetti" is the radiologist's, "reddedildi" the AI's refusal; the
model card's prose is in the UI's language; the PDF never leaves one line of a section alone on a
page."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medai.core.task_registry import get as get_task
from medai.imaging.decision import OperatingPolicy, decide
from medai.platform.documents.fhir.fhir_bundle import report_pdf
from medai.platform.documents.words import report_words as rw
from medai.platform.documents.words.finding_states import with_states

ROOT = Path(__file__).resolve().parents[3]
MODEL = {"name": "medai-test", "version": "1.0.0", "content_hash": "sha256:" + "ab" * 32}
MRI_THRESHOLDS = {"Glioma": 0.5, "Meningioma": 0.5, "Pituitary": 0.5, "No_Tumor": 0.55}


def _formatters():
    """Every Python output's percentage: what the PDF and the image chat call (both the one
    ``core.percent.probability``)."""
    from medai.platform.documents.pdf import report_pdf
    from medai.reporting import chat

    return (report_pdf.probability, chat.probability)


@settings(max_examples=400, deadline=None)
@given(st.floats(min_value=0.0, max_value=1.0, allow_nan=False), st.sampled_from(["tr", "en"]))
def test_a_probability_never_reads_100_or_0_percent(p, lang):
    for fmt in _formatters():
        text = fmt(p, lang)
        number = re.sub(r"[^\d,.]", "", text).replace(",", ".")
        assert float(number) not in (0.0, 100.0), (p, text)
        if lang == "tr":
            assert re.fullmatch(r"[<>]?%\d{1,2},\d", text), text
        else:
            assert re.fullmatch(r"[<>]?\d{1,2}\.\d%", text), text


def test_the_limits_and_a_turkish_value():
    from medai.core.percent import probability

    assert probability(0.997, "tr") == "%99,7" and probability(0.997, "en") == "99.7%"
    assert probability(1.0, "tr") == ">%99,9" and probability(0.99999, "en") == ">99.9%"
    assert probability(0.0, "tr") == "<%0,1" and probability(0.00001, "en") == "<0.1%"
    assert probability(None, "tr") == "—"


def _mri(probs: dict[str, float]) -> dict:
    policy = OperatingPolicy(thresholds=MRI_THRESHOLDS, min_confidence=0.55, min_margin=0.05)
    d = decide(get_task("mri"), probs, policy)
    d = d.model_dump(mode="json")
    return {"task": "mri", "decision": d, "findings": d["labels"]}


def _report(payload: dict, signed: list[dict] | None = None, sections: dict | None = None):
    base = {
        "version": 1,
        "status": "preliminary",
        "sections": sections
        or {"technique": "MR.", "findings": "—", "impression": "—", "recommendation": ""},
        "citations": [],
        "findings": [],
        "signed_by": None,
        "signed_at": None,
        "created_at": "2026-11-23T11:01:00Z",
        "ai_assisted": True,
        "task": "mri",
    }
    if signed is not None:
        base.update(version=2, status="final", signed_by="dr.ayse", signed_at="2026-11-23T12:00Z")
    return with_states(base, payload, signed)


def _study(lang: str) -> dict:
    return {"id": 59, "task": "mri", "modality": "MR", "patient_ref": "P-59", "language": lang}


def _text(pdf: bytes) -> str:
    from pypdf import PdfReader

    return " ".join(
        " ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(pdf)).pages
    )


NO_TUMOUR = {  # the AI's state of No_Tumor in each film
    "present": {"Glioma": 0.02, "Meningioma": 0.03, "Pituitary": 0.02, "No_Tumor": 0.93},
    "absent": {"Glioma": 0.91, "Meningioma": 0.04, "Pituitary": 0.02, "No_Tumor": 0.03},
    "indeterminate": {"Glioma": 0.05, "Meningioma": 0.05, "Pituitary": 0.44, "No_Tumor": 0.46},
}


@pytest.mark.parametrize("lang", ["tr", "en"])
@pytest.mark.parametrize("state", ["present", "absent", "indeterminate"])
@pytest.mark.parametrize("signer", [None, True, False])
def test_no_tumour_never_reads_as_a_double_negative_in_the_pdf(lang, state, signer):
    payload = _mri(NO_TUMOUR[state])
    states = {r["label"]: r["state"] for r in payload["decision"]["labels"]}
    assert states["No_Tumor"] == state
    signed = None
    if signer is not None:
        signed = [
            {"label": "No_Tumor", "present": signer, "ai_positive": None, "source": "decided"},
            {"label": "Glioma", "present": not signer, "ai_positive": None, "source": "decided"},
        ]
    text = _text(report_pdf(_study(lang), _report(payload, signed), MODEL, None, None, None))
    name = rw.label_name("mri", "No_Tumor", lang)
    neg = "yok|var" if lang == "tr" else "absent|present"
    # the name, its two percentages, then a bare present/absent word: "Tümör yok %3,0 %55,0 yok"
    double = re.compile(rf"{re.escape(name)} [<>]?%?[\d,.]+%? [<>]?%?[\d,.]+%? (?:{neg})\b")
    assert name in text and not double.search(text), text
    assert not re.search(rf"karar verdi: (?:{neg})\b", text) or "Tümör" not in text
    if state != "indeterminate":
        word = rw.WORDS[lang]["normal_" + state]
        assert f"{name} " in text and word in text


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_an_undecided_finding_the_signer_did_not_choose_reads_not_decided(lang):
    payload = _mri({"Glioma": 0.44, "Meningioma": 0.43, "Pituitary": 0.07, "No_Tumor": 0.06})
    states = {r["label"]: r["state"] for r in payload["decision"]["labels"]}
    assert states["Glioma"] == states["Meningioma"] == "indeterminate"
    # the signer chose glioma; meningioma was left as it was (nothing stored for it, or a
    # label read from the text before labels changed only by hand)
    for meningioma in ([], [{"label": "Meningioma", "present": False, "source": "text"}]):
        signed = [{"label": "Glioma", "present": True, "source": "decided"}, *meningioma]
        report = _report(payload, signed)
        row = next(f for f in report["findings"] if f["label"] == "Meningioma")
        assert row["verdict"] == "not_decided"
        text = _text(report_pdf(_study(lang), report, MODEL, None, None, None))
        assert rw.WORDS[lang]["not_decided"] in text
        assert "reddetti" not in text and "rejected" not in text


def test_reddetti_is_the_radiologists_and_reddedildi_the_ais_refusal():
    """Turkish: "reddetti"/"reddettiniz"/"reddettiği" only where a radiologist rejects a
    finding; "reddedildi"/"reddedilen" only where the AI or the system refused (an image, a
    request); in English "rejected" is the radiologist's and "refused" the system's."""
    catalogue = json.loads(
        (ROOT / "src/medai/platform/web/messages.json").read_text(encoding="utf-8")
    )
    radiologist = re.compile(
        r"^(verdict_|labels_|heatmap_state_|urgent_reason_|sign_labels_|citation_)"
    )
    refusal = re.compile(r"^(status_refused|outcome_refused|monitor_refused)$")
    words = {**{f"pdf:{k}": v for k, v in rw.WORDS["tr"].items()}, **catalogue["tr"]}
    for key, text in words.items():
        key = key.removeprefix("pdf:")
        if re.search(r"reddetti", text, re.I):
            assert radiologist.match(key) or key in (
                "rejected",
                "heatmap_rejected",
                "citation_rejected",
            ), key
        if re.search(r"redded[iı]l", text, re.I):
            assert refusal.match(key), (key, text)
    for key, text in catalogue["en"].items():
        if re.search(r"\brefused\b", text) and not refusal.match(key):
            assert "radiologist" not in text and "signer" not in text, key


@pytest.mark.parametrize(
    "card", ["mri-default", "cxr-default", "triage-default", "caption-retrieval"]
)
def test_the_model_card_prose_is_in_the_ui_language(card):
    data = json.loads(
        (ROOT / f"src/medai/assets/models/{card}/model_card.json").read_text(encoding="utf-8")
    )
    en, tr = rw.card_text(data, "en"), rw.card_text(data, "tr")
    for key in ("description", "intended_use", "licence_notes"):
        assert en["text"][key] == data[key] and en["lang"][key] == "en"
        assert tr["lang"][key] == "tr" and tr["text"][key] != data[key], (key, tr)
    assert "Suggest" not in " ".join(tr["text"].values())


def _page_texts(pdf: bytes, tmp: Path) -> list[str]:
    path = tmp / "r.pdf"
    path.write_bytes(pdf)
    pages = []
    n = 1
    while True:
        out = subprocess.run(
            ["pdftotext", "-layout", "-f", str(n), "-l", str(n), str(path), "-"],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0 or n > 20:
            break
        pages.append(out.stdout)
        n += 1
        if f"sayfa {n - 1}/{n - 1}" in out.stdout or f"page {n - 1}/{n - 1}" in out.stdout:
            break
    return pages


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler's pdftotext")
def test_the_pdf_never_leaves_one_line_of_a_section_alone_on_a_page(tmp_path):
    """Findings of n short lines (each its own line, "Satır 01" …) pushed down the page; for
    every n the page break leaves at least two of them on each side, or moves them whole."""
    payload = _mri(NO_TUMOUR["absent"])
    alone = []
    for n in range(20, 62):
        lines = [f"Satır {i:02d} bulgu metni." for i in range(1, n + 1)]
        sections = {
            "technique": "MR.",
            "findings": "\n".join(lines),
            "impression": "Sonuç satırı.",
            "recommendation": "",
        }
        pdf = report_pdf(_study("tr"), _report(payload, None, sections), MODEL, None, None, None)
        for page in _page_texts(pdf, tmp_path):
            on_page = re.findall(r"Satır (\d\d)", page)
            if 0 < len(on_page) < 2 and len(lines) > 1:
                alone.append((n, on_page))
    assert not alone, alone
