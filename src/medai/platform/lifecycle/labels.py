"""Labels from every signature: on sign-off, each label the study's model reads (and any the
radiologist added) becomes present or absent for that signed report version.

Labels change only by the radiologist's hand (issue 59). A signature endorses the AI's decided
findings as the signer's own (``endorsed``) — or, for an amendment, the previous signature's
labels — unless the radiologist clicked: confirmed or rejected an AI finding, added a missing
one, or decided one the AI left undecided (an undecided label must be decided before a
signature: ``review.sign`` refuses with ``undecided_labels``). What the report text states (the
findings extractor of the draft safety check, Turkish and English), the normal label a normal
text implies and the parents a present child implies (COVID-19 → Viral_Pneumonia → Pneumonia)
are only ``suggested``: shown beside the label, applied by one click, never by the server. The
rows are the site's training and evaluation labels (``medai dataset export``).

A signature never loses a verdict (issue 67): its labels are stored exactly as they stand (the
clicks, and the rest endorsed), or, when they contradict each other by the task's label space
(``core.label_rules``: the normal label absent and no finding present, the normal label beside
a finding, …), the signature is refused with 409 ``contradictory_labels`` naming them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from medai.core import label_rules, task_registry
from medai.core.errors import MedaiError
from medai.platform.documents.words.finding_states import version_labels
from medai.platform.records.tables import ReportVersion, Study, StudyLabel, User
from medai.platform.worklist import study_state
from medai.platform.worklist.ai_results import ai_label_rows, ai_label_states, shown_at
from medai.services.imaging import label_questions, settle_followers
from medai.services.reports import denied_labels, stated_labels, states_normal

MAX_CHOICES = 64
TEXT_SECTIONS = ("findings", "impression")  # what the text's suggestions are read from


class LabelError(MedaiError, ValueError):
    """Choices naming labels the study's task does not have (message lists the valid ones)."""

    status, code = 422, "invalid_labels"


class ContradictoryLabels(MedaiError, Exception):
    """A signature whose labels contradict each other (409): nothing is signed. ``errors``
    has one entry per contradiction: ``type`` its kind (``core.label_rules.KINDS``), ``loc``
    ``["body", "labels", …]`` every label involved, ``msg`` what contradicts what."""

    status, code = 409, "contradictory_labels"

    def __init__(self, found: list[label_rules.Contradiction]) -> None:
        super().__init__(
            "the labels contradict each other: "
            + "; ".join(c.message() for c in found)
            + ". Nothing was signed"
        )
        self.contradictions = found
        self.errors = [
            {"loc": ["body", "labels", *c.labels], "msg": c.message(), "type": c.kind}
            for c in found
        ]


def _text(sections: dict[str, Any]) -> str:
    return "\n".join(str((sections or {}).get(k) or "") for k in TEXT_SECTIONS)


def text_positives(text: str, task: task_registry.Task) -> set[str]:
    """The task's labels a report text states as present (each sentence in its language)."""
    found = stated_labels(text)
    return {lab for lab in found if lab in task.labels and lab != task.normal}


def task_of(study: Study) -> task_registry.Task | None:
    """The study's task when it is one a model reads (a DICOM study no model reads has none:
    nothing to learn from its signature)."""
    try:
        return task_registry.get(study.task)
    except task_registry.TaskError:
        return None


def check_choices(task: task_registry.Task, choices: dict[str, bool] | None) -> dict[str, bool]:
    choices = dict(choices or {})
    if len(choices) > MAX_CHOICES:
        raise LabelError(f"at most {MAX_CHOICES} label choices")
    unknown = sorted(lab for lab in choices if lab not in task.labels)
    if unknown:
        raise LabelError(
            f"labels {unknown} are not labels of the {task.name} task (valid: "
            f"{', '.join(task.labels)})"
        )
    return {lab: bool(v) for lab, v in choices.items()}


SOURCES = ("endorsed", "confirmed", "rejected", "added", "decided", "undecided", "not_read")


def _previous(db: Session, study: Study) -> dict[str, dict[str, Any]]:
    """The labels the latest signature stored (an amendment starts from them), by label."""
    _, items = signed_labels(db, study.id)
    return {i["label"]: i for i in items}


def _source(ai_state: str | None, present: bool) -> str:
    """A click against what the AI said of the label."""
    if ai_state == "indeterminate":
        return "decided"
    called = ai_state == "present"
    return (
        "confirmed"
        if ai_state is not None and present == called
        else ("rejected" if called else "added")
    )


def suggest(
    db: Session, study: Study, sections: dict[str, Any], choices: dict[str, bool] | None = None
) -> list[dict[str, Any]]:
    """One entry per label — {label, ai_positive, ai_state, present, source, suggested,
    suggested_by} — for the radiologist's ``choices`` (their clicks). ``present`` is the click,
    else the previous signature's label, else the AI's decided state (``endorsed``); an AI
    label left undecided and unclicked is ``None`` (``undecided``: the signature is refused
    until it is decided). ``ai_positive`` is the AI's state: True present, False absent, None
    when it suggested nothing (an undecided label, a refused image, a label the model does not
    read). ``suggested`` is what ``sections`` (findings and impression) or a present child
    suggests when it differs from ``present`` (``suggested_by``: ``text``, ``normal``,
    ``implied``): offered, never applied. A label the text names that the model does not read
    and nobody chose is ``not_read``: listed for its suggestion, never stored.
    ``needs_decision``: the signer must answer it before signing (an undecided label in real
    doubt, ``imaging.decision.questions``); an undecided label that follows a sub-finding
    (``follows``: viral pneumonia at 0.1 % beside an undecided COVID-19) is settled by the
    answer about that one (``decided``), never asked."""
    task = task_of(study)
    if task is None:
        return []
    choices = check_choices(task, choices)
    rows, _ = ai_label_rows(db, study)
    ai_states = {r["label"]: r["state"] for r in rows}
    asked = set(label_questions(rows))  # the labels in real doubt: the signer's Var / Yok
    previous = _previous(db, study)
    text = _text(sections)  # findings and impression: what the suggestions are read from

    stated, denied = text_positives(text, task), denied_labels(text) & set(task.labels)
    universe = list(ai_states)
    universe += [lab for lab in previous if lab not in universe]
    universe += sorted(lab for lab in set(choices) | stated if lab not in universe)
    present: dict[str, bool | None] = {}
    source: dict[str, str] = {}
    for lab in universe:
        state = ai_states.get(lab)
        if lab in choices:
            present[lab], source[lab] = choices[lab], _source(state, choices[lab])
        elif lab in previous:
            present[lab], source[lab] = bool(previous[lab]["present"]), previous[lab]["source"]
        elif state in ("present", "absent"):
            present[lab], source[lab] = state == "present", "endorsed"
        elif state == "indeterminate":
            present[lab], source[lab] = None, "undecided"
        else:
            present[lab], source[lab] = False, "not_read"
    # an undecided label that follows an undecided sub-finding is settled by its answer
    for lab, value in settle_followers(task, rows, present).items():
        if source.get(lab) == "undecided" and value is not None:
            present[lab], source[lab] = value, "decided"
    follows = {r["label"]: r.get("implied_by") for r in rows if r["label"] not in asked}
    suggested: dict[str, tuple[bool, str]] = {}
    for lab in universe:
        if lab in stated and present[lab] is not True:
            suggested[lab] = (True, "text")
        elif lab in denied and present[lab] is not False:
            suggested[lab] = (False, "text")
    for lab in universe:  # a present child implies its parents
        if present[lab] or suggested.get(lab, (False,))[0]:
            parent = task.parents.get(lab)
            while parent is not None:
                if parent in present and present[parent] is not True and parent not in suggested:
                    suggested[parent] = (True, "implied")
                parent = task.parents.get(parent)
    normal = task.normal
    if normal and normal in present:
        others = any(v for lab, v in present.items() if lab != normal)
        if others and present[normal] is not False:
            suggested.setdefault(normal, (False, "normal"))
        elif not others and present[normal] is not True and states_normal(text):
            suggested.setdefault(normal, (True, "normal"))
    out = []
    for lab in universe:
        state = ai_states.get(lab)
        offer = suggested.get(lab)
        out.append(
            {
                "label": lab,
                "ai_positive": None if state in (None, "indeterminate") else state == "present",
                "ai_state": state,
                "present": present[lab],
                "source": source[lab],
                "suggested": None if offer is None else offer[0],
                "suggested_by": None if offer is None else offer[1],
                "needs_decision": lab in asked and present[lab] is None,
                "follows": follows.get(lab) if present[lab] is None else None,
            }
        )
    return out


def suggestion(
    db: Session, study: Study, sections: dict[str, Any], choices: dict[str, bool] | None = None
) -> dict[str, Any]:
    """What the sign dialog shows before a signature: the labels a signature of ``sections``
    with the radiologist's ``choices`` would store (``suggest``, nothing stored) and the
    ``contradictions`` it would be refused for (each ``as_dict``). A retracted study is refused
    (``StudyRetracted``: nothing to suggest a signature of)."""
    study_state.check_not_retracted(study, "signed")
    items = suggest(db, study, sections, choices)
    task = task_of(study)
    found = contradictions(task, items) if task is not None else []
    return {"labels": items, "contradictions": [c.as_dict() for c in found]}


def record(
    db: Session, study: Study, signed: ReportVersion, choices: dict[str, bool] | None, user: User
) -> list[dict[str, Any]]:
    """Store the labels of a signed version (in the signature's transaction): the clicks, the
    previous signature's labels and the AI's decided states the signer endorsed — never what
    the text suggests — exactly as they stand. A set that contradicts itself (every label
    absent, the normal one included, say) is refused with ``ContradictoryLabels`` and the
    transaction, the signature with it, is rolled back: a signature never loses a verdict."""
    task = task_of(study)
    items = suggest(db, study, signed.sections, choices)
    found = contradictions(task, items) if task is not None else []
    if found:
        raise ContradictoryLabels(found)
    items = stored(items)
    _, model_hash = ai_label_states(db, study)
    for item in items:
        db.add(
            StudyLabel(
                study_id=study.id,
                report_version=signed.version,
                label=item["label"],
                present=item["present"],
                ai_positive=item["ai_positive"],
                source=item["source"],
                model_hash=model_hash,
                decided_by=user.id,
            )
        )
    return items


def stored(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries of ``suggest`` a signature stores: every label decided (clicked, endorsed,
    or the previous signature's), never one only the text names or one still undecided."""
    return [i for i in items if i["source"] not in ("not_read", "undecided")]


def contradictions(
    task: task_registry.Task, items: list[dict[str, Any]]
) -> list[label_rules.Contradiction]:
    """What contradicts what among the decided entries of ``items`` (``core.label_rules``;
    an undecided one is open: "nothing present" waits for it)."""
    said = {i["label"]: i["present"] for i in items if i["source"] != "not_read"}
    return label_rules.contradictions(task, said)


def latest_versions(*where: Any) -> Select:
    """(study_id, v): each study's latest signed version with labels (``where`` narrows the
    labels counted); callers make it a subquery and join on both columns."""
    return (
        select(StudyLabel.study_id, func.max(StudyLabel.report_version).label("v"))
        .where(*where)
        .group_by(StudyLabel.study_id)
    )


def labelled_versions(
    db: Session, task: str, since: datetime | None = None
) -> list[tuple[Study, int, datetime]]:
    """(study, its latest labelled version, that version's signing time) of the task's
    studies, oldest signature first; ``since``: signed since then only."""
    latest = latest_versions().subquery()
    query = (
        select(Study, latest.c.v, ReportVersion.signed_at)
        .join(latest, latest.c.study_id == Study.id)
        .join(
            ReportVersion,
            (ReportVersion.study_id == Study.id) & (ReportVersion.version == latest.c.v),
        )
        .where(Study.task == task)
        .order_by(ReportVersion.signed_at, Study.id)
    )
    if since is not None:
        query = query.where(ReportVersion.signed_at >= since)
    return [(s, v, at) for s, v, at in db.execute(query).all()]


def labelled_image(db: Session, study: Study, signed_at: datetime | None) -> str:
    """The stored image a signature's labels were about: the one its reading on the page was
    read from (``ai_results.shown_at``; a later series can have moved the study's own image to
    another slice), else the study's file. What an export or a site set pairs them with."""
    read = shown_at(db, study.id, signed_at) if signed_at is not None else None
    return (read.source_sha256 if read is not None else None) or study.file_sha256


def signed_labels(db: Session, study_id: int) -> tuple[int | None, list[dict[str, Any]]]:
    """The labels of the study's latest signed version: (version, entries)."""
    version = db.scalar(
        select(StudyLabel.report_version)
        .where(StudyLabel.study_id == study_id)
        .order_by(StudyLabel.report_version.desc())
        .limit(1)
    )
    if version is None:
        return None, []
    return version, version_labels(db, study_id, version)
