"""The template drafter: report sections written from the findings alone, in English or Turkish,
citing the retrieved passages. Used when no LLM is configured or an LLM draft is refused; its
impression and recommendation are every draft's (``impression``, ``recommendation``).

What the AI may say, as a radiologist would read it: a model that sees one image and only its
own labels can suggest a pattern and how likely it found it, never a diagnosis ("... ile
uyumlu", "consistent with"): a film with ARDS, tuberculosis or cardiomegaly may read as its
COVID-19 label, and the impression says which patterns it cannot tell apart (the result's
scope, ``imaging.scope``). It names no diagnosis at all for an out-of-scope, undecided or
conflicting result, and it advises no test or treatment (``reporting.safety.is_advice``).
"""

from __future__ import annotations

from medai.core.percent import probability
from medai.core.task_registry import all_tasks
from medai.core.task_registry import get as get_task
from medai.imaging.labels import space
from medai.imaging.scope import describe
from medai.reporting.draft_input import DraftContext
from medai.reporting.phrases import phrase
from medai.reporting.series_words import series_sentences, small_lesion_sentence

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
# an image the model's out-of-scope check flagged: the impression names no diagnosis
OUT_OF_SCOPE_IMPRESSION = (
    "The image was flagged as outside the AI model's scope: the AI suggests no diagnosis for it; "
    "radiologist assessment required.",
    "Görüntü YZ modelinin kapsamı dışında olarak işaretlendi: YZ bu görüntü için tanı önermez; "
    "radyolog değerlendirmesi gerekir.",
)
# a decided finding's impression: the pattern and how likely the model found it, a suggestion
# for the radiologist (never "consistent with"); ``{note}``: low confidence, when it is
SUGGESTION_IMPRESSION = (
    "AI suggestion{note}: {items} — for the radiologist to assess.",
    "YZ önerisi{note}: {items} — radyolog değerlendirmeli.",
)
LIKELIHOOD = ("{name}, likelihood {p}", "{name} olasılığı {p}")
LOW_CONFIDENCE_NOTE = (" (low confidence)", " (düşük güven)")
# the recommendation: what a draft may always ask for, and the passages it cites by name
RECOMMENDATION = (
    "Radiologist assessment and clinical correlation are recommended",
    "Radyolog değerlendirmesi ve klinik korelasyon önerilir",
)
SOURCES = ("; sources: {sources}.", "; kaynaklar: {sources}.")
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
# a conflict the policy settled as the finding: the impression names no diagnosis either
CONFLICT_FINDING_IMPRESSION = (
    "AI suggestion (conflicting result): the model marked the image both abnormal and normal; "
    "radiologist assessment required.",
    "YZ önerisi (çelişkili sonuç): model görüntüyü hem bulgulu hem normal olarak işaretledi; "
    "radyolog değerlendirmesi gerekir.",
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
    if slices and series:  # read as a series: how many of its slices the model read, and
        # every series of the study (read, or named with why not)
        accounts = series_sentences((ctx.image or {}).get("series_accounts") or [], ctx.lang)
        return " ".join([series.format(read=slices[0], total=slices[1]), *accounts])
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
    undecided = (ctx.image or {}).get("series_undecided")
    if decision.indeterminate_reason == "small_lesion" and undecided:
        return small_lesion_sentence(undecided, ctx.task, ctx.lang)
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
    fewer; a probability only in the impression's suggestion (``impression``). A study without
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
    return with_scope(
        {
            "technique": _technique(ctx),
            "findings": " ".join(lines),
            "impression": impression(ctx),
            "recommendation": recommendation(ctx, cite),
        },
        ctx,
    )


def impression(ctx: DraftContext) -> str:
    """Every draft's impression (the template's and an LLM's alike). A decided finding: its
    pattern and the model's probability as a suggestion for the radiologist, then which
    patterns the model cannot tell apart from its labels (the result's scope) — never a
    diagnosis. An out-of-scope, undecided or conflicting result names no diagnosis at all. No
    finding: what the model looked for and did not find (never "normal")."""
    i, decision = 1 if ctx.lang == "tr" else 0, ctx.decision
    if ctx.scope is not None and ctx.scope.out_of_scope.flagged:
        return OUT_OF_SCOPE_IMPRESSION[i]
    if decision.state == "indeterminate":
        return (CONFLICT_IMPRESSION if decision.conflict else INDETERMINATE_IMPRESSION)[i]
    if decision.conflict:
        return CONFLICT_FINDING_IMPRESSION[i]
    if ctx.positives:
        items = []
        for f in ctx.positives:
            name = phrase(f.label, ctx.lang, ctx.task)
            items.append(
                LIKELIHOOD[i].format(name=name, p=probability(f.probability, ctx.lang))
                if f.probability is not None
                else name
            )
        note = LOW_CONFIDENCE_NOTE[i] if decision.low_confidence else ""
        text = SUGGESTION_IMPRESSION[i].format(note=note, items="; ".join(items))
        alike = describe(ctx.scope, ctx.task, ctx.lang)["cannot_tell_apart"]
        return f"{text} {alike}".strip()
    if decision.state == "normal":
        text = normal_sentence(ctx, "normal_impression")
        if decision.low_confidence:
            text = text.replace("(YZ önerisi)", "(YZ önerisi, düşük güven)").replace(
                "(AI suggestion)", "(AI suggestion, low confidence)"
            )
        return text
    return (
        "Modelin değerlendirdiği bulgular açısından patoloji saptanmadı (YZ önerisi)."
        if i
        else "No abnormality among the findings the model assessed (AI suggestion)."
    )


def recommendation(ctx: DraftContext, cite: dict[str, int]) -> str:
    """Every draft's recommendation: the radiologist's assessment and clinical correlation,
    never a test or a treatment (the model cannot ground one: ``reporting.safety``), with the
    cited passages named (for an undecided result, those that tell its candidates apart)."""
    tr = ctx.lang == "tr"
    first: dict[str, int] = {}
    for hit in ctx.hits:
        if hit.chunk.id in cite:
            first.setdefault(_hit_name(hit, ctx), cite[hit.chunk.id])
    sources = ", ".join(f"{name} [{n}]" for name, n in first.items())
    if ctx.decision.state == "indeterminate":
        lead = (
            "Radyolog değerlendirmesi önerilir" if tr else "Radiologist assessment is recommended"
        )
        tail = (
            (
                f"; ayırıcı tanı kaynakları: {sources}."
                if tr
                else f"; sources for the differential: {sources}."
            )
            if sources
            else "."
        )
        return lead + tail
    i = 1 if tr else 0
    return RECOMMENDATION[i] + (SOURCES[i].format(sources=sources) if sources else ".")


def _hit_name(hit, ctx: DraftContext) -> str:
    """A cited passage by its label's name, else (a hospital's unlabelled passage) its title."""
    if hit.chunk.label:
        return _source_name(hit.chunk.label, ctx)
    return hit.chunk.title or hit.chunk.source


def with_scope(sections: dict[str, str], ctx: DraftContext) -> dict[str, str]:
    """The draft with the model's scope said (template and LLM drafts alike): an out-of-scope
    flag first in the findings (the impression then names no diagnosis: ``impression``), what
    the model does not assess last in the findings; each only once."""
    flag, cannot = scope_lines(ctx)
    findings = sections["findings"].strip()
    if flag and flag not in findings:
        findings = f"{flag} {findings}".strip()
    if cannot and cannot not in findings:
        findings = f"{findings} {cannot}".strip()
    return {**sections, "findings": findings}


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
