"""The AI advises nothing it cannot ground (issue 67, item 5): no test or treatment advice in any
draft (the template's words, the passages it cites, an LLM's text), an impression that states a
pattern's likelihood as a suggestion and never a diagnosis, and none at all for an out-of-scope,
undecided or conflicting result — over random results of every imaging task (hypothesis), in
Turkish and English."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medai.core.task_registry import all_tasks
from medai.imaging.decision import OperatingPolicy, decide
from medai.imaging.scope import OutOfScope, look_alikes, of_payload, scope_for
from medai.reporting.consistency import contradictions
from medai.reporting.draft import draft_report
from medai.reporting.draft_input import Finding
from medai.reporting.findings import named_labels
from medai.reporting.knowledge import builtin_chunks
from medai.reporting.retrieve import HybridRetriever
from medai.reporting.safety import advice_in, is_advice, without_advice

TASKS = list(all_tasks("imaging"))
RETRIEVER = HybridRetriever(builtin_chunks(), use_embeddings=False)
# what asserts a diagnosis in an impression
ASSERTS = re.compile(r"ile uyumlu|consistent with|compatible with|diagnostic of|tanısı konul", re.I)

ADVICE = [
    "Yerel politikaya göre RT-PCR veya antijen testi önerilir.",
    "Enfeksiyon kontrol önlemleri önerilir.",
    "Solunum izolasyonu önerilir.",
    "Kontrastlı MR önerilir.",
    "Recommend RT-PCR or antigen testing and infection-control measures.",
    "Airborne isolation while active disease is suspected.",
    "Recommend contrast-enhanced MRI.",
    "Follow-up imaging after 6 to 8 weeks to confirm resolution.",
    "6-8 hafta sonra kontrol grafisi önerilir.",
    "Toraks BT önerilir.",
    "Recommend chest CT.",
    "Biyopsi yapılmalıdır.",
    "A biopsy should be considered.",
    "Referral to a neuro-oncology multidisciplinary team.",
    "Antibiyotik tedavisi başlanmalıdır.",
    "Ekokardiyografi önerilir.",
]
NOT_ADVICE = [
    "Radyolog değerlendirmesi ve klinik korelasyon önerilir; kaynaklar: COVID-19 [1].",
    "Radiologist assessment and clinical correlation are recommended.",
    "Belirsiz (YZ önerisi): radyolog değerlendirmesi gerekir.",
    "COVID-19 pnömonisi paterni izlenmektedir.",
    "Beyin MR serisi; YZ modeli serinin 20 kesitinden 12 kesitini değerlendirdi.",
    "Brain MRI (single slice).",
    "The appearance overlaps with other viral pneumonias, so imaging does not confirm it.",
]


@pytest.mark.parametrize("sentence", ADVICE)
def test_advice_is_recognised_in_both_languages(sentence):
    assert is_advice(sentence)
    assert without_advice(f"Konsolidasyon izlenmektedir. {sentence}") == (
        "Konsolidasyon izlenmektedir."
    )


@pytest.mark.parametrize("sentence", NOT_ADVICE)
def test_what_a_draft_may_say_is_not_advice(sentence):
    assert not is_advice(sentence)


def _strings(value) -> list[str]:
    """Every string inside a module constant (tuples, lists, dicts of them)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _strings(v)]
    if isinstance(value, (tuple, list)):
        return [x for v in value for x in _strings(v)]
    return []


def test_no_sentence_the_ai_writes_from_is_advice():
    """Every template sentence, phrase, label name and scope sentence the drafts are made of."""
    from medai.imaging import scope
    from medai.reporting import comparison, templates

    said = []
    for module in (templates, scope, comparison):
        for name, value in vars(module).items():
            if name.isupper():
                said += _strings(value)
    for task in TASKS:
        said += _strings(list(task.phrases.values()))
        said += [task.label_name(lab, lang) for lab in task.labels for lang in ("tr", "en")]
        for key in ("technique", "technique_with_view", "technique_series", "normal"):
            said += [task.draft.get(key, lang) or "" for lang in ("tr", "en")]
        said += _strings(task.draft.normal_impression) + _strings(task.draft.indeterminate)
    assert len(said) > 100
    assert [s for s in said if advice_in(s)] == []


@st.composite
def result(draw):
    """A random result of a random imaging task: probabilities, a policy (conflict settled
    either way; MRI confidence and margin rules), and its scope flagged or not."""
    task = draw(st.sampled_from(TASKS))
    n = len(task.labels)
    if task.multilabel:
        probs = draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n))
        thr = draw(st.lists(st.floats(0.02, 0.98), min_size=n, max_size=n))
        policy = OperatingPolicy(
            thresholds=dict(zip(task.labels, thr, strict=True)),
            normal_conflict=draw(st.sampled_from(["indeterminate", "finding"])),
        )
    else:
        raw = draw(st.lists(st.floats(0.001, 1.0), min_size=n, max_size=n))
        probs = [p / sum(raw) for p in raw]
        policy = OperatingPolicy(
            thresholds={lab: 0.5 for lab in task.labels},
            min_confidence=draw(st.sampled_from([0.0, 0.5, 0.8])),
            min_margin=draw(st.sampled_from([0.0, 0.1])),
        )
    decision = decide(task, dict(zip(task.labels, map(float, probs), strict=True)), policy)
    flagged = draw(st.booleans())
    oos = OutOfScope(flagged=flagged, score=3.0, threshold=2.0, reason="unlike_training")
    scope = scope_for(task.name, task.labels, oos if flagged else None)
    return task, decision, scope


def _draft(task, decision, scope, lang, backend=None):
    findings = [Finding(r.label, r.positive, r.probability, r.threshold) for r in decision.labels]
    return draft_report(
        findings, RETRIEVER, backend, task=task.name, lang=lang, decision=decision, scope=scope
    )


@settings(max_examples=150, deadline=None)
@given(result(), st.sampled_from(["tr", "en"]))
def test_no_draft_advises_a_test_or_treatment_or_asserts_a_diagnosis(r, lang):
    task, decision, scope = r
    out = _draft(task, decision, scope, lang)
    sections = out["sections"]
    for name, text in sections.items():
        assert advice_in(text) == [], (name, text)
    for line in out["ai_note"]:  # the AI's account beside the editor advises nothing either
        assert advice_in(line) == [], line
    for cited in out["citations"]:  # the passages a reader is pointed to
        assert advice_in(cited["text"]) == [], cited["text"]
    assert not ASSERTS.search(sections["impression"]), sections["impression"]
    assert contradictions(sections, decision, task.name, lang, out["ai_note"]) == [], sections
    impression_names = named_labels(sections["impression"]) & set(task.labels)
    note = " ".join(out["ai_note"])
    if scope.out_of_scope.flagged or decision.state == "indeterminate" or decision.conflict:
        # no diagnosis at all: not even a candidate or the flagged image's finding
        assert impression_names - {task.normal} == set(), sections["impression"]
        assert sections["impression"] == ""  # the radiologist's conclusion to write
    elif decision.stated and decision.state != "normal":
        # a suggestion, marked; the model's probability and what it cannot tell apart are
        # the AI note's
        assert sections["impression"].endswith(
            "(YZ önerisi)." if lang == "tr" else "(AI suggestion)."
        )
        assert "%" not in sections["impression"] and "%" in note
        if scope.cannot_tell_apart:
            said = "ayırt edemez" if lang == "tr" else "cannot tell"
            assert said in note and said not in sections["impression"]


class _AdvisingLLM:
    """A test double for an LLM backend (``name``, ``complete``) whose draft is grounded in the
    findings but advises tests and treatment in every section."""

    name = "advising"

    def __init__(self, findings: str, lang: str) -> None:
        advice = {
            "tr": "RT-PCR testi ve izolasyon önerilir. Kontrastlı MR önerilir.",
            "en": "Recommend RT-PCR and isolation. Recommend contrast-enhanced MRI.",
        }[lang]
        self.answer = json.dumps(
            {
                "technique": "Chest radiograph.",
                "findings": f"{findings} {advice}",
                "impression": f"{findings} {advice}",
                "recommendation": f"{advice} [1]",
            },
            ensure_ascii=False,
        )

    def complete(self, system: str, user: str) -> str:
        self.prompt = user
        return self.answer


@pytest.mark.parametrize(
    "lang, finding",
    [("tr", "COVID-19 pnömonisi paterni izlenmektedir."), ("en", "COVID-19 pneumonia pattern.")],
)
def test_an_llm_draft_keeps_no_advice_and_the_templates_impression(lang, finding):
    cxr = next(t for t in TASKS if t.name == "cxr")
    probs = {lab: 0.01 for lab in cxr.labels}
    probs["COVID-19"] = probs["Pneumonia"] = 0.87
    decision = decide(cxr, probs, OperatingPolicy(thresholds={lab: 0.5 for lab in cxr.labels}))
    assert decision.state == "abnormal" and "COVID-19" in decision.stated
    llm = _AdvisingLLM(finding, lang)
    out = _draft(cxr, decision, scope_for("cxr", cxr.labels), lang, backend=llm)
    assert out["backend"] == "advising", out["warnings"]
    assert "RT-PCR" not in llm.prompt and "infection-control" not in llm.prompt  # passages
    text = " ".join(out["sections"].values())
    assert advice_in(text) == [] and "RT-PCR" not in text, out["sections"]
    assert out["sections"]["findings"].startswith(finding)
    assert out["sections"]["impression"] == (
        "COVID-19 pnömonisi paterni (YZ önerisi)."
        if lang == "tr"
        else "COVID-19 pneumonia pattern (AI suggestion)."
    )
    note = " ".join(out["ai_note"])
    assert "87,0" in note or "87.0" in note
    assert advice_in(note) == []


def _bundled_cxr_result(probs: dict[str, float], flagged: bool):
    """A result of the bundled chest model's labels as the issue's films read: COVID-19."""
    labels = ["Pneumonia", "COVID-19", "Viral_Pneumonia", "Bacterial_Pneumonia", "No Finding"]
    decision = decide(
        next(t for t in TASKS if t.name == "cxr"),
        {lab: probs.get(lab, 0.01) for lab in labels},
        OperatingPolicy(thresholds={lab: 0.5 for lab in labels}),
    )
    oos = OutOfScope(flagged=True, score=2.9, threshold=2.2, reason="unlike_training")
    return decision, scope_for("cxr", labels, oos if flagged else None)


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_an_ards_or_tb_film_read_covid_is_a_suggestion_naming_what_the_model_cannot_tell_apart(
    lang,
):
    """Issue 67: ARDS, cardiomegaly and TB films were drafted "COVID-19 pnömonisi paterni ile
    uyumlu" with RT-PCR and infection-control advice; the TB film was flagged out of scope yet
    its impression named COVID-19."""
    cxr = next(t for t in TASKS if t.name == "cxr")
    read = {"COVID-19": 0.94, "Pneumonia": 0.9}
    decision, scope = _bundled_cxr_result(read, flagged=False)
    out = _draft(cxr, decision, scope, lang)
    s, note = out["sections"], " ".join(out["ai_note"])
    assert "ile uyumlu" not in s["impression"] and "consistent with" not in s["impression"]
    assert "RT-PCR" not in " ".join(s.values()) and advice_in(" ".join(s.values())) == []
    assert s["impression"].endswith("(YZ önerisi)." if lang == "tr" else "(AI suggestion).")
    # the likelihood and the patterns the model cannot tell apart: in the AI note beside it
    assert (
        "YZ önerisi: COVID-19 pnömonisi paterni olasılığı %94,0 — radyolog değerlendirmeli."
        if lang == "tr"
        else "AI suggestion: COVID-19 pneumonia pattern, likelihood 94.0% — for the radiologist"
    ) in note
    for pattern in ("ARDS", "tüberküloz" if lang == "tr" else "tuberculosis"):
        assert pattern in note
    assert "kardiyomegali" in note or "cardiomegaly" in note
    # flagged out of scope (the TB film): the impression names no diagnosis, and the note
    # opens with the flag
    decision, scope = _bundled_cxr_result(read, flagged=True)
    out = _draft(cxr, decision, scope, lang)
    s = out["sections"]
    assert "COVID" not in s["impression"] and not named_labels(s["impression"]), s["impression"]
    assert out["ai_note"][0].startswith("Kapsam dışı (YZ)" if lang == "tr" else "Out of scope (AI)")


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_a_meningioma_series_is_not_advised_a_contrast_mr(lang):
    """Issue 67: a post-contrast meningioma series ("AX T1 POST GD") was drafted "kontrastlı MR
    önerilir" (the knowledge base's advice, taken as the recommendation)."""
    mri = next(t for t in TASKS if t.name == "mri")
    probs = {"Glioma": 0.02, "Meningioma": 0.95, "Pituitary": 0.02, "No_Tumor": 0.01}
    decision = decide(mri, probs, OperatingPolicy(thresholds={lab: 0.5 for lab in mri.labels}))
    out = _draft(mri, decision, scope_for("mri", mri.labels), lang)
    text = " ".join(out["sections"].values()).lower()
    assert "kontrastlı" not in text and "contrast" not in text, out["sections"]
    assert out["citations"] and all(advice_in(c["text"]) == [] for c in out["citations"])


def test_the_scope_says_which_patterns_the_model_cannot_tell_apart():
    bundled = ["Pneumonia", "COVID-19", "Viral_Pneumonia", "Bacterial_Pneumonia", "No Finding"]
    assert look_alikes("cxr", bundled) == [
        "ards",
        "tuberculosis",
        "other_infections",
        "pulmonary_oedema",
        "cardiomegaly",
    ]
    # a model taught tuberculosis and cardiomegaly tells them apart; one without any label
    # they are taken for has none
    assert "tuberculosis" not in look_alikes("cxr", [*bundled, "Tuberculosis", "Cardiomegaly"])
    assert look_alikes("cxr", ["Effusion", "No Finding"]) == []
    assert look_alikes("mri", ["Glioma", "Meningioma", "Pituitary", "No_Tumor"])
    # a result stored before look-alikes were said gets them from its task and labels
    old = scope_for("cxr", bundled).model_dump(mode="json")
    del old["cannot_tell_apart"]
    payload = {"task": "cxr", "scope": old, "findings": []}
    assert of_payload(payload).cannot_tell_apart == look_alikes("cxr", bundled)
