"""The draft safety checks: an LLM draft that states a finding of the task's label space that was
not an input is refused (English by the CheXpert-style extractor, Turkish clause by clause); no
AI text advises a test or a treatment (``is_advice``, ``without_advice``)."""

from __future__ import annotations

import re

from medai.core.text import turkish_lower
from medai.imaging.labels import space
from medai.reporting.draft_input import DraftContext
from medai.reporting.findings import calls_normal, positive_labels, positive_labels_tr
from medai.reporting.llm import LLMError
from medai.reporting.phrases import NORMAL


def check_no_new_findings(sections: dict[str, str], ctx: DraftContext) -> None:
    """Refuse drafts that assert a finding of this task's label space that was not an input.

    English drafts are read by the CheXpert-style extractor; Turkish ones by a conservative
    sentence-level reader (any sentence naming a finding without a negation counts)."""

    text = sections["findings"] + " " + sections["impression"]
    stated = positive_labels_tr(text) if ctx.lang == "tr" else positive_labels(text)
    allowed = {f.label for f in ctx.positives} | NORMAL
    extra = sorted((stated & set(space(ctx.task).labels)) - allowed - _implied(allowed))
    if extra:
        raise LLMError(f"the LLM draft states findings that were not among the inputs: {extra}")


def check_not_called_normal(sections: dict[str, str]) -> None:
    """Refuse an LLM draft that calls the film normal outright ("the lungs are clear",
    "normal study", "Akciğerler temizdir"): a draft says what the model looked for and did not
    find (``findings.calls_normal``)."""

    said = calls_normal(sections["findings"] + " " + sections["impression"])
    if said:
        raise LLMError(f"the LLM draft calls the film normal: {said[0][:80]!r}")


_PNEUMONIAS = ("Pneumonia", "Viral_Pneumonia", "Bacterial_Pneumonia", "COVID-19", "Tuberculosis")
# what the wording of a given finding legitimately contains (CheXpert's hierarchy: an opacity is
# part of pneumonia, oedema, atelectasis, lesions; consolidation is how pneumonia looks)
_IMPLIED: dict[str, set[str]] = {
    **{p: {"Pneumonia", "Lung Opacity", "Consolidation", "Infiltration"} for p in _PNEUMONIAS},
    **{
        p: {"Lung Opacity"}
        for p in (
            "Edema",
            "Atelectasis",
            "Consolidation",
            "Mass",
            "Nodule",
            "Lung Lesion",
            "Infiltration",
            "Fibrosis",
        )
    },
    "Mass": {"Lung Opacity", "Lung Lesion"},
    "Nodule": {"Lung Opacity", "Lung Lesion"},
}


def _implied(labels: set[str]) -> set[str]:
    out: set[str] = set()
    for lab in labels:
        out |= _IMPLIED.get(lab, set())
    return out


# --- advice the AI cannot ground
#
# The model sees one image and its own labels; it knows nothing of the patient, the local
# policy or the rest of the examination. So no AI text advises a test or a treatment (RT-PCR,
# isolation, contrast MR, a follow-up interval, biopsy, referral...): that is the radiologist's
# and the clinician's to write. The template never writes such advice; this guard is what keeps
# it out of the text a draft takes from elsewhere (the LLM, retrieved passages, a caption).
# A sentence is advice when it names an action that is always advice in a report (``_ADVICE``),
# or when it recommends (``_RECOMMENDS``) something (``_ACTION``) other than what a draft may
# always ask for: the radiologist's assessment, clinical correlation, comparison with priors.
_ADVICE = re.compile(
    r"rt-?pcr|\bpcr (?:test|testing)|antigen test|antijen test|"
    r"\bisolat(?:e|ion)|izolasyon|infection[- ]control|enfeksiyon kontrol|quarantin|karantina|"
    r"contrast[- ]enhanced|\bwith contrast|\bpost-?contrast|kontrastlı|kontrast madde|"
    r"gadolin|\bbiops|biyops|bronchoscop|bronkoskop|echocardiogra|ekokardiyogra|"
    r"\bsputum|balgam|\bantibiot|antibiyoti|\btreat(?:ment|ed|ing)?\b|tedavi|"
    r"\brefer(?:ral|red)?\b|yönlendir|\bsevk|multidisciplinary|multidisipliner|"
    r"follow-?up|\bfollowed with|kontrol (?:grafi|görüntüleme|bt|mr|çekim|tetkik)|"
    r"\btaki[bp]|\bizlem|serial imaging|seri görüntüleme|"
    r"\bnotif(?:y|ication)|bildirim|fleischner|(?:further|additional) imaging|ek görüntüleme|"
    r"according to (?:local |the )?(?:guidelines|policy)|kılavuz\w* göre|\bmanage\b|yönetilmeli|"
    r"\b\d+(?:\s*(?:-|–|to|ile)\s*\d+)?\s*(?:hafta|ay|gün|week|month|day)s?\b",
)
_RECOMMENDS = re.compile(
    r"recommend|\badvis|\bshould\b|\bmust\b|\bconsider|\bwarrant|\bis suggested|\bneeds?\b|"
    r"\brequire|öneril|yapılmalı|gerek|düşünülmeli|araştırılmalı|edilmeli|yönetilmeli|"
    r"izlenmeli|alınmalı|bakılmalı"
)
_ACTION = re.compile(
    r"\b(?:ct|cta|mri?|pet|bt|mr|us)\b|x-?ray|radiograph|\bgrafi|imaging|görüntüleme|"
    r"\bscan|\btest|ultra|\bexam|muayene|tetkik|laborat|assessment|evaluation|review|"
    r"değerlendirme|konsült|consult|monitor|\bsurg|cerrah|spectroscop|spektroskop|"
    r"perfusion|perfüzyon|aspirat|aspirasyon|\bsequence|sekans|angiogra|anjiyogra|"
    r"barium|baryum|hormon|visual field|görme alanı|saturation|satürasyon|"
    r"management|yönetim|therapy|terapi|vaccin|aşı"
)
# what a draft may always ask for (and names that contain an action word but are no advice)
_ALLOWED = re.compile(
    r"radyolog\w* (?:tarafından )?(?:değerlendirme|doğrulan|incelen)\w*|"
    r"radiologist(?:'s)? (?:assessment|review|confirmation)|"
    r"(?:the )?radiologist to assess|klinik korelasyon\w*|clinical correlation|"
    r"önceki (?:görüntü|grafi|tetkik)\w*(?: ile)? karşılaştır\w*|"
    r"comparison with (?:the )?prior (?:films|imaging|images)|"
    r"yz önerisi|ai suggestion"
)
_CLAUSE = re.compile(r"(?<=[.;!?])\s+|\n+")


def _lowered(text: str) -> tuple[str, str]:
    """The text lowered both ways: English (``str.lower``) and Turkish (dotted/dotless I)."""
    return text.lower(), turkish_lower(text)


def is_advice(sentence: str) -> bool:
    """Whether ``sentence`` advises a test or a treatment (English or Turkish)."""
    for low in _lowered(sentence):
        if _ADVICE.search(low):
            return True
        if _RECOMMENDS.search(low) and _ACTION.search(_ALLOWED.sub(" ", low)):
            return True
    return False


def advice_in(text: str) -> list[str]:
    """The sentences (or clauses, split at ';') of ``text`` that advise a test or treatment."""
    return [s for s in _CLAUSE.split(str(text or "")) if s.strip() and is_advice(s)]


def without_advice(text: str) -> str:
    """``text`` with every advising sentence or clause left out (a clause before ';' that
    is kept ends with '.' when what followed it was advice)."""
    kept = [s.strip() for s in _CLAUSE.split(str(text or "")) if s.strip() and not is_advice(s)]
    out = " ".join(kept)
    return out[:-1] + "." if out.endswith(";") else out


def sections_without_advice(sections: dict[str, str]) -> dict[str, str]:
    """Every section of a draft without advice (an LLM's text, before the template's
    impression and recommendation take their place)."""
    return {k: without_advice(v) for k, v in sections.items()}
