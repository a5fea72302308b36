"""Re-analysing a study as another type: a study filed under the wrong task (a brain MRI
uploaded as a chest film, a DICOM study no routing rule claimed) is analysed again as the
task a person names, instead of being uploaded again (a second study of the same images).

The rule is the one a late instance follows (``review.ai_redraft``): the AI's own unsigned
draft is replaced by the new type's draft; a report a person edited is kept, and its reader
told (``listing.reread_since_report``: ``retask``); a signed report is never re-analysed
behind its signer — refused (409 ``report_signed``: amend it, or retract the study). A study
being analysed is refused too (409 ``analysis_running``), and a retracted one (409
``retracted``). Each request is a reading of its own (``filing.reading_key``), audited as
``reanalyse_as`` by the caller in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medai.core.errors import MedaiError
from medai.platform.access import audit
from medai.platform.context import Platform
from medai.platform.reading import review
from medai.platform.records.db import utcnow
from medai.platform.records.tables import Job, ReportVersion, Study
from medai.platform.worklist import filing, listing, study_state

# the AI's urgency of the old type's reading: void once the study is another type (the new
# reading sets its own); a red flag in the clinician's question stays
AI_URGENCY = ("ai_finding", "ai_possible_finding")


class ReportSigned(MedaiError, Exception):
    status, code = 409, "report_signed"


class AnalysisRunning(MedaiError, Exception):
    status, code = 409, "analysis_running"


@dataclass
class Reanalysis:
    study: Study
    job: Job
    previous: str


def reanalyse_as(db: Session, study: Study, task: str) -> Reanalysis:
    """Set ``study``'s task to ``task`` (an imaging task of the registry, other than its own)
    and queue its analysis again; the caller dispatches the job and audits the request.
    Raises ``StudyError`` (422), ``StudyRetracted``, ``ReportSigned``, ``AnalysisRunning``."""
    study_state.refuse_retracted(db, study, "re-analysed")  # the row locked from here on
    spec = filing.imaging_task(task)
    if task == study.task:
        raise study_state.StudyError(f"study {study.id} is already analysed as {task!r}")
    signed = db.scalar(
        select(func.count(ReportVersion.id)).where(
            ReportVersion.study_id == study.id, ReportVersion.signed_by.is_not(None)
        )
    )
    if signed:
        raise ReportSigned(
            f"study {study.id}'s report is signed: it is not re-analysed as another type "
            "behind its signer; amend the report, or retract the study"
        )
    job = db.scalar(select(Job).where(Job.study_id == study.id, Job.kind == "analyse"))
    if study.status in ("received", "analysing") or (job is not None and job.status == "running"):
        raise AnalysisRunning(
            f"study {study.id} is being analysed; retry once its analysis has finished"
        )
    previous = study.task
    study.task, study.modality = task, spec.modality[:16]
    kept = [r for r in study.urgent_because or [] if r.get("code") not in AI_URGENCY]
    study.urgent_because, study.urgent = kept or None, bool(kept)
    if study.status in ("refused", "failed", "no_model"):
        study_state.set_status(study, "received")  # no report yet: analysed as a new study is
    elif review.withdraw_ai_draft(db, study):
        # the AI's own draft read the study as the old type: never signable as the new one.
        # The study is analysed as a new one is: the new type's draft, or its refusal and
        # the report written by hand
        study_state.set_status(study, "received")
    else:  # a report a person edited: it keeps its state while the new reading runs
        study.updated_at = utcnow()
    return Reanalysis(study, filing._requeue(db, study), previous)


REFUSED = (study_state.StudyError, study_state.StudyRetracted, ReportSigned, AnalysisRunning)
"""The refusals of a request to re-analyse (each audited as ``refused`` with its code)."""


def reanalyse_study(
    p: Platform, study_id: int, actor: audit.Actor, task: str
) -> tuple[dict[str, Any], int, bool]:
    """A person's request to analyse study ``study_id`` again as ``task`` (``reanalyse_as``),
    audited: the study as it is now, the queued job to dispatch and whether it is urgent. A
    refusal (``REFUSED``) is audited in its own transaction with its code, then raised; no
    such study is ``NoSuchStudy``."""
    try:
        with p.db.session() as db:
            done = reanalyse_as(db, study_state.get(db, study_id), task)
            audit.record(
                db, actor, "reanalyse_as", "study", study_id, task=task, previous=done.previous
            )
            db.flush()
            return listing.as_dict(db, done.study), done.job.id, done.study.urgent
    except REFUSED as exc:
        with p.db.session() as db:
            audit.record(
                db, actor, "reanalyse_as", "study", study_id, outcome="refused", task=task,
                code=exc.code,
            )  # fmt: skip
        raise
