"""Site evaluation sets: the hospital's own signed studies a candidate is judged on.

A fixed share of each task's signed studies (``MEDAI_SITE_SET_FRACTION``, chosen by a hash of
the study id, so a study is on the same side forever) is held out: never exported for
retraining (``dataset.export(exclude_site_set=True)``), and frozen into a versioned set when
``build`` runs — the study ids, each study's signed labels at that moment and the image they
were about (``labels.labelled_image``), so neither a later amendment nor a later series
changes a set a verdict was given on. A set with no study is refused
(``model_registry.EmptySiteSet``); a validation on an empty set (one frozen before this rule) says
the set is the problem, not the candidate."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

from sqlalchemy import func, select

from medai.core import task_registry
from medai.platform.dicom.identity_conflicts import open_conflict_clause
from medai.platform.lifecycle.labels import labelled_image, labelled_versions, latest_versions
from medai.platform.lifecycle.model_registry import EmptySiteSet, require_served
from medai.platform.records.localtime import iso_utc
from medai.platform.records.tables import SiteSet, Study, StudyLabel
from medai.platform.worklist.study_state import RETRACTED


def held_out(task: str, study_id: int, fraction: float) -> bool:
    """Whether a study belongs to the task's evaluation side (stable: a hash of its id), of
    which ``fraction`` (``MEDAI_SITE_SET_FRACTION``: ``settings.models.site_set_fraction``) of
    the studies are."""
    h = hashlib.sha256(f"medai-site-set:{task}:{study_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < fraction


def signed_labels(db, task: str) -> dict[int, dict[str, bool]]:
    """{study_id: {label: present}} of the latest signed version of every labelled study (not
    of a study with an open identity conflict: its patient is in doubt; nor of a retracted
    one: entered in error, its labels belong to another patient or study)."""
    latest = latest_versions().subquery()
    rows = db.execute(
        select(StudyLabel.study_id, StudyLabel.label, StudyLabel.present)
        .join(
            latest,
            (latest.c.study_id == StudyLabel.study_id) & (latest.c.v == StudyLabel.report_version),
        )
        .join(Study, Study.id == StudyLabel.study_id)
        .where(Study.task == task, Study.status != RETRACTED, ~open_conflict_clause(Study.id))
    )
    out: dict[int, dict[str, bool]] = {}
    for study_id, label, present in rows:
        out.setdefault(study_id, {})[label] = bool(present)
    return out


def build(db, task: str, actor: str, fraction: float) -> SiteSet:
    """Freeze the task's held-out signed studies (``held_out`` at ``fraction``) as its next
    site set version. An empty set
    is never frozen (``EmptySiteSet``, 409 ``empty_site_set``: no held-out signed study with
    labels), since a validation on it could judge nothing."""
    task_registry.get(task)
    require_served(task, "validated on a site set")
    labelled = signed_labels(db, task)
    studies: list[dict[str, Any]] = [
        {"study_id": sid, "labels": labels}
        for sid, labels in sorted(labelled.items())
        if held_out(task, sid, fraction)
    ]
    signed = {study.id: (study, at) for study, _v, at in labelled_versions(db, task)}
    for item in studies:  # and the image the labels were about, frozen with them (labels
        # without their version's row: the study's file)
        study, at = signed.get(item["study_id"]) or (db.get(Study, item["study_id"]), None)
        item["image"] = labelled_image(db, study, at)
    if not studies:
        refused = EmptySiteSet(
            f"no site set frozen: no signed {task} study with labels is held out for site "
            f"validation yet ({len(labelled)} signed {task} studies have labels; "
            f"MEDAI_SITE_SET_FRACTION={fraction} of them are held out, chosen by a hash of "
            "the study id), and an empty set could judge no candidate. Sign more studies, then "
            "build the set again"
        )
        # read back with getattr(exc, "params", {}): not every MedaiError has one
        refused.params = {"task": task, "labelled": len(labelled)}  # type: ignore[attr-defined]
        raise refused
    counts = Counter(lab for s in studies for lab, present in s["labels"].items() if present)
    version = (db.scalar(select(func.max(SiteSet.version)).where(SiteSet.task == task)) or 0) + 1
    digest = hashlib.sha256(json.dumps(studies, sort_keys=True).encode()).hexdigest()
    row = SiteSet(
        task=task,
        version=version,
        studies=studies,
        label_counts=dict(sorted(counts.items())),
        content_hash="sha256:" + digest,
        created_by=actor[:64],
    )
    db.add(row)
    db.flush()
    return row


def latest(db, task: str) -> SiteSet | None:
    return db.scalar(
        select(SiteSet).where(SiteSet.task == task).order_by(SiteSet.version.desc()).limit(1)
    )


def as_dict(s: SiteSet) -> dict[str, Any]:
    return {
        "id": s.id,
        "task": s.task,
        "version": s.version,
        "studies": len(s.studies),
        "label_counts": s.label_counts,
        "content_hash": s.content_hash,
        "created_by": s.created_by,
        "created_at": iso_utc(s.created_at),
    }
