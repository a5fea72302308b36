"""Does a draft state exactly the decided findings? Read back by the same finding extractors
the LLM safety check uses (English CheXpert-style, Turkish clause by clause).

A finding the decision holds must be stated; a finding it does not hold must not be (a parent
the stated finding implies — "pneumonia" inside "COVID-19 pneumonia pattern" — is not extra);
a normal decision states no finding, and an indeterminate one neither a finding nor normality.
The AI note of an undecided decision names its candidates (without stating them), that of a
conflicting one (the normal label and a finding both above their thresholds, whichever way the
policy settled it) says so, and that of a normal one says the model found none of its labels. Used by the property tests and by ``benchmarks/draft_consistency_benchmark.py``.
"""

from __future__ import annotations

import re

from medai.imaging.decision import Decision, ancestors
from medai.imaging.labels import space
from medai.reporting.findings import named_labels, positive_labels, positive_labels_tr
from medai.reporting.safety import _implied


def contradictions(
    sections: dict[str, str],
    decision: Decision,
    task: str,
    lang: str,
    note: list[str] | tuple[str, ...] = (),
) -> list[str]:
    """What the draft's findings and impression say that the decision does not (empty when
    they agree); ``note``: the draft's AI note, which says why the AI did not decide and that
    it found none of its labels (the report's text never speaks of the AI)."""
    spec = space(task)
    text = f"{sections.get('findings', '')} {sections.get('impression', '')}"
    said = positive_labels_tr(text) if lang == "tr" else positive_labels(text)
    said = (said & set(spec.labels)) - {spec.normal}
    held = set(decision.positives) - {spec.normal}
    allowed = held | _implied(held) | {a for lab in held for a in ancestors(spec, lab)}
    problems = [f"states {lab}, which the decision does not hold" for lab in sorted(said - allowed)]
    problems += [
        f"does not state {lab}, which the decision holds"
        for lab in sorted(set(decision.stated) - said)
    ]
    # the note says a model found none of its labels as what it looked for and did not find
    # (never "the lungs are clear": ``findings.calls_normal``)
    normal_words = {
        "tr": ("modelin aradığı bulgular saptanmadı",),
        "en": ("none of the findings the model looks for",),
    }[lang]
    said_of_ai = " ".join(note)
    says_normal = any(w in said_of_ai.lower() for w in normal_words)
    if decision.state == "normal" and not says_normal:
        problems.append("a normal decision whose draft does not say normal")
    if decision.state != "normal" and says_normal:
        problems.append(f"a {decision.state} decision whose draft says normal")
    return problems + state_problems(said_of_ai, decision, task)


_CONFLICT_WORDS = ("çelişki", "conflict", "contradict")


def state_problems(text: str, decision: Decision, task: str) -> list[str]:
    """What a draft leaves unsaid of an undecided or conflicting decision: a candidate it does
    not name, a conflict it does not mention."""
    normal = space(task).normal
    problems = []
    if decision.state == "indeterminate":
        named = named_labels(text)
        problems += [
            f"does not name {lab}, a candidate of the undecided decision"
            for lab in decision.candidates
            if lab != normal and lab not in named
        ]
    if decision.conflict and not any(w in text.lower() for w in _CONFLICT_WORDS):
        problems.append("a conflicting decision whose draft does not say so")
    return problems


# The report's register (issue 69): the "(YZ önerisi)" marks on what the AI concluded, which the
# sign dialog removes when the radiologist adopts the text, and the words only a sentence about
# the AI itself says — the meta text a radiologist had to delete from every draft in the reading
# day (scope, "YZ karar veremedi", "uzaklık 2,63 > 2,21", "20 kesitinden 20 kesitini
# değerlendirdi", "kaynaklar: …", "radyolog değerlendirmesi …"). Read by the property test of
# the drafts' sections and by ``benchmarks/draft_edit_benchmark.py``.
AI_MARK = re.compile(r" ?\((?:YZ önerisi|AI suggestion)\)")
AI_META = re.compile(
    r"\bYZ\b|\bAI\b|yapay zek|\bmodel|kapsam|scope|karar ver|decide|olasılı|likelihood|"
    r"%|eşik|threshold|uzaklık|distance|kesitinden|slices? of|değerlendirdi|\bread\b|"
    r"kaynak|source|\[\d+\]|radyolog|radiologist|çelişki|conflict|belirsiz|indeterminate",
    re.IGNORECASE,
)


def ai_meta(text: str) -> list[str]:
    """The words about the AI itself left in a report text once its marks are set aside."""
    return AI_META.findall(AI_MARK.sub("", text))
