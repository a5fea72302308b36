"""The comparison with the patient's prior study, as the AI draft says it.

The platform finds the prior (the latest *signed* study of the same patient and the same task)
and gives its date and what its signer decided of each label; this module compares that with
today's AI decision and writes one sentence in the draft's language:

    Önceki tetkik (12.03.2025) ile karşılaştırıldı (YZ önerisi): yeni: kardiyomegali —
    iki tetkikte de var (boyut karşılaştırması için ölçüm yok): pnömotoraks — düzelen:
    plevral efüzyon.

- **new**: present today (the AI's decision), not present in the prior's signed findings;
- **on both** (``unchanged``): present in both. Labels say nothing of size: a finding present
  on both may have grown, so the sentence never says "değişmeyen" (unchanged); it says there
  were no measurements to compare sizes (issue 68: a visibly worse COVID film was drafted
  "unchanged");
- **resolved**: present in the prior's signed findings, decided absent today;
- **undecided today**: present before, and today the AI could not decide on it.

The normal label is never compared, and a label implied by a more specific one in the same group
is left out ("bakteriyel pnömoni", not also "pnömoni"). No prior, no sentence. A prior whose
signature recorded no label decisions is named, and said not to have been compared.

The sentence speaks of two studies, not only of today's: the report readers
(``reporting.findings``) skip it (``COMPARISON_SENTENCE``), as they skip the scope's, so a
"resolved" finding is never read back as present and the findings the draft states elsewhere
are the ones a signature learns from.
"""

from __future__ import annotations

import re
from typing import Any

from medai.imaging.decision import Decision
from medai.imaging.labels import space
from medai.reporting.phrases import phrase

WORDS = {
    "tr": {
        "head": "Önceki tetkik ({date}) ile karşılaştırıldı (YZ önerisi): ",
        "new": "yeni: {labels}",
        # labels on both, never "unchanged": without measurements the sizes are not compared
        "unchanged": "iki tetkikte de var (boyut karşılaştırması için ölçüm yok): {labels}",
        "resolved": "düzelen: {labels}",
        "undecided": "bugün karar verilemeyen: {labels}",
        "nothing": "yeni, süregelen ya da düzelen bulgu yok",
        "unrecorded": (
            "Önceki tetkik ({date}) imzalı raporunda bulgu kararı kaydedilmediğinden "
            "karşılaştırılamadı."
        ),
        "and": "ve",
    },
    "en": {
        "head": "Compared with the prior study of {date} (AI suggestion): ",
        "new": "new: {labels}",
        "unchanged": "present on both (no measurements to compare sizes): {labels}",
        "resolved": "resolved: {labels}",
        "undecided": "undecided today: {labels}",
        "nothing": "no new, persisting or resolved finding",
        "unrecorded": (
            "Prior study of {date}: its signed report recorded no finding decisions, so it was "
            "not compared."
        ),
        "and": "and",
    },
}
# "on both" once the radiologist's measurements compared the sizes (``reading.measurements``
# writes the sizes in the report's Measurements section): the study page swaps the phrase
# without sizes for this one in the findings it holds, the rest of the sentence untouched
SIZES_COMPARED = {
    "tr": (
        WORDS["tr"]["unchanged"].split(":")[0],
        "iki tetkikte de var (boyutlar Ölçümler bölümünde karşılaştırıldı)",
    ),
    "en": (
        WORDS["en"]["unchanged"].split(":")[0],
        "present on both (sizes compared under Measurements)",
    ),
}
# how a report reader recognises the sentence (lower-cased as either reader lowers it)
COMPARISON_SENTENCE = re.compile(
    r"önceki tetkik \(\d|compared with the prior study of \d|prior study of \d{4}-\d\d-\d\d:",
    re.IGNORECASE,
)


def show_date(day: str, lang: str) -> str:
    """A DICOM date (YYYYMMDD) as the report prints dates: 12.03.2025 / 2025-03-12."""
    if len(day) != 8 or not day.isdigit():
        return day
    return f"{day[6:]}.{day[4:6]}.{day[:4]}" if lang == "tr" else f"{day[:4]}-{day[4:6]}-{day[6:]}"


def changes(prior: dict[str, Any], decision: Decision, task: str) -> dict[str, list[str]]:
    """Labels new, unchanged, resolved and undecided today (each in the task's label order,
    the normal label never, the most specific of a family only)."""
    t = space(task)
    normal = t.normal
    before = {lab for lab in prior.get("present") or [] if lab != normal}
    today = {r.label: r.state for r in decision.labels if r.label != normal}
    now = {lab for lab, state in today.items() if state == "present"}
    groups = {
        "new": now - before,
        "unchanged": now & before,
        "resolved": {lab for lab in before if today.get(lab) == "absent"},
        "undecided": {lab for lab in before if today.get(lab) == "indeterminate"},
    }
    order = {lab: i for i, lab in enumerate(t.labels)}

    def ancestors(lab: str) -> set[str]:
        out: set[str] = set()
        parent = t.parents.get(lab)
        while parent is not None and parent not in out:
            out.add(parent)
            parent = t.parents.get(parent)
        return out

    def specific(labels: set[str]) -> list[str]:
        implied = set().union(*(ancestors(lab) for lab in labels)) if labels else set()
        return sorted(labels - implied, key=lambda lab: (order.get(lab, len(order)), lab))

    return {k: specific(v) for k, v in groups.items()}


def sentence(prior: dict[str, Any] | None, decision: Decision, task: str, lang: str) -> str:
    """The draft's comparison sentence ('' without a prior)."""
    if not prior:
        return ""
    w = WORDS["tr" if lang == "tr" else "en"]
    date = show_date(str(prior.get("date") or ""), lang)
    if not prior.get("recorded"):
        return w["unrecorded"].format(date=date)
    parts = []
    for key, labels in changes(prior, decision, task).items():
        if labels:
            names = [phrase(lab, lang, task) for lab in labels]
            listed = (
                names[0]
                if len(names) == 1
                else (", ".join(names[:-1]) + f" {w['and']} {names[-1]}")
            )
            parts.append(w[key].format(labels=listed))
    body = " — ".join(parts) if parts else w["nothing"]
    return w["head"].format(date=date) + body + "."


def with_comparison(sections: dict[str, str], text: str, flag: str = "") -> dict[str, str]:
    """The findings with the comparison said first, once; after the out-of-scope ``flag``
    when the findings open with it (that is said before anything)."""
    findings = sections["findings"].strip()
    if not text or text in findings:
        return sections
    if flag and findings.startswith(flag):
        rest = findings[len(flag) :].strip()
        return {**sections, "findings": f"{flag} {text} {rest}".strip()}
    return {**sections, "findings": f"{text} {findings}".strip()}


__all__ = [
    "COMPARISON_SENTENCE",
    "SIZES_COMPARED",
    "WORDS",
    "changes",
    "sentence",
    "show_date",
    "with_comparison",
]
