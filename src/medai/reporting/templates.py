"""The template drafter: report sections written from the findings alone, in English or Turkish,
citing the retrieved passages. Used when no LLM is configured or an LLM draft is refused."""

from __future__ import annotations

import re

from medai.core.task_registry import all_tasks
from medai.core.task_registry import get as get_task
from medai.imaging.labels import space
from medai.imaging.scope import describe
from medai.reporting.draft_input import DraftContext
from medai.reporting.phrases import phrase

# The generic sentences of a task that gives none of its own (``Task.draft``: a task's own
# technique, normal sentence and impression, and undecided sentence are fields of its definition).
# A draft never calls a film normal: it says what the model looked for and did not find.
NORMAL_OTHER = (
    "None of the findings the AI model looks for ({findings}) was detected.",
    "YZ modelinin aradığı bulgular ({findings}) saptanmadı.",
)
NORMAL_IMPRESSION_OTHER = (
    "None of the findings the AI model looks for was detected (AI suggestion).",
    "YZ modelinin aradığı bulgular saptanmadı (YZ önerisi).",
)
# an image the model's out-of-scope check flagged: said in the impression too
OUT_OF_SCOPE_IMPRESSION = (
    "The image was flagged as outside the AI model's scope: interpret its findings with caution.",
    "Görüntü YZ modelinin kapsamı dışında olarak işaretlendi: YZ bulguları dikkatle "
    "yorumlanmalıdır.",
)
# An undecided result names its candidates; each sentence naming them keeps "karar veremedi" /
# "could not decide" in it, so no reader takes a candidate (or "tümör yok") as stated or normal.
INDETERMINATE_OTHER = (
    "The AI could not decide on the findings of this image between {candidates}.",
    "YZ bu görüntünün bulgularına karar veremedi: {candidates}.",
)
INDETERMINATE_IMPRESSION = (
    "Indeterminate (AI suggestion): radiologist assessment required.",
    "Belirsiz (YZ önerisi): radyolog değerlendirmesi gerekir.",
)
# A conflict: the normal label and a finding both passed their thresholds. Said whichever way
# the policy settled it: undecided (the finding named as a candidate only), or the finding.
CONFLICT_UNDECIDED = (
    "The AI could not decide: it found {candidates} above threshold but also marked the image "
    "as normal (a conflicting result); the decision is left to the radiologist.",
    "YZ karar veremedi: {candidates} eşiğin üzerinde, ancak model görüntüyü normal olarak da "
    "işaretledi; çelişkili sonuç, karar radyoloğa bırakılmıştır.",
)
CONFLICT_FINDING = (
    "The model also marked the image as normal (a conflicting result); the finding needs the "
    "radiologist's confirmation.",
    "Model görüntüyü ayrıca normal olarak da işaretledi (çelişkili sonuç), bulgu radyolog "
    "tarafından doğrulanmalıdır.",
)
CONFLICT_IMPRESSION = (
    "Indeterminate (AI suggestion, conflicting result): radiologist assessment required.",
    "Belirsiz (YZ önerisi, çelişkili sonuç): radyolog değerlendirmesi gerekir.",
)
VIEWS = {
    "PA": ("PA", "PA"),
    "AP": ("AP", "AP"),
    "LL": ("lateral", "lateral"),
    "RL": ("lateral", "lateral"),
    "LATERAL": ("lateral", "lateral"),
}


def __getattr__(name: str):
    """``INDETERMINATE``: task → its own undecided sentence (en, tr), read from the registry
    when asked (the sentences live in each task's definition, ``Task.draft``)."""
    if name == "INDETERMINATE":
        return {
            t.name: t.draft.indeterminate
            for t in all_tasks("imaging")
            if all(t.draft.indeterminate)
        }
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _technique(ctx: DraftContext) -> str:
    """As a radiologist writes it: the examination (with the DICOM view when the file says and
    the task words it), never pixel sizes, file formats or model hashes (the model has its own
    AI section). A task that names no technique gets its modality."""
    task, i = get_task(ctx.task), 1 if ctx.lang == "tr" else 0
    slices = (ctx.image or {}).get("series_slices")
    series = task.draft.get("technique_series", ctx.lang)
    if slices and series:  # read as a series: how many of its slices the model read
        return series.format(read=slices[0], total=slices[1])
    view = VIEWS.get(str((ctx.image or {}).get("view_position") or "").upper())
    with_view = task.draft.get("technique_with_view", ctx.lang)
    if view and with_view:
        return with_view.format(view=view[i])
    named = task.draft.get("technique", ctx.lang)
    if named:
        return named
    modality = space(ctx.task).modality
    return f"{modality[0].upper()}{modality[1:]}."


def candidates(labels: list[str], task: str, lang: str) -> str:
    """Undecided candidates by name, hedged so that no finding reader takes one as stated:
    Turkish closes the findings with "(olası tanı)" / "(olası tanılar)", English puts
    "possible" before each; the normal label comes last as the other possibility, by its name
    ("… ya da tümör yok", "… or no tumour"), never as one more "possible diagnosis"."""
    normal = space(task).normal
    found = [lab for lab in labels if lab != normal]
    if lang == "tr":
        names = [phrase(lab, lang, task) for lab in found]
        text = (
            _join(names, "ve") + (" (olası tanılar)" if len(names) > 1 else " (olası tanı)")
            if names
            else ""
        )
    else:
        text = _join([f"possible {phrase(lab, lang, task)}" for lab in found], "and")
    if normal in labels:
        name = get_task(task).label_name(normal, lang)
        name = name[:1].lower() + name[1:]
        text = f"{text} {'ya da' if lang == 'tr' else 'or'} {name}" if text else name
    return text


def state_sentence(ctx: DraftContext) -> str:
    """The sentence an undecided or self-contradicting decision needs in the findings (its
    candidates named, the conflict said); '' for a plain decision."""
    decision, i = ctx.decision, 1 if ctx.lang == "tr" else 0
    normal = space(ctx.task).normal
    if decision.state == "indeterminate":
        if decision.indeterminate_reason == "conflict":
            found = [lab for lab in decision.candidates if lab != normal]
            return CONFLICT_UNDECIDED[i].format(candidates=candidates(found, ctx.task, ctx.lang))
        template = (
            get_task(ctx.task).draft.get("indeterminate", ctx.lang) or (INDETERMINATE_OTHER[i])
        )
        return template.format(candidates=candidates(decision.candidates, ctx.task, ctx.lang))
    if decision.conflict:
        return CONFLICT_FINDING[i]
    return ""


def _sentence(name: str, tr: bool) -> str:
    return f"{name[0].upper()}{name[1:]} izlenmektedir." if tr else f"{name[0].upper()}{name[1:]}."


def normal_sentence(ctx: DraftContext, what: str = "normal") -> str:
    """The sentence of a study in which the model found none of its labels (``what``:
    ``normal`` for the findings, ``normal_impression``): the task's own or the generic one,
    ``{findings}`` filled with what the model looked for. Never "the lungs are clear"."""
    i = 1 if ctx.lang == "tr" else 0
    generic = NORMAL_OTHER if what == "normal" else NORMAL_IMPRESSION_OTHER
    template = get_task(ctx.task).draft.get(what, ctx.lang) or generic[i]
    order = {lab: i for i, lab in enumerate(space(ctx.task).labels)}
    absent = sorted((f.label for f in ctx.negatives), key=lambda lab: order.get(lab, len(order)))
    if not absent and ctx.scope is not None:
        absent = list(ctx.scope.detects)
    looked = [phrase(lab, ctx.lang, ctx.task) for lab in absent]  # in the task's order
    listed = _join(looked, "ve" if ctx.lang == "tr" else "and") if looked else ""
    text = template.replace("{findings}", listed)
    return text.replace(" ()", "") if not listed else text


def scope_lines(ctx: DraftContext) -> tuple[str, str]:
    """The scope of the model in the draft's words (``imaging.scope``): the out-of-scope flag
    (said first in the findings) and what the model does not assess (said last)."""
    if ctx.scope is None:
        return "", ""
    words = describe(ctx.scope, ctx.task, ctx.lang)
    return words["out_of_scope"], words["cannot_detect"]


def template_sections(ctx: DraftContext, cite: dict[str, int]) -> dict[str, str]:
    """The deterministic draft: exactly the decided findings (``ctx.decision``), no more, no
    fewer; probabilities stay in the findings table, not in the sentences. A study without
    any of the model's findings is never called normal: the draft says what the model looked
    for and did not find, and (with the result's scope) what it does not assess."""
    tr = ctx.lang == "tr"
    decision = ctx.decision
    lines = [_sentence(phrase(f.label, ctx.lang, ctx.task), tr) for f in ctx.positives]
    negatives = ctx.negatives
    # the normal sentence names the labels looked for itself (``{findings}``): not twice
    own = get_task(ctx.task).draft.get("normal", ctx.lang)
    if decision.state == "normal" and (not own or "{findings}" in own):
        negatives = []
    if negatives:
        names = [phrase(f.label, ctx.lang, ctx.task) for f in negatives]
        if tr:  # "Kardiyomegali, plevral efüzyon ve pnömotoraks izlenmedi." (one predicate)
            listed = _join(names, "ve")
            lines.append(f"{listed[0].upper()}{listed[1:]} izlenmedi.")
        else:  # short lists, as reports write them ("No pneumothorax or pleural effusion.")
            lines += [f"No {_join(names[i : i + 3])}." for i in range(0, len(names), 3)]
    if decision.state == "normal":
        lines.insert(0, normal_sentence(ctx))
    if decision.state == "indeterminate":
        lines.insert(0, state_sentence(ctx))
    elif decision.conflict:  # settled as the finding: said right after it
        lines.insert(len(ctx.positives), state_sentence(ctx))
    if not lines:
        lines.append(
            "Değerlendirilen bulgularda anormallik saptanmadı."
            if tr
            else "No abnormality among the assessed findings."
        )
    unsure = " düşük güven" if tr else " low confidence"
    conflicting = " çelişkili sonuç" if tr else " conflicting result"
    note = (
        ("(YZ önerisi" if tr else "(AI suggestion")
        + (("," + unsure) if decision.low_confidence else "")
        + (("," + conflicting) if decision.conflict else "")
        + ")."
    )
    if ctx.positives:
        names = _join(
            [phrase(f.label, ctx.lang, ctx.task) for f in ctx.positives], "ve" if tr else "and"
        )
        impression = (
            f"{names[0].upper()}{names[1:]} ile uyumlu görünüm {note}"
            if tr
            else f"Appearance consistent with {names} {note}"
        )
    elif decision.state == "normal":
        impression = normal_sentence(ctx, "normal_impression")
        if decision.low_confidence:
            impression = impression.replace("(YZ önerisi)", "(YZ önerisi, düşük güven)").replace(
                "(AI suggestion)", "(AI suggestion, low confidence)"
            )
    elif decision.state == "indeterminate":
        impression = (CONFLICT_IMPRESSION if decision.conflict else INDETERMINATE_IMPRESSION)[
            1 if tr else 0
        ]
    else:
        impression = (
            "Modelin değerlendirdiği bulgular açısından patoloji saptanmadı (YZ önerisi)."
            if tr
            else "No abnormality among the findings the model assessed (AI suggestion)."
        )
    recs = []
    if decision.state == "indeterminate":
        # no candidate's advice (they differ); the passages to tell them apart, cited
        first = {}
        for hit in ctx.hits:
            if hit.chunk.id in cite:
                first.setdefault(hit.chunk.label, cite[hit.chunk.id])
        sources = ", ".join(f"{_source_name(lab, ctx)} [{n}]" for lab, n in first.items())
        recs.append(
            ("Radyolog değerlendirmesi önerilir" if tr else "Radiologist assessment is recommended")
            + (
                (
                    f"; ayırıcı tanı kaynakları: {sources}."
                    if tr
                    else f"; sources for the differential: {sources}."
                )
                if sources
                else "."
            )
        )
    else:
        for hit in ctx.hits:
            sentence = _recommendation(hit.chunk.text, ctx.lang)
            if sentence and hit.chunk.id in cite:
                recs.append(f"{sentence} [{cite[hit.chunk.id]}]")
    if not recs:
        recs.append("Klinik korelasyon önerilir." if tr else "Clinical correlation is recommended.")
    return with_scope(
        {
            "technique": _technique(ctx),
            "findings": " ".join(lines),
            "impression": impression,
            "recommendation": " ".join(recs),
        },
        ctx,
    )


def with_scope(sections: dict[str, str], ctx: DraftContext) -> dict[str, str]:
    """The draft with the model's scope said (template and LLM drafts alike): an out-of-scope
    flag first in the findings and in the impression, what the model does not assess last in
    the findings; each only once."""
    flag, cannot = scope_lines(ctx)
    findings, impression = sections["findings"].strip(), sections["impression"].strip()
    if flag and flag not in findings:
        findings = f"{flag} {findings}".strip()
        note = OUT_OF_SCOPE_IMPRESSION[1 if ctx.lang == "tr" else 0]
        if note not in impression:
            impression = f"{impression} {note}".strip()
    if cannot and cannot not in findings:
        findings = f"{findings} {cannot}".strip()
    return {**sections, "findings": findings, "impression": impression}


def _source_name(label: str, ctx: DraftContext) -> str:
    """A cited passage's label in the differential's sources: the normal label by its name
    ("bulgu yok", as the undecided sentence names it), never its report phrase ("akut patoloji
    saptanmadı" would read as the study's result)."""
    if label == space(ctx.task).normal:
        name = get_task(ctx.task).label_name(label, ctx.lang)
        return name[:1].lower() + name[1:]
    return phrase(label, ctx.lang, ctx.task)


def _join(items: list[str], conj: str = "or") -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {conj} {items[-1]}"


def _recommendation(text: str, lang: str) -> str | None:
    sentences = re.split(r"(?<=[.!?])\s+", text)
    key = "önerilir" if lang == "tr" else "recommend"
    for s in sentences:
        if key in s.lower():
            return s.strip()
    return None
