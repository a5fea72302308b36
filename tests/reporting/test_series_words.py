"""The draft says what the series reading found (issue 67): where the slices of a small lesion
are and why the AI did not decide, and every series of the study, read or not and why."""

from __future__ import annotations

import pytest

from medai.core.task_registry import get as get_task
from medai.imaging.decision import OperatingPolicy, decide
from medai.imaging.series_rule import _small_lesion
from medai.reporting.draft import draft_report
from medai.reporting.draft_input import Finding
from medai.reporting.series_words import series_sentences, small_lesion_sentence

MRI = get_task("mri")
UNDECIDED = {
    "label": "Glioma",
    "instances": ["1.2.10", "1.2.11"],
    "numbers": [10, 11],
    "needed": 3,
    "min_probability": 0.9,
}
ACCOUNTS = [
    {
        "series_uid": "1.1",
        "series_number": 1,
        "description": "LOC",
        "slices": 3,
        "read": False,
        "reason": "localizer",
    },
    {
        "series_uid": "1.2",
        "series_number": 3,
        "description": "AX T2",
        "slices": 20,
        "read": True,
        "state": "indeterminate",
        "decides": True,
    },
    {
        "series_uid": "1.3",
        "series_number": 5,
        "description": "DWI",
        "slices": 20,
        "read": False,
        "reason": "out_of_distribution",
    },
]


def _small_lesion_draft(lang: str, accounts=ACCOUNTS) -> dict:
    probs = {"Glioma": 0.02, "Meningioma": 0.005, "Pituitary": 0.005, "No_Tumor": 0.97}
    normal = decide(MRI, probs, OperatingPolicy(min_confidence=0.5))
    decision = _small_lesion(normal, "Glioma", "No_Tumor")
    findings = [Finding(r.label, r.positive, r.probability, r.threshold) for r in decision.labels]
    image = {"series_slices": [20, 20], "series_undecided": UNDECIDED}
    if accounts:
        image["series_accounts"] = accounts
    return draft_report(findings, None, None, task="mri", lang=lang, decision=decision, image=image)


def test_the_small_lesion_sentence_says_where_and_why():
    tr = small_lesion_sentence(UNDECIDED, "mri", "tr")
    assert tr.startswith("2 komşu kesitte (10–11) gliom lehine bulgu")
    assert "karar kuralı için yetersiz" in tr and "radyolog değerlendirmeli" in tr
    en = small_lesion_sentence(UNDECIDED, "mri", "en")
    assert "2 neighbouring slices (10–11)" in en and "did not decide" in en
    assert "(4, 11)" in small_lesion_sentence({**UNDECIDED, "numbers": [4, 11]}, "mri", "tr")
    assert small_lesion_sentence({**UNDECIDED, "numbers": [7]}, "mri", "tr").startswith(
        "Bir kesitte (7)"
    )


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_a_small_lesion_draft_names_the_slices_and_no_diagnosis(lang):
    out = _small_lesion_draft(lang)
    s = out["sections"]
    assert "10–11" in s["findings"] and "gliom" in s["findings"].lower()
    # the finding is the report's; why the AI did not decide is the AI note's
    assert s["findings"].startswith(
        "2 komşu kesitte (10–11) gliom lehine görünüm (YZ önerisi)."
        if lang == "tr"
        else "Appearance suggesting glioma on 2 neighbouring slices (10–11) (AI suggestion)."
    )
    why = "karar kuralı" if lang == "tr" else "decision rule"
    assert why not in s["findings"] and any(why in line for line in out["ai_note"])
    no_tumour = "tümör tipleri" if lang == "tr" else "tumour types"
    assert no_tumour not in s["findings"] and no_tumour not in s["impression"], s
    assert "gliom" not in s["impression"].lower(), s["impression"]


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_the_ai_note_names_every_series_and_why_one_was_not_read(lang):
    out = _small_lesion_draft(lang)
    assert out["sections"]["technique"] == (
        "Beyin MR serisi." if lang == "tr" else "Brain MRI series."
    )
    note = " ".join(out["ai_note"])
    assert ("3 serisinden 1" in note) if lang == "tr" else ("1 of the study's 3" in note)
    assert "LOC" in note and "DWI" in note and "AX T2" in note
    assert ("lokalizör" in note) if lang == "tr" else ("localizer" in note)
    assert ("20 kesitinden 20" in note) if lang == "tr" else ("20 of the series' 20" in note)


def test_a_single_series_study_gets_no_series_sentence():
    assert series_sentences(ACCOUNTS[1:2], "tr") == []
    assert "serisinden" not in " ".join(_small_lesion_draft("tr", accounts=None)["ai_note"])
