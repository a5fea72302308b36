"""The worklist and a study as every face reads it: the filtered, ranked pages, a study's instances,
``as_dict`` (the one serialisation), what was read again since the report, the retraction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medai.platform.access import audit
from medai.platform.dicom import identity as dicom
from medai.platform.dicom import identity_conflicts as conflicts
from medai.platform.documents.words.report_words import SIGNED
from medai.platform.records.tables import (
    AIResultRow,
    DicomInstance,
    Patient,
    ReportVersion,
    Study,
    StudyRetraction,
    User,
)
from medai.platform.worklist import patient_context, reading_order, study_order
from medai.platform.worklist.ai_results import latest_result, with_states
from medai.platform.worklist.filing import reading_instances
from medai.platform.worklist.study_state import RETRACTED


def worklist(
    db: Session,
    status: str | None = None,
    task: str | None = None,
    urgent: bool | None = None,
    limit: int = 50,
    offset: int = 0,
    accession: str | None = None,
    ai: str | None = None,
    red_flag: bool | None = None,
    signed: bool | None = None,
) -> tuple[list[Study], int]:
    """In reading order (``reading_order``: an urgent AI finding first, then a red flag in
    the clinical question, then the rest; oldest first within each), ranked and paged by the
    database. ``accession`` finds the studies whose accession number starts with it; ``ai``
    one AI state (``reading_order.AI_FILTERS``); ``red_flag`` whether the question raised
    one; ``urgent`` the study's urgency flag (either reason, or the analysis's priority);
    ``signed`` whether its report is signed (final or amended: ``SIGNED``) — the web
    worklist's default list is the unsigned one (issue 69), what a radiologist reads from."""
    q = select(Study)
    if status != RETRACTED:  # a retracted study is listed only when asked for
        q = q.where(Study.status != RETRACTED)
    if accession:
        q = q.where(Study.accession.startswith(accession.strip(), autoescape=True))
    if status is not None:
        q = q.where(Study.status == status)
    if task is not None:
        q = q.where(Study.task == task)
    if urgent is not None:
        q = q.where(Study.urgent.is_(urgent))
    if ai is not None:
        q = reading_order.where_ai(q, ai)
    if red_flag is not None:
        q = q.where(Study.red_flag.is_(red_flag))
    if signed is not None:
        q = q.where(Study.status.in_(SIGNED) if signed else Study.status.not_in(SIGNED))
    total = db.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = db.scalars(reading_order.order(q).limit(limit).offset(offset)).all()
    return list(rows), total


def worklist_page(
    p: Any,
    actor: audit.Actor,
    status: str | None = None,
    task: str | None = None,
    urgent: bool | None = None,
    limit: int = 50,
    offset: int = 0,
    accession: str | None = None,
    ai: str | None = None,
    red_flag: bool | None = None,
    signed: bool | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """One page of the worklist (``worklist``'s filters and order), audited as viewed: each
    study as ``as_dict`` gives it without its result, with its stored instances, its open
    identity conflicts and its ``reading`` (``reading_order.summaries``: why it is where it
    is), and how many studies match in all."""
    with p.db.session() as db:
        rows, total = worklist(
            db,
            status,
            task,
            urgent,
            limit,
            offset,
            accession,
            ai=ai,
            red_flag=red_flag,
            signed=signed,
        )
        ids = [s.id for s in rows]
        found, held = instances(db, ids), conflicts.open_by_study(db, ids)
        said = reading_order.summaries(db, rows, held)
        items = [
            {
                **as_dict(
                    db, s, with_result=False, dicom_instances=found[s.id], open_conflicts=held[s.id]
                ),
                "reading": said[s.id],
            }
            for s in rows
        ]
        audit.record(db, actor, "view", "worklist", None, results=len(items))
    return items, total


def instances(db: Session, study_ids: list[int]) -> dict[int, list[DicomInstance]]:
    """The stored DICOM instances of these studies (one query), in series and instance
    order."""
    out: dict[int, list[DicomInstance]] = {sid: [] for sid in study_ids}
    if study_ids:
        rows = db.scalars(
            select(DicomInstance)
            .where(DicomInstance.study_id.in_(study_ids))
            .order_by(
                DicomInstance.series_number,
                DicomInstance.series_uid,
                DicomInstance.instance_number,
                DicomInstance.id,
            )
        )
        for row in rows:
            out[row.study_id].append(row)
    return out


def as_dict(
    db: Session,
    study: Study,
    with_result: bool = True,
    dicom_instances: list[DicomInstance] | None = None,
    with_series: bool | None = None,
    open_conflicts: list[int] | None = None,
    with_priors: bool = False,
    shown_sha: str | None = None,
) -> dict[str, Any]:
    """The study for the API; a worklist row (``with_result`` false) passes the instances
    and open identity conflicts it read for the whole page and leaves out the series (unless
    ``with_series``). ``with_priors``: its patient's prior studies too
    (``patient_context.prior_list``; the caller audits each as viewed). ``shown_sha``: the
    image a document shows when it is not the study's own (``series_view.picture_of``)."""
    patient = db.get(Patient, study.patient_id) if study.patient_id else None
    if dicom_instances is None:
        dicom_instances = instances(db, [study.id])[study.id]
    out: dict[str, Any] = {
        "id": study.id,
        "status": study.status,
        "task": study.task,
        "modality": study.modality,
        "urgent": study.urgent,
        "urgent_because": list(study.urgent_because or []),
        "reason": study.reason,
        "patient_ref": patient.ref if patient else None,
        "patient": patient_context.as_dict(study),
        "clinical_question": study.clinical_question,
        "language": study.language,
        "file": {
            "sha256": study.file_sha256,
            "size": study.file_size,
            "content_type": study.content_type,
        },
        "uploaded_by": study.uploaded_by,
        "identity_conflicts": conflicts.open_by_study(db, [study.id])[study.id]
        if open_conflicts is None
        else open_conflicts,
        "dicom": dicom.as_dict(
            study,
            dicom_instances,
            with_series=with_result if with_series is None else with_series,
            shown_sha=shown_sha,
        ),
        "created_at": study.created_at.isoformat() + "Z",
        "updated_at": study.updated_at.isoformat() + "Z",
        "retraction": retraction_of(db, study),
    }
    if with_result:
        row = latest_result(db, study.id)
        out["ai_result"] = (
            None
            if row is None
            else with_states(row.payload)
            | {"heatmap_label": row.heatmap_label, "has_heatmap": row.heatmap_sha256 is not None}
        )
        out["reread"] = reread_since_report(db, study.id)
        out["order"] = study_order.of_study(db, study.id)  # an HL7 order applied (intake)
    if with_priors:
        out["priors"] = patient_context.prior_list(db, study)
    return out


def reread_since_report(db: Session, study_id: int) -> dict[str, Any] | None:
    """The AI read the study again (instances arrived late) after the report was made from
    an earlier reading, and the report was kept (signed, or edited by a person): the reader is
    told, never overruled (``review.ai_redraft``). None when the report is from the newest
    reading."""
    newest = latest_result(db, study_id, "draft")
    cur = db.scalar(
        select(ReportVersion)
        .where(ReportVersion.study_id == study_id)
        .order_by(ReportVersion.version.desc())
        .limit(1)
    )
    if newest is None or cur is None or cur.ai_result_id in (None, newest.id):
        return None
    if cur.ai_result_id > newest.id:
        return None
    signed = db.scalar(
        select(func.count(ReportVersion.id)).where(
            ReportVersion.study_id == study_id, ReportVersion.signed_by.is_not(None)
        )
    )
    made_from = db.get(AIResultRow, cur.ai_result_id)
    asked = newest.reading.partition("#")[2]
    made_as = made_from.reading.partition("#")[2] if made_from else ""
    return {
        "signed": bool(signed),
        "at": newest.created_at.isoformat() + "Z",
        "instances": reading_instances(newest.reading),
        # read again because a person asked for another type (``platform.reading.reanalysis``), not
        # because images arrived late
        "retask": bool(asked) and asked != made_as,
    }


def retraction_of(db: Session, study: Study) -> dict[str, Any] | None:
    """Who retracted the study, when and why (None: not retracted); the note is the
    radiologist's own text (patient data: the API shows it to clinical users only)."""
    if study.status != RETRACTED:
        return None
    row = db.scalar(select(StudyRetraction).where(StudyRetraction.study_id == study.id))
    if row is None:
        return None
    by = db.get(User, row.retracted_by)
    return {
        "reason": row.reason,
        "note": row.note,
        "by": by.username if by else None,
        "at": row.created_at.isoformat() + "Z",
        "previous_status": row.previous_status,
    }
