"""Retrieval-augmented report drafts: findings → cited passages → LLM (or template) → draft.

Safety rules the code enforces, not just the prompt:
- the result is always ``status: "draft"`` with a visible "to be reviewed by a radiologist";
- a finding is stated only if it was an input: an LLM draft that asserts a positive finding the
  inputs did not have (checked with the rule-based extractor) is discarded for the template;
- citations are numbers into the passages actually retrieved; unknown numbers void the LLM draft;
- patient-supplied text is redacted and quoted as data between markers it cannot close;
- any LLM failure (not configured, timeout, garbage) still yields the template draft, with a
  warning saying why;
- the sections are the report, in a radiologist's register (technique, findings, comparison,
  impression, recommendation), with "(YZ önerisi)" marking the AI's conclusion; everything
  about the AI itself — its scope and out-of-scope flag, what it read, why it did not decide,
  each finding's likelihood, what it cannot tell apart, its sources, the model — is the
  ``ai_note`` beside them (``templates.ai_note``), never part of the signed text unless the
  radiologist inserts it;
- a draft never calls a film normal outright: it names the findings the model looked for as not
  seen; an LLM draft that calls the film normal is discarded for the template;
- the impression and the recommendation are the template's in every draft (an LLM writes the
  technique and the findings): the impression marks a pattern as the AI's suggestion, never a
  diagnosis, and there is none at all for an out-of-scope, undecided or conflicting result
  (``templates.impression``);
- no AI text advises a test or a treatment (RT-PCR, isolation, contrast MR, a follow-up
  interval...): the template writes none, and every sentence of the retrieved passages, the
  LLM's sections and the caption that does is left out (``safety.without_advice``).
"""

from __future__ import annotations

from dataclasses import replace

from medai.imaging.decision import Decision
from medai.imaging.labels import space
from medai.imaging.scope import Scope
from medai.reporting.comparison import sentence as comparison_sentence
from medai.reporting.comparison import with_comparison
from medai.reporting.draft_input import (  # noqa: F401 - the drafting API in one place
    MAX_FINDINGS,
    DraftContext,
    Finding,
    FindingsInputError,
    imaging_task,
    parse_decided,
    parse_findings,
)
from medai.reporting.llm import LLMBackend, LLMError
from medai.reporting.phrases import phrase
from medai.reporting.prompting import (  # noqa: F401
    MAX_QUESTION_CHARS,
    SECTIONS,
    build_prompt,
    cited_numbers,
    parse_llm_sections,
)
from medai.reporting.retrieve import Hit, HybridRetriever
from medai.reporting.safety import (  # noqa: F401
    _implied,
    check_no_new_findings,
    check_not_called_normal,
    sections_without_advice,
    without_advice,
)
from medai.reporting.templates import (
    ai_note,
    cited_sources,
    impression,
    recommendation,
    template_sections,
    with_question,
)

STATUS_LABEL = {
    "en": "AI draft — to be reviewed by a radiologist",
    "tr": "YZ taslağı — radyolog tarafından incelenmelidir",
}


def retrieve_for(ctx: DraftContext, retriever: HybridRetriever, k: int = 4) -> list[Hit]:
    """Passages for the positive findings (and the caption); for an undecided image the classes
    the model could not separate (never the normal label's passage alone: an undecided MRI is
    not drafted from "no tumour"); the normal label otherwise."""
    if ctx.positives:
        wanted = {f.label for f in ctx.positives}
    elif ctx.decided.state == "indeterminate":  # set by DraftContext, never None
        wanted = set(ctx.decided.candidates)
    else:
        # None for a task without a normal label: phrase() fails on it below, as it always has
        wanted = {space(ctx.task).normal}  # type: ignore[arg-type]  # behaviour kept (see above)
    if not wanted:
        return []
    query = " ".join(phrase(lab, ctx.lang, ctx.task) for lab in sorted(wanted))
    if ctx.caption:
        query += " " + ctx.caption
    hits = retriever.search(query, k=k, labels=wanted, lang=ctx.lang)
    # every positive label's own passage is wanted even when another ranks higher
    have = {h.chunk.label for h in hits}
    for lab in sorted(wanted - have):
        hits += retriever.search(
            phrase(lab, ctx.lang, ctx.task), k=1, labels={lab}, lang=ctx.lang
        ) or retriever.of_label(lab, ctx.lang)
    return without_advice_hits(hits)


def without_advice_hits(hits: list[Hit]) -> list[Hit]:
    """The passages as a draft may use them (in the LLM's prompt and in the citations): each
    without its sentences of test or treatment advice; a passage that was nothing else is
    dropped."""
    out = []
    for hit in hits:
        text = without_advice(hit.chunk.text)
        if text:
            out.append(replace(hit, chunk=replace(hit.chunk, text=text)))
    return out


def draft_report(
    findings: list[Finding],
    retriever: HybridRetriever | None,
    backend: LLMBackend | None = None,
    *,
    task: str | None = None,
    lang: str = "en",
    question: str | None = None,
    caption: str | None = None,
    image: dict | None = None,
    model: str | None = None,
    k: int = 4,
    decision: Decision | None = None,
    scope: Scope | dict | None = None,
    prior: dict | None = None,
) -> dict:
    """``prior``: the patient's latest signed prior study of this task, as the platform found
    it (date, the labels its signer decided present; ``reporting.comparison``): the findings
    then open with what is new, unchanged or resolved since it."""
    if lang not in STATUS_LABEL:
        raise ValueError(f"language must be one of {sorted(STATUS_LABEL)}")
    if question is not None and len(question) > 20 * MAX_QUESTION_CHARS:
        raise ValueError(f"clinical question is too long ({len(question):,} characters)")
    task = imaging_task(task)
    if isinstance(scope, dict):
        scope = Scope.model_validate(scope)
    if caption:  # a caption is retrieved text too: no advice in it either
        caption = without_advice(caption) or None
    ctx = DraftContext(
        findings, task, lang, question, caption, image, model, decision=decision, scope=scope
    )
    ctx.hits = retrieve_for(ctx, retriever, k) if retriever is not None else []
    numbers = {h.chunk.id: i for i, h in enumerate(ctx.hits, 1)}
    warnings: list[str] = []
    used_backend = "template"
    sections = None
    if backend is not None:
        try:
            system, user = build_prompt(ctx)
            sections, cited = parse_llm_sections(backend.complete(system, user), len(ctx.hits))
            check_no_new_findings(sections, ctx)
            check_not_called_normal(sections)
            sections = sections_without_advice(sections)
            if not sections["findings"]:
                raise LLMError("the LLM draft's findings were nothing but advice")
            # the impression and the recommendation are the template's (see above)
            sections["impression"] = impression(ctx)
            sections["recommendation"] = recommendation(ctx)
            # every passage the LLM cited is named in the AI note (a sentence of advice that
            # cited one may have been left out of the sections)
            cited = sorted(set(cited) | set(cited_numbers(sections)))
            used_backend = backend.name
        except LLMError as exc:
            warnings.append(f"LLM draft not used ({exc}); template draft instead")
            sections = None
    if sections is None:
        sections = template_sections(ctx)
        cited = sorted(cited_sources(ctx, numbers).values())  # named in the AI note
    compared = comparison_sentence(prior, ctx.decided, task, lang)
    sections = with_question(with_comparison(sections, compared), question, lang)
    note = ai_note(ctx, {ctx.hits[n - 1].chunk.id: n for n in cited})
    citations = [
        {
            "id": ctx.hits[n - 1].chunk.id,
            "n": n,
            "source": ctx.hits[n - 1].chunk.source,
            "licence": ctx.hits[n - 1].chunk.licence,
            "title": ctx.hits[n - 1].chunk.title,
            "text": ctx.hits[n - 1].chunk.text,
            "label": ctx.hits[n - 1].chunk.label,
        }
        for n in cited
    ]
    return {
        "status": "draft",
        "status_label": STATUS_LABEL[lang],
        "language": lang,
        "task": task,
        "sections": sections,
        "citations": citations,
        "findings_used": [f.as_dict() for f in findings],
        "backend": used_backend,
        "decision": ctx.decided.model_dump(mode="json"),
        "caption": caption,
        "caption_note": ("automatic caption, unverified; not part of the findings")
        if caption
        else None,
        "warnings": warnings,
        "ai_note": note,
        "comparison": {
            "study_id": prior.get("study_id"),
            "date": prior.get("date"),
            "sentence": compared,
        }
        if compared and prior  # a comparison sentence needs a prior
        else None,
    }
