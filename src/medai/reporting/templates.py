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
from medai.reporting.consistency import AI_MARK as MARK
from medai.reporting.draft_input import DraftContext
from medai.reporting.phrases import phrase
from medai.reporting.series_words import series_sentences, slices_where, small_lesion_sentence

# The generic sentences of a task that gives none of its own (``Task.draft``: a task's own
# technique, normal sentence and impression, and undecided sentence are fields of its definition).
# A draft never calls a film normal: it names the findings the model looked for as not seen.
NORMAL_OTHER = ("No {findings}.", "{findings} izlenmedi.")
NORMAL_IMPRESSION_OTHER = ("No {findings} (AI suggestion).", "{findings} izlenmedi (YZ önerisi).")
# a decided finding's impression, in the report: the pattern, marked as the AI's suggestion
# (never "consistent with"; its likelihood and what it cannot tell apart are the AI note's)
FINDING_IMPRESSION = ("{items} (AI suggestion).", "{items} (YZ önerisi).")
# the AI note's account of a decided finding: the pattern and how likely the model found it, a
# suggestion for the radiologist; ``{note}``: low confidence, when it is
SUGGESTION_IMPRESSION = (
    "AI suggestion{note}: {items} — for the radiologist to assess.",
    "YZ önerisi{note}: {items} — radyolog değerlendirmeli.",
)
LIKELIHOOD = ("{name}, likelihood {p}", "{name} olasılığı {p}")
LOW_CONFIDENCE_NOTE = (" (low confidence)", " (düşük güven)")
NORMAL_NOTE = (
    "AI suggestion{note}: none of the findings the model looks for was detected; the rest of the "
    "examination is for the radiologist to assess.",
    "YZ önerisi{note}: modelin aradığı bulgular saptanmadı; incelemenin diğer bulgular açısından "
    "değerlendirilmesi radyoloğa aittir.",
)
# the report's recommendation: what a draft may always say (no test, no treatment); the cited
# passages are named in the AI note
RECOMMENDATION = ("Clinical correlation is recommended.", "Klinik korelasyon önerilir.")
SOURCES = ("Sources: {sources}.", "Kaynaklar: {sources}.")
DIFFERENTIAL_SOURCES = (
    "Sources for the differential: {sources}.",
    "Ayırıcı tanı kaynakları: {sources}.",
)
# how much of a series the model read (the AI note's; the technique names the examination only)
SERIES_READ = (
    "The AI model read {read} of the series' {total} slices.",
    "YZ modeli serinin {total} kesitinden {read} kesitini değerlendirdi.",
)
MODEL_NOTE = ("AI model: {model}.", "YZ modeli: {model}.")
# the order's clinical question, as a report opens with it (the clinician's own words)
CLINICAL = ("Clinical information: {question}", "Klinik bilgi: {question}")
CLINICAL_CHARS = 300  # a longer question is cut (the whole one stays on the study and the PDF)
# the findings' sentence of a small lesion (where; why the AI did not decide is the note's)
SMALL_LESION_FINDING = (
    "Appearance suggesting {label} on {where} (AI suggestion).",
    "{where} {label} lehine görünüm (YZ önerisi).",
)
# An undecided result names its candidates; each sentence naming them keeps "karar veremedi" /
# "could not decide" in it, so no reader takes a candidate (or "tümör yok") as stated or normal.
INDETERMINATE_OTHER = (
    "The AI could not decide on the findings of this image between {candidates}.",
    "YZ bu görüntünün bulgularına karar veremedi: {candidates}.",
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
    the task words it), never how much of it the AI read (the AI note's), pixel sizes, file
    formats or model hashes. A task that names no technique gets its modality."""
    task, i = get_task(ctx.task), 1 if ctx.lang == "tr" else 0
    series = task.draft.get("technique_series", ctx.lang)
    if (ctx.image or {}).get("series_slices") and series:
        return series
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
    decision, i = ctx.decided, 1 if ctx.lang == "tr" else 0
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


def with_question(sections: dict[str, str], question: str | None, lang: str) -> dict[str, str]:
    """The technique opened by the clinical information line (issue 69: "Klinik soru:
    Belirtilmemiş" on every study sent over DICOM): the order's question, in the clinician's
    own words, whitespace folded, cut at ``CLINICAL_CHARS``; nothing without a question. It is
    in the technique, which the label readers of a signature never read as findings
    ("pnömotoraks?" is a question, not a finding)."""
    said = " ".join((question or "").split())
    if not said:
        return sections
    if len(said) > CLINICAL_CHARS:
        said = said[: CLINICAL_CHARS - 1].rstrip() + "…"
    if said[-1] not in ".?!…":
        said += "."
    line = CLINICAL[1 if lang == "tr" else 0].format(question=said)
    technique = sections.get("technique", "").strip()
    if line in technique:
        return sections
    return {**sections, "technique": f"{line} {technique}".strip()}


def _upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def _absent(ctx: DraftContext) -> list[str]:
    """The labels the model looked for and decided absent, in the task's order, by their report
    phrases (for a study without any: what its scope says it detects)."""
    labels = space(ctx.task)
    order = {lab: i for i, lab in enumerate(labels.labels)}
    absent = sorted((f.label for f in ctx.negatives), key=lambda lab: order.get(lab, len(order)))
    if not absent and ctx.scope is not None:
        absent = list(ctx.scope.detects)
    if not absent:  # a person's findings named none: every finding the task has
        absent = [lab for lab in labels.labels if lab != labels.normal]
    return [phrase(lab, ctx.lang, ctx.task) for lab in absent]


def normal_sentence(ctx: DraftContext, what: str = "normal") -> str:
    """The sentence of a study in which the model found none of its labels (``what``:
    ``normal`` for the findings, ``normal_impression``): the task's own or the generic one,
    ``{findings}`` the findings the model looked for, named as not seen. Never "normal"."""
    i = 1 if ctx.lang == "tr" else 0
    generic = NORMAL_OTHER if what == "normal" else NORMAL_IMPRESSION_OTHER
    template = get_task(ctx.task).draft.get(what, ctx.lang) or generic[i]
    looked = _absent(ctx)
    if i or len(looked) <= 3:  # Turkish: one predicate over the list ("…, … ve … izlenmedi")
        return _upper(template.replace("{findings}", _join(looked, "ve" if i else "or")))
    # English: short lists, as reports write them and as a negation's reach reads them ("No
    # a, b or c. No d, e or f (AI suggestion).": the mark once, on the last)
    chunks = [looked[k : k + 3] for k in range(0, len(looked), 3)]
    plain = MARK.sub("", template)
    return " ".join(
        _upper((template if n == len(chunks) - 1 else plain).replace("{findings}", _join(chunk)))
        for n, chunk in enumerate(chunks)
    )


def scope_lines(ctx: DraftContext) -> tuple[str, str]:
    """The scope of the model in the AI note's words (``imaging.scope``): the out-of-scope flag
    and what the model does not assess."""
    if ctx.scope is None:
        return "", ""
    words = describe(ctx.scope, ctx.task, ctx.lang)
    return words["out_of_scope"], words["cannot_detect"]


def out_of_scope(ctx: DraftContext) -> bool:
    return ctx.scope is not None and ctx.scope.out_of_scope.flagged


def template_sections(ctx: DraftContext) -> dict[str, str]:
    """The deterministic draft, in a radiologist's register: exactly the decided findings
    (``ctx.decision``), no more, no fewer, and nothing about the AI itself (its scope, what it
    read, why it did not decide, its likelihoods and sources are the AI note's: ``ai_note``).
    The impression of an image the model flagged as outside its scope, of an undecided result
    and of a conflict is left to the radiologist (``impression``)."""
    tr = ctx.lang == "tr"
    decision = ctx.decided
    lines = [_sentence(phrase(f.label, ctx.lang, ctx.task), tr) for f in ctx.positives]
    negatives = ctx.negatives
    # the normal sentence names the labels looked for itself (``{findings}``): not twice
    own = get_task(ctx.task).draft.get("normal", ctx.lang)
    if decision.state == "normal" and (not own or "{findings}" in own):
        negatives = []
    if negatives:
        names = [phrase(f.label, ctx.lang, ctx.task) for f in negatives]
        if tr:  # "Kardiyomegali, plevral efüzyon ve pnömotoraks izlenmedi." (one predicate)
            lines.append(f"{_upper(_join(names, 've'))} izlenmedi.")
        else:  # short lists, as reports write them ("No pneumothorax or pleural effusion.")
            lines += [f"No {_join(names[i : i + 3])}." for i in range(0, len(names), 3)]
    if decision.state == "normal":
        lines.insert(0, normal_sentence(ctx))
    undecided = (ctx.image or {}).get("series_undecided")
    if decision.indeterminate_reason == "small_lesion" and undecided:
        lines.insert(0, small_lesion_finding(undecided, ctx))
    return {
        "technique": _technique(ctx),
        "findings": " ".join(lines),
        "impression": impression(ctx),
        "recommendation": recommendation(ctx),
    }


def small_lesion_finding(undecided: dict, ctx: DraftContext) -> str:
    """Where the slices suggesting a finding are, as a finding the radiologist reads and
    judges (why the AI did not decide on them is the note's: ``state_sentence``)."""
    i = 1 if ctx.lang == "tr" else 0
    where = slices_where(undecided, ctx.lang)
    label = phrase(str(undecided.get("label")), ctx.lang, ctx.task)
    return _upper(SMALL_LESION_FINDING[i].format(where=where, label=label))


def impression(ctx: DraftContext) -> str:
    """Every draft's impression (the template's and an LLM's alike), in the report's register:
    a decided finding's pattern marked "(YZ önerisi)", never a diagnosis ("… ile uyumlu") and
    never a probability (the note's); no finding: the findings looked for, named as not seen.
    An out-of-scope, undecided or conflicting result has none: that conclusion is the
    radiologist's to write, and the AI note says why the AI drew none."""
    i, decision = 1 if ctx.lang == "tr" else 0, ctx.decided
    if out_of_scope(ctx) or decision.state == "indeterminate" or decision.conflict:
        return ""
    if ctx.positives:
        names = [phrase(f.label, ctx.lang, ctx.task) for f in ctx.positives]
        return FINDING_IMPRESSION[i].format(items=_upper(_join(names, "ve" if i else "and")))
    if decision.state == "normal":
        return normal_sentence(ctx, "normal_impression")
    return ""


def recommendation(ctx: DraftContext) -> str:
    """Every draft's recommendation: clinical correlation, never a test or a treatment (the
    model cannot ground one: ``reporting.safety``); none for a result the AI drew no
    conclusion from (the radiologist's). The cited passages are named in the AI note."""
    decision = ctx.decided
    if out_of_scope(ctx) or decision.state == "indeterminate" or decision.conflict:
        return ""
    return RECOMMENDATION[1 if ctx.lang == "tr" else 0]


def ai_note(ctx: DraftContext, cite: dict[str, int]) -> list[str]:
    """The AI note shown beside the editor, never part of the signed text unless the radiologist
    inserts it: the out-of-scope flag, why the AI did not decide (its candidates, a conflict, a
    small lesion's slices), each finding's likelihood, what the model cannot tell apart and does
    not assess, how much of the study it read, the passages it cited and the model."""
    i, decision = 1 if ctx.lang == "tr" else 0, ctx.decided
    flag, cannot = scope_lines(ctx)
    lines = [flag, state_sentence(ctx)]
    note = LOW_CONFIDENCE_NOTE[i] if decision.low_confidence else ""
    if ctx.positives:
        items = [
            LIKELIHOOD[i].format(
                name=phrase(f.label, ctx.lang, ctx.task), p=probability(f.probability, ctx.lang)
            )
            if f.probability is not None
            else phrase(f.label, ctx.lang, ctx.task)
            for f in ctx.positives
        ]
        lines.append(SUGGESTION_IMPRESSION[i].format(note=note, items="; ".join(items)))
        lines.append(describe(ctx.scope, ctx.task, ctx.lang)["cannot_tell_apart"])
    elif decision.state == "normal":
        lines.append(NORMAL_NOTE[i].format(note=note))
    lines.append(cannot)
    slices = (ctx.image or {}).get("series_slices")
    if slices:
        lines.append(SERIES_READ[i].format(read=slices[0], total=slices[1]))
    lines += series_sentences((ctx.image or {}).get("series_accounts") or [], ctx.lang)
    lines.append(sources_line(ctx, cite))
    if ctx.model:
        lines.append(MODEL_NOTE[i].format(model=ctx.model))
    return [_upper(line.strip()) for line in lines if line and line.strip()]


def cited_sources(ctx: DraftContext, cite: dict[str, int]) -> dict[str, int]:
    """The passages a draft cites (passage id → [n] in ``cite``), one per name: name → n."""
    first: dict[str, int] = {}
    for hit in ctx.hits:
        if hit.chunk.id in cite:
            first.setdefault(_hit_name(hit, ctx), cite[hit.chunk.id])
    return first


def sources_line(ctx: DraftContext, cite: dict[str, int]) -> str:
    """The passages the draft cites, by name and number ('' when none): for an undecided result,
    those that tell its candidates apart."""
    first = cited_sources(ctx, cite)
    if not first:
        return ""
    sources = ", ".join(f"{name} [{n}]" for name, n in first.items())
    words = DIFFERENTIAL_SOURCES if ctx.decided.state == "indeterminate" else SOURCES
    return words[1 if ctx.lang == "tr" else 0].format(sources=sources)


def _hit_name(hit, ctx: DraftContext) -> str:
    """A cited passage by its label's name, else (a hospital's unlabelled passage) its title."""
    if hit.chunk.label:
        return _source_name(hit.chunk.label, ctx)
    return hit.chunk.title or hit.chunk.source


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
