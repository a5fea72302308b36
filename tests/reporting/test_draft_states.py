"""The draft says what the decision is (issue 46): an undecided result names its candidates
without stating any of them, and a conflicting one (the normal label and a finding both above
their thresholds) says so in Turkish and English, whichever way the policy settled it —
undecided (never "no finding", never the finding stated) or the finding with the conflict flag.
Since issue 69 the report's text never speaks of the AI: why it did not decide is said in the
draft's AI note beside the editor, and the report's impression is left to the radiologist.
Read back by the same readers a signature's labels and ``consistency.contradictions`` use."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medai.core.task_registry import get as get_task
from medai.imaging.decision import OperatingPolicy, decide
from medai.reporting.consistency import contradictions
from medai.reporting.draft import draft_report
from medai.reporting.draft_input import Finding
from medai.reporting.findings import stated_labels, states_normal

# the bundled CXR model's operating points (assets/models/cxr-default/operating_points.json)
CXR_THRESHOLDS = {
    "Pneumonia": 0.584,
    "COVID-19": 0.089,
    "Viral_Pneumonia": 0.737,
    "Bacterial_Pneumonia": 0.41,
    "No Finding": 0.699,
}
# "No Finding" and COVID-19 both above their thresholds: the model contradicts itself
CONFLICT = {
    "No Finding": 0.8,
    "COVID-19": 0.5,
    "Viral_Pneumonia": 0.3,
    "Pneumonia": 0.4,
    "Bacterial_Pneumonia": 0.05,
}
SAID = {
    "tr": "Model görüntüyü ayrıca normal olarak da işaretledi (çelişkili sonuç)",
    "en": "The model also marked the image as normal (a conflicting result)",
}
UNDECIDED = {
    "tr": "YZ karar veremedi: COVID-19 pnömonisi paterni (olası tanı) eşiğin "
    "üzerinde, ancak model görüntüyü normal olarak da işaretledi; çelişkili sonuç",
    "en": "The AI could not decide: it found possible COVID-19 pneumonia pattern above "
    "threshold but also marked the image as normal (a conflicting result)",
}


def draft(task: str, probs: dict[str, float], policy: OperatingPolicy, lang: str, backend=None):
    d = decide(get_task(task), probs, policy)
    findings = [Finding(r.label, r.positive, r.probability, r.threshold) for r in d.labels]
    return d, draft_report(findings, None, backend, task=task, lang=lang, decision=d)


def text(out: dict) -> str:
    return f"{out['sections']['findings']} {out['sections']['impression']}"


def note(out: dict) -> str:
    return " ".join(out["ai_note"])


def agrees(out: dict, d, task: str, lang: str) -> bool:
    return contradictions(out["sections"], d, task, lang, out["ai_note"]) == []


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_a_conflict_made_undecided_says_so_and_states_neither_side(lang):
    d, out = draft("cxr", CONFLICT, OperatingPolicy(thresholds=CXR_THRESHOLDS), lang)
    assert d.state == "indeterminate" and d.indeterminate_reason == "conflict"
    assert d.candidates == ["No Finding", "COVID-19"]
    said = text(out)
    assert UNDECIDED[lang] in note(out), out["ai_note"]
    assert UNDECIDED[lang] not in said  # the AI's account is not the report's text
    assert out["sections"]["impression"] == ""  # the radiologist's to write
    # neither side is stated: a signature of this draft as it is learns no finding and no
    # normal study
    assert stated_labels(said) == set() and not states_normal(said)
    assert agrees(out, d, "cxr", lang)


@pytest.mark.parametrize(
    "lang, finding",
    [("tr", "COVID-19 pnömonisi paterni izlenmektedir."), ("en", "COVID-19 pneumonia pattern.")],
)
def test_a_conflict_settled_as_the_finding_states_it_with_the_conflict(lang, finding):
    policy = OperatingPolicy(thresholds=CXR_THRESHOLDS, normal_conflict="finding")
    d, out = draft("cxr", CONFLICT, policy, lang)
    assert d.state == "abnormal" and d.conflict == ["No Finding", "COVID-19"]
    assert out["sections"]["findings"].startswith(finding)
    assert SAID[lang] in note(out) and SAID[lang] not in text(out)
    assert out["sections"]["impression"] == ""  # a conflict's conclusion is the radiologist's
    said = text(out)
    assert "COVID-19" in stated_labels(said) <= set(d.positives) and not states_normal(said)
    assert agrees(out, d, "cxr", lang)
    # the text without its conflict sentence (the radiologist deleted the finding) is not
    # read as a normal study either
    assert not states_normal(SAID[lang] + ".")


@pytest.mark.parametrize(
    "lang, sentence",
    [
        (
            "tr",
            "YZ bu kesit için tek bir sınıfa karar veremedi: hipofiz tümörü ve menenjiom "
            "(olası tanılar); sınıflandırma radyoloğa bırakılmıştır.",
        ),
        (
            "en",
            "The AI could not decide on one class for this slice between possible pituitary "
            "tumour and possible meningioma; classification is left to the radiologist.",
        ),
    ],
)
def test_an_undecided_mri_names_its_candidates_without_stating_them(lang, sentence):
    """The tryout's MRI: pituitary 40.8 % against meningioma 36.1 %."""
    policy = OperatingPolicy(min_confidence=0.5, min_margin=0.1)
    d, out = draft(
        "mri",
        {"Pituitary": 0.408, "Meningioma": 0.361, "Glioma": 0.2, "No_Tumor": 0.031},
        policy,
        lang,
    )
    assert d.candidates == ["Pituitary", "Meningioma"]
    assert sentence in out["ai_note"] and sentence not in text(out)
    assert stated_labels(text(out)) == set() and not states_normal(text(out))
    assert agrees(out, d, "mri", lang)


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_an_undecided_mri_with_no_tumour_among_the_candidates_is_not_read_as_normal(lang):
    policy = OperatingPolicy(min_confidence=0.5, min_margin=0.1)
    d, out = draft(
        "mri", {"Glioma": 0.45, "No_Tumor": 0.4, "Meningioma": 0.1, "Pituitary": 0.05}, policy, lang
    )
    assert d.candidates == ["Glioma", "No_Tumor"]
    assert (
        "gliom (olası tanı) ya da tümör yok" if lang == "tr" else "possible glioma or no tumour"
    ) in note(out)
    assert stated_labels(text(out)) == set() and not states_normal(text(out))
    assert agrees(out, d, "mri", lang)


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_the_checker_finds_a_draft_that_hides_the_conflict_or_the_candidates(lang):
    d = decide(
        get_task("cxr"),
        CONFLICT,
        OperatingPolicy(thresholds=CXR_THRESHOLDS, normal_conflict="finding"),
    )
    hidden = {
        "findings": "COVID-19 pnömonisi paterni izlenmektedir."
        if lang == "tr"
        else "COVID-19 pneumonia pattern.",
        "impression": "",
    }
    assert contradictions(hidden, d, "cxr", lang, []) == [
        "a conflicting decision whose draft does not say so"
    ]
    mri = decide(
        get_task("mri"),
        {"Pituitary": 0.408, "Meningioma": 0.361, "Glioma": 0.2, "No_Tumor": 0.031},
        OperatingPolicy(min_confidence=0.5, min_margin=0.1),
    )
    vague = ["YZ karar veremedi." if lang == "tr" else "The AI could not decide."]
    assert contradictions({"findings": "", "impression": ""}, mri, "mri", lang, vague) == [
        "does not name Pituitary, a candidate of the undecided decision",
        "does not name Meningioma, a candidate of the undecided decision",
    ]


class SilentModel:
    """A test double for an LLM drafter (``LLMBackend``: ``name``, ``complete``) whose draft is
    grounded but never mentions the conflict."""

    name = "fake"

    def __init__(self, findings: str) -> None:
        self.findings, self.prompts = findings, []

    def complete(self, system: str, user: str) -> str:
        self.prompts.append(user)
        return json.dumps(
            {
                "technique": "Chest radiograph.",
                "findings": self.findings,
                "impression": self.findings,
                "recommendation": "Correlate.",
            }
        )


@pytest.mark.parametrize(
    "lang, finding",
    [("tr", "COVID-19 pnömonisi paterni izlenmektedir."), ("en", "COVID-19 pneumonia pattern.")],
)
def test_an_llm_draft_that_hides_the_conflict_has_it_said_in_the_ai_note(lang, finding):
    policy = OperatingPolicy(thresholds=CXR_THRESHOLDS, normal_conflict="finding")
    model = SilentModel(finding)
    d, out = draft("cxr", CONFLICT, policy, lang, backend=model)
    assert out["backend"] == "fake"
    assert out["sections"]["findings"] == finding  # the LLM's findings, nothing added
    assert SAID[lang] in note(out)
    assert agrees(out, d, "cxr", lang)
    assert "Conflict: No Finding, COVID-19 all passed their thresholds" in model.prompts[0]


def test_an_llm_is_told_which_labels_are_undecided():
    model = SilentModel("The AI could not decide.")
    draft("cxr", CONFLICT, OperatingPolicy(thresholds=CXR_THRESHOLDS), "en", backend=model)
    prompt = model.prompts[0]
    assert "- COVID-19: p=0.5, threshold=0.089, UNDECIDED" in prompt
    assert "- No Finding: p=0.8, threshold=0.699, UNDECIDED" in prompt
    assert "could not decide between: No Finding, COVID-19" in prompt


CXR = get_task("cxr")
DISEASES = [lab for lab in CXR.labels if lab != CXR.normal]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(DISEASES), min_size=1, max_size=4, unique=True),
    st.sampled_from(["indeterminate", "finding"]),
    st.sampled_from(["tr", "en"]),
    st.floats(0.55, 0.99),
)
def test_every_conflict_is_said_and_states_only_what_was_decided(passing, mode, lang, p):
    """Any set of findings passing beside "No Finding", either policy, either language."""
    probs = {lab: (p if lab in passing else 0.01) for lab in CXR.labels}
    probs[CXR.normal] = 0.9
    policy = OperatingPolicy(thresholds={lab: 0.5 for lab in CXR.labels}, normal_conflict=mode)
    d, out = draft("cxr", probs, policy, lang)
    assert d.conflict and CXR.normal in d.conflict
    assert agrees(out, d, "cxr", lang), (out["sections"], out["ai_note"])
    if d.state == "indeterminate":
        assert stated_labels(text(out)) == set() and not states_normal(text(out))
