"""No draft calls a film normal, and every draft's AI note says what the model does not assess: a
study in which the model found none of its labels is drafted as "(the findings the model looks
for) izlenmedi", in Turkish and English, for the chest and the brain MRI task; an out-of-scope
flag comes first in the note; the report's text never holds the AI's account of itself
(issue 69), and the report readers never take it for stated findings."""

from __future__ import annotations

import json

import pytest

from medai.imaging.scope import OutOfScope, scope_for

CXR = ["Pneumonia", "COVID-19", "Viral_Pneumonia", "Bacterial_Pneumonia", "No Finding"]
MRI = ["Glioma", "Meningioma", "Pituitary", "No_Tumor"]
# what the drafts said before (task_definitions.py and templates.py): each calls a film normal
OLD_NORMAL = (
    "Akciğerler temizdir",
    "The lungs are clear",
    "Akut akciğer patolojisi saptanmadı",
    "No acute lung abnormality",
    "Tümör düşündüren bulgu yok",
    "No tumour suggested",
    "No tumour is suggested",
    "Anormallik saptanmadı",
    "No abnormality.",
)


def _rows(task: str, probs: dict[str, float], threshold: float = 0.5) -> list[dict]:
    return [{"label": k, "probability": v, "threshold": threshold} for k, v in probs.items()]


CASES = {
    "cxr": {
        "normal": {
            "Pneumonia": 0.05,
            "COVID-19": 0.02,
            "Viral_Pneumonia": 0.03,
            "Bacterial_Pneumonia": 0.04,
            "No Finding": 0.95,
        },
        "abnormal": {
            "Pneumonia": 0.97,
            "COVID-19": 0.96,
            "Viral_Pneumonia": 0.9,
            "Bacterial_Pneumonia": 0.02,
            "No Finding": 0.01,
        },
    },
    "mri": {
        "normal": {"Glioma": 0.02, "Meningioma": 0.03, "Pituitary": 0.01, "No_Tumor": 0.94},
        "abnormal": {"Glioma": 0.91, "Meningioma": 0.05, "Pituitary": 0.02, "No_Tumor": 0.02},
    },
}


def _draft(task, state, lang, flagged=False, backend=None):
    from medai.reporting.draft import draft_report, parse_decided

    found, decision = parse_decided(_rows(task, CASES[task][state]), task)
    oos = OutOfScope(
        flagged=flagged,
        score=3.1 if flagged else 1.0,
        threshold=2.2,
        reason="unlike_training" if flagged else None,
        detector="feature_distance",
    )
    scope = scope_for(task, CXR if task == "cxr" else MRI, oos)
    return draft_report(
        found, None, backend, task=task, lang=lang, decision=decision, scope=scope
    ), decision


@pytest.mark.parametrize("lang", ["tr", "en"])
@pytest.mark.parametrize("task", ["cxr", "mri"])
@pytest.mark.parametrize("state", ["normal", "abnormal"])
def test_no_draft_calls_a_film_normal(task, state, lang):
    from medai.reporting.findings import calls_normal, stated_labels

    out, decision = _draft(task, state, lang)
    assert decision.state == state
    s = out["sections"]
    text = " ".join(s.values())
    for old in OLD_NORMAL:
        assert old.lower() not in text.lower(), (old, text)
    assert calls_normal(f"{s['findings']} {s['impression']}") == [], s
    # what the model does not assess is said beside the report, in the AI note, not in it
    said_not = (
        "YZ modelinin değerlendirme kapsamında değildir"
        if lang == "tr"
        else "The AI model does not assess"
    )
    assert any(said_not in line for line in out["ai_note"]) and said_not not in text
    said = stated_labels(f"{s['findings']}\n{s['impression']}")
    normal = {"No Finding", "No_Tumor"}
    assert set(decision.stated) - normal <= said <= set(decision.positives) - normal
    if state == "normal":  # what it looked for, by name, not seen
        looked = {"cxr": ("pnömoni", "pneumonia"), "mri": ("gliom", "glioma")}[task]
        assert looked[0 if lang == "tr" else 1] in s["findings"].lower()
        assert s["findings"].endswith("izlenmedi." if lang == "tr" else ".")
        assert s["impression"].endswith("(YZ önerisi)." if lang == "tr" else "(AI suggestion).")
        assert looked[0 if lang == "tr" else 1] in s["impression"].lower()


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_the_turkish_and_english_normal_drafts_read_as_a_radiologist_writes(lang):
    out, _ = _draft("cxr", "normal", lang)
    s = out["sections"]
    if lang == "tr":
        assert s == {
            "technique": "Akciğer grafisi.",
            "findings": "Pnömoni, COVID-19 pnömonisi paterni, viral pnömoni paterni ve "
            "bakteriyel pnömoni paterni izlenmedi.",
            "impression": "Pnömoni, COVID-19 pnömonisi paterni, viral pnömoni paterni ve "
            "bakteriyel pnömoni paterni izlenmedi (YZ önerisi).",
            "recommendation": "Klinik korelasyon önerilir.",
        }
        assert out["ai_note"][:2] == [
            "YZ önerisi: modelin aradığı bulgular saptanmadı; incelemenin diğer bulgular "
            "açısından değerlendirilmesi radyoloğa aittir.",
            out["ai_note"][1],
        ]
        assert out["ai_note"][1].startswith(
            "Tüberküloz, akciğer nodülü veya kitlesi, pnömotoraks, plevral efüzyon, kalp boyutu "
            "(kardiyomegali)"
        )
    else:
        assert s["findings"] == (  # three at a time, as the negation of a report reads
            "No pneumonia, COVID-19 pneumonia pattern or viral pneumonia pattern. "
            "No bacterial pneumonia pattern."
        )
        assert out["ai_note"][1].startswith(
            "The AI model does not assess tuberculosis, lung nodules or masses, pneumothorax"
        )


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_an_out_of_scope_flag_comes_first_in_the_ai_note_and_the_impression_is_left_open(lang):
    out, _ = _draft("cxr", "abnormal", lang, flagged=True)
    s, note = out["sections"], out["ai_note"]
    head = "Kapsam dışı (YZ)" if lang == "tr" else "Out of scope (AI)"
    assert note[0].startswith(head)
    assert ("3,10 > 2,20" if lang == "tr" else "3.10 > 2.20") in note[0]
    assert head not in " ".join(s.values()) and "2,20" not in s["findings"]
    assert s["impression"] == "" and s["recommendation"] == ""


def test_a_draft_from_a_persons_findings_has_no_scope_but_never_calls_normal():
    """Findings typed by a person carry no model scope: nothing is said of one, and a normal
    decision is still what was looked for, not a normal film."""
    from medai.reporting.draft import draft_report, parse_decided
    from medai.reporting.findings import calls_normal

    found, decision = parse_decided(_rows("cxr", CASES["cxr"]["normal"]), "cxr")
    out = draft_report(found, None, task="cxr", lang="tr", decision=decision)
    s = out["sections"]
    assert "kapsamında değildir" not in " ".join([s["findings"], *out["ai_note"]])
    assert calls_normal(f"{s['findings']} {s['impression']}") == []


class _Backend:
    name = "fake-llm"

    def __init__(self, findings: str, impression: str) -> None:
        self.answer = json.dumps(
            {
                "technique": "PA akciğer grafisi.",
                "findings": findings,
                "impression": impression,
                "recommendation": "Klinik korelasyon önerilir.",
            },
            ensure_ascii=False,
        )

    def complete(self, system: str, user: str) -> str:
        assert "Never call the image normal" in system
        return self.answer


def test_an_llm_draft_that_calls_the_film_normal_is_replaced_by_the_template():
    out, _ = _draft(
        "cxr", "normal", "tr", backend=_Backend("Akciğerler temizdir.", "Normal grafi.")
    )
    assert out["backend"] == "template"
    assert any("normal" in w for w in out["warnings"]), out["warnings"]
    assert out["sections"]["findings"].startswith("Pnömoni, COVID-19 pnömonisi paterni")


def test_an_llm_draft_has_the_scope_sentences_in_its_ai_note():
    out, _ = _draft(
        "cxr",
        "abnormal",
        "tr",
        flagged=True,
        backend=_Backend(
            "Sağ alt zonda COVID-19 pnömonisi paterni izlenmektedir.",
            "COVID-19 pnömonisi ile uyumlu görünüm (YZ önerisi).",
        ),
    )
    s = out["sections"]
    assert out["backend"] == "fake-llm"
    assert s["findings"] == "Sağ alt zonda COVID-19 pnömonisi paterni izlenmektedir."
    assert out["ai_note"][0].startswith("Kapsam dışı (YZ)")
    assert any(
        line.endswith("YZ modelinin değerlendirme kapsamında değildir.") for line in out["ai_note"]
    )


def test_the_drafter_takes_the_scope_from_the_models_result(tiny_imaging_dir, tmp_path):
    from helpers.builders import gray_png
    from medai.reporting.drafter import Drafter

    drafter = Drafter(embeddings=False, models={"cxr": tiny_imaging_dir})
    for lang, said in (("tr", "kapsamında değildir"), ("en", "does not assess")):
        d = drafter.draft(gray_png(tmp_path / f"{lang}.png", 9), task="cxr", lang=lang)
        word = "tüberküloz" if lang == "tr" else "tuberculosis"
        note = " ".join(d.ai_note)
        assert said in note and word in note.lower() and said not in d.sections.findings
