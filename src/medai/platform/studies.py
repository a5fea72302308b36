"""Studies: an uploaded image or DICOM for one imaging task, and the worklist."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medai.core.tasks import TaskError
from medai.core.tasks import get as get_task
from medai.platform.db import utcnow
from medai.platform.tables import AIResultRow, Job, Patient, Study, User

STATUSES = ("received", "analysing", "ai_drafted", "preliminary", "final", "amended",
            "refused", "failed")
LANGUAGES = ("tr", "en")
URGENT_PRIORITY = 100


class StudyError(ValueError):
    pass


def imaging_task(name: str) -> Any:
    try:
        task = get_task(name)
    except TaskError as exc:
        raise StudyError(str(exc)) from None
    if task.kind != "imaging":
        raise StudyError(f"{name!r} is not an imaging task")
    return task


def patient_for(db: Session, ref: str | None) -> Patient | None:
    if not ref:
        return None
    patient = db.scalar(select(Patient).where(Patient.ref == ref))
    if patient is None:
        patient = Patient(ref=ref)
        db.add(patient)
        db.flush()
    return patient


def create(db: Session, user: User, *, sha: str, size: int, content_type: str, task: str,
           patient_ref: str | None = None, question: str | None = None,
           language: str = "tr", urgent: bool = False) -> tuple[Study, Job]:
    """A new study with its analysis job queued (urgent ones first)."""
    spec = imaging_task(task)
    if language not in LANGUAGES:
        raise StudyError(f"language must be one of {LANGUAGES}")
    patient = patient_for(db, patient_ref)
    study = Study(patient_id=patient.id if patient else None, task=task,
                  modality=spec.modality, file_sha256=sha, file_size=size,
                  content_type=content_type[:64], clinical_question=question,
                  language=language, status="received", urgent=urgent, uploaded_by=user.id)
    db.add(study)
    db.flush()
    job = Job(study_id=study.id, kind="analyse", status="queued",
              priority=URGENT_PRIORITY if urgent else 0)
    db.add(job)
    db.flush()
    return study, job


def set_status(study: Study, status: str, reason: str | None = None) -> None:
    if status not in STATUSES:
        raise ValueError(f"unknown study status {status!r}; valid: {', '.join(STATUSES)}")
    study.status = status
    study.reason = reason[:400] if reason else None
    study.updated_at = utcnow()


def worklist(db: Session, status: str | None = None, task: str | None = None,
             urgent: bool | None = None, limit: int = 50, offset: int = 0
             ) -> tuple[list[Study], int]:
    """Urgent studies first, then oldest first (first come, first read)."""
    q = select(Study)
    if status is not None:
        q = q.where(Study.status == status)
    if task is not None:
        q = q.where(Study.task == task)
    if urgent is not None:
        q = q.where(Study.urgent.is_(urgent))
    total = db.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = db.scalars(q.order_by(Study.urgent.desc(), Study.created_at, Study.id)
                      .limit(limit).offset(offset)).all()
    return list(rows), total


def latest_result(db: Session, study_id: int, kind: str = "imaging") -> AIResultRow | None:
    return db.scalar(select(AIResultRow).where(AIResultRow.study_id == study_id,
                                               AIResultRow.kind == kind)
                     .order_by(AIResultRow.id.desc()).limit(1))


def as_dict(db: Session, study: Study, with_result: bool = True) -> dict[str, Any]:
    patient = db.get(Patient, study.patient_id) if study.patient_id else None
    out: dict[str, Any] = {
        "id": study.id, "status": study.status, "task": study.task,
        "modality": study.modality, "urgent": study.urgent, "reason": study.reason,
        "patient_ref": patient.ref if patient else None,
        "clinical_question": study.clinical_question, "language": study.language,
        "file": {"sha256": study.file_sha256, "size": study.file_size,
                 "content_type": study.content_type},
        "uploaded_by": study.uploaded_by,
        "created_at": study.created_at.isoformat() + "Z",
        "updated_at": study.updated_at.isoformat() + "Z",
    }
    if with_result:
        row = latest_result(db, study.id)
        out["ai_result"] = None if row is None else {
            **row.payload, "heatmap_label": row.heatmap_label,
            "has_heatmap": row.heatmap_sha256 is not None}
    return out
