"""Labels from every signature: on sign-off, each label the study's model reads (and any the
radiologist added) becomes present or absent for that signed report version.

The default is what the signed text says (the findings extractor the draft safety check uses,
in Turkish and English): a finding the text states is present, one it does not is absent, the
task's normal class is present when nothing else is, and a present child label makes its parents
present (COVID-19 → Viral_Pneumonia → Pneumonia). A radiologist's click (confirm or reject an
AI finding, add a missing one) overrides the default for that label. The rows are the site's
training and evaluation labels (``medai dataset export``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from medai.core import task_registry
from medai.core.errors import MedaiError
from medai.platform.finding_states import version_labels
from medai.platform.studies import latest_result
from medai.platform.tables import ReportVersion, Study, StudyLabel, User

MAX_CHOICES = 64
TEXT_SECTIONS = ("findings", "impression")


class LabelError(MedaiError, ValueError):
    """Choices naming labels the study's task does not have (message lists the valid ones)."""

    status, code = 422, "invalid_labels"


def _text(sections: dict[str, Any]) -> str:
    return "\n".join(str((sections or {}).get(k) or "") for k in TEXT_SECTIONS)


def text_positives(text: str, task: task_registry.Task) -> set[str]:
    """The task's labels a report text states as present (each sentence in its language)."""
    from medai.services.reports import stated_labels

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


def _ai(db: Session, study: Study) -> tuple[dict[str, str], str | None]:
    """The model's state of each label (present, absent, indeterminate: the stored decision's,
    ``services.imaging.decision_of``, never re-derived) and its content hash; no states when
    refused."""
    from medai.services.imaging import decision_of

    row = latest_result(db, study.id)
    if row is None or (row.payload or {}).get("refused"):
        return {}, row.model_hash if row is not None else None
    decision = decision_of({"task": study.task, **(row.payload or {})}) or {}
    return {r["label"]: r["state"] for r in decision.get("labels") or []}, row.model_hash


def suggest(
    db: Session, study: Study, sections: dict[str, Any], choices: dict[str, bool] | None = None
) -> list[dict[str, Any]]:
    """One entry per label — {label, ai_positive, ai_state, present, source} — for ``sections``
    (the text to sign) and the radiologist's ``choices``. ``ai_positive`` is the AI's state: True
    present, False absent, None when it suggested nothing (an undecided label, a refused
    image, a label the model does not read)."""
    task = task_of(study)
    if task is None:
        return []
    choices = check_choices(task, choices)
    ai_states, _ = _ai(db, study)
    model_labels = list(ai_states)
    ai_positive = {lab for lab, state in ai_states.items() if state == "present"}
    text = _text(sections)  # findings and impression: what the labels are read from
    said = text_positives(text, task)
    universe = list(model_labels)
    universe += sorted(lab for lab in said | set(choices) if lab not in universe)
    if task.normal and task.normal not in universe:
        universe.append(task.normal)
    present = {lab: lab in said for lab in universe}
    for lab in [x for x in universe if present[x]]:  # parents of a present label
        parent = task.parents.get(lab)
        while parent is not None:
            if parent in present and parent not in choices:
                present[parent] = True
            parent = task.parents.get(parent)
    present.update({lab: v for lab, v in choices.items() if lab in present})
    if task.normal and task.normal not in choices:
        # normal only when nothing else is present and the text says so or the model decided
        # it: an undecided or refused study signed "değerlendirilemedi" is not a normal study
        from medai.services.reports import states_normal

        present[task.normal] = not any(v for lab, v in present.items() if lab != task.normal) and (
            task.normal in ai_positive or states_normal(text)
        )
    out = []
    for lab in universe:
        state = ai_states.get(lab)
        ai = None if state in (None, "indeterminate") else state == "present"
        if lab in choices:  # a click: against what the AI called (nothing called: absent)
            called = (lab in ai_positive) if model_labels else None
            source = (
                "confirmed"
                if called is None or present[lab] == called
                else "rejected"
                if called
                else "added"
            )
        else:
            source = "text"
        out.append(
            {
                "label": lab,
                "ai_positive": ai,
                "ai_state": state,
                "present": present[lab],
                "source": source,
            }
        )
    return out


def record(
    db: Session, study: Study, signed: ReportVersion, choices: dict[str, bool] | None, user: User
) -> list[dict[str, Any]]:
    """Store the labels of a signed version (in the signature's transaction). A signature that
    makes no label present (an undecided or refused study the text does not decide) teaches
    nothing and stores nothing: every task has a normal label, so "all absent" is no label set."""
    items = suggest(db, study, signed.sections, choices)
    if not any(item["present"] for item in items):
        return []
    _, model_hash = _ai(db, study)
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


def latest_versions(*where: Any) -> Select:
    """(study_id, v): each study's latest signed version with labels (``where`` narrows the
    labels counted); callers make it a subquery and join on both columns."""
    return (
        select(StudyLabel.study_id, func.max(StudyLabel.report_version).label("v"))
        .where(*where)
        .group_by(StudyLabel.study_id)
    )


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
