"""The draft safety check: an LLM draft that states a finding of the task's label space that was
not an input is refused (English by the CheXpert-style extractor, Turkish clause by clause)."""

from __future__ import annotations

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
