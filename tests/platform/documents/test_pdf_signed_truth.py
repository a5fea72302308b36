"""The PDF says what the radiologist signed (issue 46): the AI table reads each finding's one
state, an undecided or self-contradicting AI result says so above the table, and after sign-off
each AI suggestion is marked confirmed or rejected by the signer; a rejected finding's heatmap
and cited passages are never shown as support for the signed conclusion.

The reports are built as the export route builds them: a real decision (``imaging.decision``)
stored as the imaging result stores it, read through ``finding_states.with_states`` with the
labels the signature stored."""

from __future__ import annotations

import io
import re

import pytest

from medai.core.task_registry import get as get_task
from medai.imaging.decision import OperatingPolicy, decide
from medai.platform.documents.fhir.fhir_bundle import report_pdf
from medai.platform.documents.words import report_words as rw
from medai.platform.documents.words.finding_states import with_states

# the bundled CXR model's operating points (assets/models/cxr-default/operating_points.json)
CXR_THRESHOLDS = {
    "Pneumonia": 0.584265947341919,
    "COVID-19": 0.08920242637395859,
    "Viral_Pneumonia": 0.7370989322662354,
    "Bacterial_Pneumonia": 0.40953579545021057,
    "No Finding": 0.6988608241081238,
}
MODEL = {"name": "medai-test", "version": "1.0.0", "content_hash": "sha256:" + "cd" * 32}
SIGNED_AT = "2026-11-23T11:05:00Z"
SOURCE = {
    "tr": "medai bilgi tabanı (medai ekibi tarafından yazıldı)",
    "en": "medai knowledge base (written by the medai team)",
}
# the bundled knowledge base's passages, as a draft cites them (reporting.draft)
PASSAGES = {
    ("Bacterial_Pneumonia", "tr"): ("medai-bacterial-pneumonia-tr", "Bakteriyel pnömoni"),
    ("Bacterial_Pneumonia", "en"): ("medai-bacterial-pneumonia-en", "Bacterial Pneumonia"),
    ("Pneumonia", "tr"): ("medai-pneumonia-tr", "Pnömoni"),
    ("Pneumonia", "en"): ("medai-pneumonia-en", "Pneumonia"),
    ("Pituitary", "tr"): ("medai-pituitary-tr", "Hipofiz tümörü"),
    ("Meningioma", "tr"): ("medai-meningioma-tr", "Menenjiom"),
}
AI_DRAFT = {
    "tr": {
        "technique": "PA akciğer grafisi.",
        "findings": "Sağ alt zonda bakteriyel pnömoni ile uyumlu konsolidasyon [1].",
        "impression": "Bakteriyel pnömoni ile uyumlu görünüm [1][2].",
        "recommendation": "Klinik korelasyon önerilir.",
    },
    "en": {
        "technique": "PA chest radiograph.",
        "findings": "Right lower zone consolidation, bacterial pneumonia [1].",
        "impression": "Bacterial pneumonia [1][2].",
        "recommendation": "Clinical correlation.",
    },
}
SIGNED_TEXT = {
    "tr": {
        "technique": "PA akciğer grafisi.",
        "findings": "Normal akciğer grafisi. Pnömoni bulgusu yok.",
        "impression": "Normal akciğer grafisi. Pnömoni bulgusu yok.",
        "recommendation": "",
    },
    "en": {
        "technique": "PA chest radiograph.",
        "findings": "Normal chest radiograph. No sign of pneumonia.",
        "impression": "Normal chest radiograph. No sign of pneumonia.",
        "recommendation": "",
    },
}


def study(task: str, lang: str) -> dict:
    return {
        "id": 46,
        "task": task,
        "modality": "CR" if task == "cxr" else "MR",
        "patient_ref": "P-46",
        "language": lang,
    }


def ai_result(task: str, probs: dict[str, float], policy: OperatingPolicy) -> dict:
    """The stored imaging result's payload: the decision and its label rows."""
    d = decide(get_task(task), probs, policy).model_dump(mode="json")
    return {"task": task, "decision": d, "findings": d["labels"]}


def cite(n: int, label: str, lang: str) -> dict:
    pid, title = PASSAGES[(label, lang)]
    return {
        "id": pid,
        "n": n,
        "source": SOURCE[lang],
        "licence": "CC BY 4.0",
        "title": title,
        "text": "…",
    }


def report(
    task: str,
    lang: str,
    sections: dict,
    citations: list,
    payload: dict,
    signed: list[dict] | None = None,
    **kw,
) -> dict:
    base = {
        "version": 1,
        "status": "preliminary",
        "sections": dict(sections),
        "citations": citations,
        "findings": [],
        "signed_by": None,
        "signed_at": None,
        "created_at": "2026-11-23T11:01:00Z",
        "ai_assisted": True,
        "task": task,
    }
    if signed is not None:
        base.update(version=2, status="final", signed_by="dr.ayse", signed_at=SIGNED_AT)
    base.update(kw)
    return with_states(base, payload, signed)


def pdf_text(pdf: bytes) -> tuple[str, int]:
    """The whole text (whitespace folded) and how many images the PDF draws."""
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(pdf))
    text = " ".join(" ".join((p.extract_text() or "").split()) for p in reader.pages)
    return text, sum(len(p.images) for p in reader.pages)


def png(seed: int = 0) -> bytes:
    from helpers.platform import png_bytes

    return png_bytes(seed, size=(60, 80))


def pneumonia_film() -> dict:
    """The AI read bacterial pneumonia (and pneumonia, its parent), nothing else."""
    probs = {
        "Pneumonia": 0.81,
        "COVID-19": 0.03,
        "Viral_Pneumonia": 0.12,
        "Bacterial_Pneumonia": 0.78,
        "No Finding": 0.05,
    }
    payload = ai_result("cxr", probs, OperatingPolicy(thresholds=CXR_THRESHOLDS))
    states = {r["label"]: r["state"] for r in payload["decision"]["labels"]}
    assert states["Bacterial_Pneumonia"] == "present" and states["Pneumonia"] == "present"
    return payload


def signed_normal(payload: dict) -> list[dict]:
    """What the signature of "Normal akciğer grafisi. Pnömoni bulgusu yok." stores
    (``lifecycle.labels.suggest``): every label the model reads absent, the normal one present;
    the pneumonia the radiologist clicked away is "rejected"."""
    return [
        {
            "label": r["label"],
            "present": r["label"] == "No Finding",
            "ai_positive": r["state"] == "present",
            "source": "rejected" if r["label"] == "Bacterial_Pneumonia" else "text",
        }
        for r in payload["decision"]["labels"]
    ]


def _row(text: str, name: str, lang: str) -> str:
    """The table row of ``name`` (the text after the table's heading row): from the name to
    the end of its radiologist cell."""
    w = rw.WORDS[lang]
    table = text.split(f"{w['col_decision']} {w['col_signer']} ", 1)[1]
    ends = "|".join(
        re.escape(w[k].split("{")[0].strip()) for k in ("confirmed", "rejected", "added", "decided")
    )
    m = re.search(
        rf"(?:^|(?:{ends}) )({re.escape(name)} %?\d(?:(?!{ends}).){{0,160}}?"
        rf"(?:{ends}))",
        table,
    )
    assert m, (name, table)
    return m.group(1)


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_a_signed_corrected_report_marks_the_rejected_ai_finding_and_drops_its_support(lang):
    w = rw.WORDS[lang]
    payload = pneumonia_film()
    cites = [cite(1, "Bacterial_Pneumonia", lang), cite(2, "Pneumonia", lang)]
    bacterial = rw.label_name("cxr", "Bacterial_Pneumonia", lang)
    caption = w["heatmap"].format(label=bacterial)

    # before sign-off the AI's suggestion, its heatmap and its passages are as they were
    draft = report("cxr", lang, AI_DRAFT[lang], cites, payload)
    text, images = pdf_text(
        report_pdf(
            study("cxr", lang), draft, MODEL, png(), png(1), "Bacterial_Pneumonia", zone="UTC"
        )
    )
    assert caption in text and images == 2
    assert f"[1] {bacterial} — {SOURCE[lang]}" in text
    assert not any(w[k] in text for k in ("confirmed", "rejected", "added"))
    assert f"{w['col_decision']} {w['col_signer']}" not in text  # no radiologist column

    # signed "Normal akciğer grafisi. Pnömoni bulgusu yok.": the pneumonia rejected
    final = report("cxr", lang, SIGNED_TEXT[lang], cites, payload, signed_normal(payload))
    assert final["signed_labels"]
    text, images = pdf_text(
        report_pdf(
            study("cxr", lang), final, MODEL, png(), png(1), "Bacterial_Pneumonia", zone="UTC"
        )
    )
    # the AI's suggestion stays visible, marked rejected by the radiologist, in its row
    assert w["findings_title"] in text or w["findings_title_signed"] in text
    assert ("öneri" if lang == "tr" else "suggestion") in text
    row = _row(text, bacterial, lang)
    assert row.endswith(w["rejected"]) and f" {w['present']} " in row, row
    pneumonia = _row(text, rw.label_name("cxr", "Pneumonia", lang), lang)
    assert pneumonia.endswith(w["rejected"]), pneumonia
    no_finding = _row(text, rw.label_name("cxr", "No Finding", lang), lang)
    assert no_finding.endswith(w["added"]), no_finding
    # no heatmap presented as the finding: the film alone, and the line saying why
    assert caption not in text and "Grad-CAM" not in text
    assert images == 1
    assert w["heatmap_rejected"].format(label=bacterial) in text
    # no cited passage for the rejected pneumonia (the signed text cites none)
    assert f"{bacterial} — {SOURCE[lang]}" not in text
    assert f"{rw.label_name('cxr', 'Pneumonia', lang)} — {SOURCE[lang]}" not in text
    assert w["sources"] not in text

    # a signed text that still cites [1]: the reference resolves, said to be about a
    # suggestion the signer rejected
    kept = report(
        "cxr",
        lang,
        {**SIGNED_TEXT[lang], "findings": "Pnömoni bulgusu yok [1]."},
        cites,
        payload,
        signed_normal(payload),
    )
    text, _ = pdf_text(report_pdf(study("cxr", lang), kept, MODEL, None, None, None))
    line = re.search(r"\[1\] .*?(?=\[2\]|$)", text.split(w["sources"], 1)[1]).group(0)
    assert w["citation_rejected"].format(label=bacterial) in line, line
    assert "[2]" not in text.split(w["sources"], 1)[1]


def table(text: str, w: dict) -> int:
    """Where the AI appendix's findings table starts (after the report, which leads the PDF:
    issue 69)."""
    return text.index(w["col_finding"], text.index(w["ai_appendix"]))


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_an_undecided_mri_names_both_candidates_and_never_says_absent(lang):
    w = rw.WORDS[lang]
    probs = {"Pituitary": 0.408, "Meningioma": 0.361, "Glioma": 0.2, "No_Tumor": 0.031}
    payload = ai_result("mri", probs, OperatingPolicy(min_confidence=0.5))
    assert payload["decision"]["candidates"] == ["Pituitary", "Meningioma"]
    sections = {
        "technique": "T1 kontrastlı MR." if lang == "tr" else "Contrast T1 MRI.",
        "findings": "Belirsiz." if lang == "tr" else "Indeterminate.",
        "impression": "",
        "recommendation": "",
    }
    r = report("mri", lang, sections, [], payload)
    text, _ = pdf_text(
        report_pdf(study("mri", lang), r, MODEL, png(), png(1), "Pituitary", zone="UTC")
    )
    pituitary = rw.label_name("mri", "Pituitary", lang)
    meningioma = rw.label_name("mri", "Meningioma", lang)
    note = w["ai_candidates"].format(labels=f"{pituitary}, {meningioma}")
    assert note in text
    # the note is above the table, the table says undecided for both, absent for neither
    assert text.index(note) < table(text, w)
    undecided = w["candidate"].format(state=w["undecided"])
    for name, p in ((pituitary, "40"), (meningioma, "36")):
        m = re.search(rf"{re.escape(name)} %?{p}[.,]\d%? %?\d+[.,]\d%? (\S+)", text)
        assert m, (name, text)
        assert m.group(1) == w["undecided"], m.group(0)
        assert text[m.start(1) :].startswith(undecided)
    assert not re.search(
        rf"{re.escape(meningioma)} %?36[.,]1%? %?\d+[.,]\d%? {w['absent']}\b", text
    )
    # the heatmap of one candidate says the model was undecided
    caption = w["heatmap"].format(label=pituitary)
    assert caption in text
    assert note in text[text.index(caption) : table(text, w)]


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_a_candidate_the_signer_decided_absent_is_not_said_rejected(lang):
    """The AI could not decide between two candidates; the signer chose one and decided the
    other absent: the withheld heatmap of the other says the radiologist decided, never that
    they rejected an AI finding ("reddetti" is for a finding the AI said present)."""
    w = rw.WORDS[lang]
    probs = {"Pituitary": 0.408, "Meningioma": 0.361, "Glioma": 0.2, "No_Tumor": 0.031}
    payload = ai_result("mri", probs, OperatingPolicy(min_confidence=0.5))
    signed = [
        {"label": "Pituitary", "present": True, "source": "decided"},
        {"label": "Meningioma", "present": False, "source": "decided"},
    ]
    sections = {"technique": "MR.", "findings": "Hipofiz adenomu.", "impression": "Adenom."}
    r = report("mri", lang, sections, [], payload, signed)
    text, images = pdf_text(
        report_pdf(study("mri", lang), r, MODEL, png(), png(1), "Meningioma", zone="UTC")
    )
    meningioma = rw.label_name("mri", "Meningioma", lang)
    assert w["heatmap_decided_absent"].format(label=meningioma) in text
    assert w["heatmap_rejected"].format(label=meningioma) not in text
    assert ("reddetti" if lang == "tr" else "rejected") not in text
    assert images == 1  # the film alone: nothing of the AI's supports what the signer ruled out


@pytest.mark.parametrize("lang", ["tr", "en"])
@pytest.mark.parametrize("settle", ["indeterminate", "finding"])
def test_a_conflict_of_normal_and_a_finding_is_said_above_the_table(lang, settle):
    w = rw.WORDS[lang]
    film = {
        "No Finding": 0.969,
        "COVID-19": 0.913,
        "Pneumonia": 0.3,
        "Viral_Pneumonia": 0.2,
        "Bacterial_Pneumonia": 0.01,
    }
    payload = ai_result(
        "cxr", film, OperatingPolicy(thresholds=CXR_THRESHOLDS, normal_conflict=settle)
    )
    assert payload["decision"]["conflict"] == ["No Finding", "COVID-19"]
    r = report("cxr", lang, AI_DRAFT[lang], [], payload)
    text, _ = pdf_text(report_pdf(study("cxr", lang), r, MODEL, None, None, None))
    normal = rw.label_name("cxr", "No Finding", lang)
    note = w["ai_conflict"].format(labels=f"{normal}, COVID-19")
    assert note in text and text.index(note) < table(text, w)
    # both rows say the conflict; neither is a plain, unexplained answer
    conflict = w["conflict"].split("{state}")[1].strip()
    for name in (normal, "COVID-19"):
        m = re.search(rf"{re.escape(name)} %?\d+[.,]\d%? %?\d+[.,]\d%? (.{{0,90}})", text)
        assert m and conflict[:20] in m.group(1), (name, m and m.group(0))


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_the_pdf_leads_with_the_signed_report_and_carries_the_ai_note_once(lang):
    """Issue 69: the AI table and heatmap filled page 1 and the signed report was on page 2.
    The signature and the report's sections are now on page 1, the AI appendix after them with
    the AI note — each of its lines once (those the scope section says are not repeated)."""
    from pypdf import PdfReader

    from medai.imaging.scope import describe, scope_for

    w = rw.WORDS[lang]
    film = {"No Finding": 0.05, "COVID-19": 0.94, "Pneumonia": 0.9, "Viral_Pneumonia": 0.8}
    payload = ai_result("cxr", film, OperatingPolicy(thresholds=CXR_THRESHOLDS))
    scope = scope_for("cxr", [*film, "Bacterial_Pneumonia"])
    payload["scope"] = scope.model_dump(mode="json")
    cannot = describe(scope, "cxr", lang)["cannot_detect"]
    likelihood = (
        "YZ önerisi: COVID-19 pnömonisi paterni olasılığı %94,0 — radyolog değerlendirmeli."
        if lang == "tr"
        else "AI suggestion: COVID-19 pneumonia pattern, likelihood 94.0% — for the radiologist."
    )
    impression = (
        "Sağ alt zonda konsolidasyon." if lang == "tr" else "Right lower zone consolidation."
    )
    sections = {"technique": "PA.", "findings": impression, "impression": impression}
    signed = [{"label": "COVID-19", "present": True, "source": "confirmed"}]
    r = report("cxr", lang, sections, [], payload, signed, ai_note=[likelihood, cannot])
    pdf = report_pdf(study("cxr", lang), r, MODEL, png(), png(1), "COVID-19", zone="UTC")
    first = " ".join((PdfReader(io.BytesIO(pdf)).pages[0].extract_text() or "").split())
    assert w["signed_by"] in first and impression in first
    assert first.index(impression) < first.index(w["ai_appendix"])
    text, _ = pdf_text(pdf)
    assert text.index(w["ai_appendix"]) < text.index(w["ai_note"]) < text.index(likelihood)
    assert text.count(likelihood) == 1
    assert text.count(cannot) == 1  # said by the scope section, not again in the note
