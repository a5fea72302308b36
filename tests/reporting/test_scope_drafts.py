"""No draft calls a film normal, and every draft says what the model does not assess: a study in
which the model found none of its labels is drafted as "the findings the model looks for (…)
were not found", in Turkish and English, for the chest and the brain MRI task; an out-of-scope
flag comes first; the report readers never take the scope sentence for stated findings."""

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
    # what the model does not assess is said, and is not read as stated findings
    if lang == "tr":
        assert "YZ modelinin değerlendirme kapsamında değildir" in s["findings"]
    else:
        assert "The AI model does not assess" in s["findings"]
    said = stated_labels(f"{s['findings']}\n{s['impression']}")
    normal = {"No Finding", "No_Tumor"}
    assert set(decision.stated) - normal <= said <= set(decision.positives) - normal
    if state == "normal":  # what it looked for and did not find, by name
        looked = {"cxr": ("pnömoni", "pneumonia"), "mri": ("gliom", "glioma")}[task]
        assert looked[0 if lang == "tr" else 1] in s["findings"].lower()
        assert ("aradığı" if lang == "tr" else "looks for") in s["findings"]
        assert ("YZ önerisi" if lang == "tr" else "AI suggestion") in s["impression"]


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_the_turkish_and_english_normal_drafts_read_as_a_radiologist_writes(lang):
    out, _ = _draft("cxr", "normal", lang)
    s = out["sections"]
    if lang == "tr":
        assert s["findings"].startswith(
            "YZ modelinin aradığı bulgular (pnömoni, COVID-19 pnömonisi paterni, viral pnömoni "
            "paterni ve bakteriyel pnömoni paterni) saptanmadı. Tüberküloz, akciğer nodülü veya "
            "kitlesi, pnömotoraks, plevral efüzyon, kalp boyutu (kardiyomegali)"
        )
        assert s["impression"].startswith("YZ modelinin aradığı bulgular saptanmadı (YZ önerisi)")
    else:
        assert s["findings"].startswith(
            "None of the findings the AI model looks for (pneumonia, COVID-19 pneumonia pattern, "
            "viral pneumonia pattern and bacterial pneumonia pattern) was detected. The AI model "
            "does not assess tuberculosis, lung nodules or masses, pneumothorax"
        )


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_an_out_of_scope_flag_comes_first_in_the_findings_and_in_the_impression(lang):
    out, _ = _draft("cxr", "abnormal", lang, flagged=True)
    s = out["sections"]
    head = "Kapsam dışı (YZ)" if lang == "tr" else "Out of scope (AI)"
    assert s["findings"].startswith(head)
    assert ("3,10 > 2,20" if lang == "tr" else "3.10 > 2.20") in s["findings"]
    assert ("kapsamı dışında" if lang == "tr" else "outside the AI model's scope") in s[
        "impression"
    ]


def test_a_draft_from_a_persons_findings_has_no_scope_but_never_calls_normal():
    """Findings typed by a person carry no model scope: nothing is said of one, and a normal
    decision is still what was looked for, not a normal film."""
    from medai.reporting.draft import draft_report, parse_decided
    from medai.reporting.findings import calls_normal

    found, decision = parse_decided(_rows("cxr", CASES["cxr"]["normal"]), "cxr")
    s = draft_report(found, None, task="cxr", lang="tr", decision=decision)["sections"]
    assert "kapsamında değildir" not in s["findings"]
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
    assert out["sections"]["findings"].startswith("YZ modelinin aradığı bulgular")


def test_an_llm_draft_gets_the_scope_sentences_it_left_out():
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
    assert s["findings"].startswith("Kapsam dışı (YZ)")
    assert s["findings"].endswith("YZ modelinin değerlendirme kapsamında değildir.")


def test_the_drafter_takes_the_scope_from_the_models_result(tiny_imaging_dir, tmp_path):
    from helpers.builders import gray_png
    from medai.reporting.drafter import Drafter

    drafter = Drafter(embeddings=False, models={"cxr": tiny_imaging_dir})
    for lang, said in (("tr", "kapsamında değildir"), ("en", "does not assess")):
        d = drafter.draft(gray_png(tmp_path / f"{lang}.png", 9), task="cxr", lang=lang)
        word = "tüberküloz" if lang == "tr" else "tuberculosis"
        assert said in d.sections.findings and word in d.sections.findings.lower()
