"""Filing: one way in for every study, whoever brings it. ``file_study`` files a browser upload or a DICOM
instance received by the node (``intake.dicom_node``) the same way — a DICOM instance joins the study of its
StudyInstanceUID (idempotent per SOPInstanceUID) only when it names the same patient and order; one that
names another, a SOP instance sent again with other content (another transfer syntax of the same
instance is not), or one of a series another study holds, is quarantined as an identity conflict
(``dicom.identity_conflicts``) and never merged or analysed. A new study gets its analysis job (queued,
urgent first, deferred until its series settles), and a study no model reads is kept as ``no_model``
without one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medai.core.task_kinds import kind_of
from medai.core.task_registry import TaskError
from medai.core.task_registry import get as get_task
from medai.platform.access import audit
from medai.platform.dicom import identity as dicom
from medai.platform.dicom import identity_conflicts as conflicts
from medai.platform.dicom.arrival import Arrival
from medai.platform.dicom.identity import DicomIdentity
from medai.platform.records.crypto import cipher
from medai.platform.records.db import utcnow
from medai.platform.records.tables import (
    AIResultRow,
    AuditEvent,
    DicomInstance,
    IdentityConflict,
    Job,
    Patient,
    Study,
)
from medai.platform.worklist import patient_context, reading_order
from medai.platform.worklist.ai_results import latest_result
from medai.platform.worklist.held_blobs import hold_blob
from medai.platform.worklist.study_state import (
    LANGUAGES,
    REPORTED,
    RETRACTED,
    StudyError,
    set_status,
)
from medai.services.study_read import NO_IMAGE  # the refusal code of a file without pixels

URGENT_PRIORITY = 100


def imaging_task(name: str) -> Any:
    try:
        task = get_task(name)
    except TaskError as exc:
        raise StudyError(str(exc)) from None
    if not kind_of(task.kind).reads_images:
        raise StudyError(f"{name!r} is not an imaging task (its input is not an image)")
    return task


def patient_for(db: Session, ref: str | None) -> Patient | None:
    """The patient of a pseudonymous reference (made on first use), found by its keyed hash:
    the reference itself is sealed at rest."""
    if not ref:
        return None
    hashes = cipher().pseudonyms(ref)
    patient = db.scalar(select(Patient).where(Patient.ref_hash.in_(hashes)).limit(1))
    if patient is None:
        patient = Patient(ref=ref, ref_hash=hashes[0])
        db.add(patient)
        db.flush()
    return patient


def _queue(db: Session, study: Study, urgent: bool, not_before: datetime | None = None) -> Job:
    job = Job(
        study_id=study.id,
        kind="analyse",
        status="queued",
        priority=URGENT_PRIORITY if urgent else 0,
        not_before=not_before,
    )
    db.add(job)
    db.flush()
    return job


def settled_at(now: datetime | None, source: str, stable_s: float) -> datetime | None:
    """When a study's analysis may start: a modality's study (DICOM) once no instance of it
    has arrived for ``stable_s`` (``MEDAI_STUDY_STABLE_S``, which the receiving face reads
    from ``p.settings.serving``) — a series arrives over seconds, and the study is read whole,
    never from its first slice; an upload (one file, complete) at once."""
    if source != "dicom":
        return None
    return (now or utcnow()) + timedelta(seconds=stable_s)


def reading_key(db: Session, study_id: int) -> str:
    """What an analysis of the study reads, as a key: its stored instances' count and last
    row ("" for an upload, which has none). An instance filed after an analysis changes it,
    so the re-read is a new result beside the old one (``AIResultRow.reading``). A person's
    request to analyse the study again as another type (``platform.reading.reanalysis``) adds
    ``#`` and that request's audit event: each request is a reading of its own, so going
    back to an earlier type is read again (the newest result is the one the page shows)."""
    count, last = db.execute(
        select(func.count(DicomInstance.id), func.max(DicomInstance.id)).where(
            DicomInstance.study_id == study_id
        )
    ).one()
    base = f"{count}:{last}" if count else ""
    asked = db.scalar(
        select(func.max(AuditEvent.id)).where(
            AuditEvent.action == "reanalyse_as",
            AuditEvent.target_type == "study",
            AuditEvent.target_id == str(study_id),
            AuditEvent.outcome == "ok",
        )
    )
    return base if asked is None else f"{base}#{asked}"


def reading_instances(reading: str) -> int | None:
    """The number of instances a reading key names (None: an upload's, which has none)."""
    base = reading.split("#")[0]
    return int(base.split(":")[0]) if base else None


def reading_last(reading: str) -> int | None:
    """The last instance row a reading key names (None: an upload's, which has none): the
    study's instances up to it are the ones that reading saw."""
    base = reading.split("#")[0]
    return int(base.split(":")[1]) if ":" in base else None


def read_already(db: Session, study_id: int, reading: str) -> bool:
    """Whether an imaging result of the study read exactly these instances."""
    return (
        db.scalar(
            select(AIResultRow.id)
            .where(
                AIResultRow.study_id == study_id,
                AIResultRow.kind == "imaging",
                AIResultRow.reading == reading,
            )
            .limit(1)
        )
        is not None
    )


def defer_analysis(
    db: Session, study: Study, now: datetime | None, stable_s: float = 0.0
) -> Job | None:
    """An instance the study's model reads was filed into a known study. Its analysis waits
    until the study has settled again: a queued job's start moves on; a running one runs once
    more when it ends (``jobs.finish``); a finished one is queued again (the study is
    re-opened: a refused or failed study is received again, a reported one keeps its state
    while the new reading runs). Returns the job to dispatch when it was queued again."""
    job = db.scalar(
        select(Job).where(Job.study_id == study.id, Job.kind == "analyse").with_for_update()
    )
    if job is None or study.status in (RETRACTED, "no_model"):
        return None
    at = cast(datetime, settled_at(now, "dicom", stable_s))  # a DICOM study's: never None
    if job.status == "queued":
        job.not_before = max(job.not_before or at, at)
        db.flush()
        return None
    if job.status == "running":
        job.again, job.not_before = True, at
        db.flush()
        return None
    if study.status in ("refused", "failed"):
        set_status(study, "received")
    elif study.status not in REPORTED:
        return None
    return _requeue(db, study, not_before=at)


# why a study is urgent: its clinical question raised a red flag (triage's rules and model), or
# the AI found an urgent label of the task present or could not rule it out (a candidate)
URGENT_REASONS = ("question_red_flag", "ai_finding", "ai_possible_finding", "order_stat")


def add_urgency(study: Study, code: str, label: str | None = None) -> None:
    """Mark ``study`` urgent and say why (once per reason)."""
    if code not in URGENT_REASONS:
        raise ValueError(f"urgency reason {code!r} is not one of {', '.join(URGENT_REASONS)}")
    reason = {"code": code, **({"label": label} if label else {})}
    study.urgent = True
    if reason not in (study.urgent_because or []):
        study.urgent_because = [*(study.urgent_because or []), reason]


def create(db: Session, arrival: Arrival) -> tuple[Study, Job | None]:
    """A new study of ``arrival`` with its analysis job queued (urgent ones first; a DICOM one
    to start once its instances have settled: ``settled_at``); with no task (a DICOM study no
    model reads) it is kept as ``no_model``, without a job. An urgent arrival's question
    raised a red flag: its rules (``reading_order.question_flags``) say why, or the rule is
    not known. The form's patient sex and birth date count for an image whose header does not
    say (``patient_context.columns``)."""
    spec = imaging_task(arrival.task) if arrival.task is not None else None
    if arrival.language not in LANGUAGES:
        raise StudyError(f"language must be one of {LANGUAGES}")
    patient = patient_for(db, arrival.patient_ref)
    identity = arrival.identity
    study = Study(
        patient_id=patient.id if patient else None,
        task=arrival.task or "",
        modality=(spec.modality if spec else (identity.modality if identity else ""))[:16],
        file_sha256=arrival.sha,
        file_size=arrival.size,
        content_type=arrival.content_type[:64],
        clinical_question=arrival.question,
        language=arrival.language,
        status="received" if spec else "no_model",
        reason=None if spec else arrival.no_model_reason[:400],
        urgent=arrival.urgent,
        urgent_because=(list(arrival.red_flags) or [{"code": reading_order.RED_FLAG}])
        if arrival.urgent
        else None,
        red_flag=arrival.urgent,
        uploaded_by=arrival.uploaded_by,
        **(dicom.study_columns(identity, arrival.source) if identity else {}),
        **patient_context.columns(
            identity, arrival.patient_sex, arrival.birth_date, arrival.received_at
        ),
    )
    db.add(study)
    db.flush()
    if spec is None:
        return study, None
    return study, _queue(
        db, study, arrival.urgent, settled_at(arrival.received_at, arrival.source, arrival.stable_s)
    )


@dataclass
class Filed:
    """What ``file_study`` did: ``new`` study, ``joined`` a known one, ``routed`` (a study without a
    model got one through this instance), ``duplicate`` (this instance was stored
    before: nothing changed) or ``conflict`` (quarantined: it names another patient than
    ``study``, or resends a stored instance with other content; ``conflict`` is its row).
    ``job`` is the analysis to dispatch, if one was queued."""

    study: Study
    job: Job | None
    outcome: str
    conflict: IdentityConflict | None = None


def file_study(db: Session, arrival: Arrival, store: Any = None) -> Filed:
    """File one upload or DICOM instance. An instance with all its UIDs joins the study of
    its StudyInstanceUID, stored once per SOPInstanceUID. Two callers filing instances of
    one new study at once race on the unique UIDs: the loser's ``IntegrityError`` means
    "retry in a new transaction", which then joins the winner's study.

    A stored SOP instance arriving in other bytes is the same instance (a ``duplicate``: the
    stored copy stays) when its identity and image are (``conflicts.resend_differs``, which
    reads both files from ``store``; without one it cannot tell, and holds it). An instance
    whose series another study holds is held too (``conflicts.series_owner``)."""
    identity = arrival.identity
    grouped = identity is not None and not identity.missing()
    if identity is not None and not grouped:  # kept, but not grouped by a partial set of UIDs
        identity = replace(identity, study_uid="")
        arrival = replace(arrival, identity=identity)
    ref = arrival.patient_ref

    def hold(into: Study, reason: str, fields: list[str]) -> Filed:
        return _quarantine(db, into, arrival, reason, fields, store)

    def refile(retracted: Study) -> Filed:
        """An instance of a retracted study (one of its own sent again, or a new one under its
        StudyInstanceUID): held as an identity conflict (``retracted_study``) for a radiologist
        to reassign to a study of its own, under the patient it names, or reject. Never joined
        to the retracted study, and never dropped as a duplicate of it."""
        # refiled only when grouped: an identity is present
        ident = cast(DicomIdentity, identity)
        return hold(retracted, "retracted_study", conflicts.check(db, retracted, ident, ref))

    if grouped:
        assert identity is not None  # grouped: an identity with every UID
        known = db.scalar(select(DicomInstance).where(DicomInstance.sop_uid == identity.sop_uid))
        if known is not None:
            study = db.get(Study, known.study_id)
            assert study is not None  # the known instance's study (its foreign key)
            if study.status == RETRACTED:  # filed again, never dropped as a duplicate
                return refile(study)
            if known.file_sha256 == arrival.sha:
                return Filed(study, None, "duplicate")
            fields = conflicts.resend_differs(db, store, known, study, identity, arrival.sha, ref)
            if not fields:  # the same instance in other bytes (another transfer syntax)
                return Filed(study, None, "duplicate")
            return hold(study, "sop_content_differs", fields)
        owner = conflicts.series_owner(db, identity)
        if owner is not None:  # its series is another study's: never a study of its own
            return hold(
                owner,
                "series_elsewhere",
                ["SeriesInstanceUID", *conflicts.check(db, owner, identity, ref)],
            )
        study = db.scalar(select(Study).where(Study.study_uid == identity.study_uid))
        if study is not None and study.status == RETRACTED:
            return refile(study)
        if study is not None:
            fields = conflicts.check(db, study, identity, ref)
            if fields:
                return hold(study, "patient_mismatch", fields)
            job = _route_late(db, study, arrival)
            db.add(_instance_row(arrival, study))
            db.flush()
            if job is not None:
                return Filed(study, job, "routed")
            if arrival.task is not None and arrival.task == study.task:  # the study's model
                job = defer_analysis(
                    db, study, arrival.received_at, arrival.stable_s
                )  # once settled
            return Filed(study, job, "joined")
    study, job = create(db, arrival)
    if grouped:
        db.add(_instance_row(arrival, study))
        db.flush()
    return Filed(study, job, "new")


def _instance_row(arrival: Arrival, study: Study) -> DicomInstance:
    # an instance row is made only for a grouped arrival, which has an identity
    return dicom.instance_row(
        cast(DicomIdentity, arrival.identity),
        study.id,
        arrival.sha,
        arrival.size,
        arrival.calling_ae,
    )


def receive(
    db: Session,
    store: Any,
    actor: audit.Actor,
    arrival: Arrival,
    audit_detail: Callable[[Filed], dict[str, Any]],
) -> Filed:
    """Receiving a study, the core every way in shares (browser upload, DICOM node, STOW-RS,
    DICOMweb pull): the stored blob held (a twin's failure cannot discard it meanwhile), the
    arrival filed (``file_study``) and audited as ``upload`` under ``actor``. ``audit_detail``
    gives the face's own detail from the filing; an identity conflict's id, reason and fields
    follow it. Runs in the caller's transaction."""
    hold_blob(db, store, arrival.sha)
    filed = file_study(db, arrival, store)
    conflict = filed.conflict
    audit.record(
        db,
        actor,
        "upload",
        "study",
        filed.study.id,
        **audit_detail(filed),
        **cast(  # the audit detail's values are JSON values
            dict[str, Any],
            {"conflict": conflict.id, "reason": conflict.reason, "fields": conflict.fields}
            if conflict
            else {},
        ),
    )
    return filed


def _quarantine(
    db: Session, study: Study, arrival: Arrival, reason: str, fields: list[str], store: Any
) -> Filed:
    # the same instance again in other bytes (``storescu -xi``, an upload of what the node
    # stored): the conflict it already made, never a second one (two reassigns would make two
    # studies of one image)
    # held only when grouped: the arrival has an identity
    ident = cast(DicomIdentity, arrival.identity)
    known = conflicts.same_instance_file(db, store, study.id, ident, arrival.sha)
    if known is not None:
        arrival = replace(arrival, sha=known)
    decided = conflicts.decided(db, study.id, arrival.sha)
    if decided is not None and decided.state == "reassigned":  # filed there already
        # a reassigned conflict names the study it was filed into
        return Filed(cast(Study, db.get(Study, decided.resolved_study_id)), None, "duplicate")
    row = decided or conflicts.quarantine(db, study, arrival, reason=reason, fields=fields)
    return Filed(study, None, "conflict", row)


def _route_late(db: Session, study: Study, arrival: Arrival) -> Job | None:
    """A study kept without a model gets one when a later series is one a model reads (a
    lateral view first, the frontal one after): that series becomes the analysed file. So
    does a study refused because its file held no image (a report or a header-only instance
    sent first: ``NO_IMAGE``): the next instance a model reads is analysed instead.

    The study's row is locked first while its analysis may still be deciding: the analysis
    moves on to a later instance under the same lock (``next_instance``), so either it sees
    this instance or this sees its refusal, never neither."""
    task, sha, size, content_type = arrival.task, arrival.sha, arrival.size, arrival.content_type
    if task is None:
        return None
    if study.status in ("received", "analysing", "refused"):
        db.refresh(study, with_for_update=True)
    if study.status == "refused" and refused_for_no_image(db, study):
        analyse_instead(db, study, sha, size, content_type)
    elif study.status == "no_model":
        study.file_sha256, study.file_size, study.content_type = sha, size, content_type[:64]
        set_status(study, "received")
    else:
        return None
    spec = imaging_task(task)
    study.task, study.modality = task, spec.modality[:16]
    return _requeue(
        db, study, not_before=settled_at(arrival.received_at, arrival.source, arrival.stable_s)
    )


def refused_for_no_image(db: Session, study: Study) -> bool:
    """Whether the study's latest AI result refused its file for holding no image."""
    row = latest_result(db, study.id)
    return row is not None and (row.payload or {}).get("reason_code") == NO_IMAGE


def analyse_instead(db: Session, study: Study, sha: str, size: int, content_type: str) -> None:
    """Make ``sha`` the study's analysed file in place of one that held no image: the
    refusal about that file goes (its audit event stays), and the study is ``received``
    again for its analysis to run on this one."""
    for row in db.scalars(
        select(AIResultRow).where(AIResultRow.study_id == study.id, AIResultRow.kind == "imaging")
    ):
        if (row.payload or {}).get("reason_code") == NO_IMAGE:
            db.delete(row)
    study.file_sha256, study.file_size, study.content_type = sha, size, content_type[:64]
    study.display_sha256 = None
    set_status(study, "received")
    db.flush()


def next_instance(db: Session, study: Study) -> bool:
    """The analysis found no image in the study's file: analyse the first instance of the
    study filed after that file's instance instead (True), or there is none (False). Called
    by the analysis with the study's row locked (see ``_route_late``); each call moves to a
    later instance, so a run of image-less instances ends."""
    current = db.scalar(
        select(func.min(DicomInstance.id)).where(
            DicomInstance.study_id == study.id, DicomInstance.file_sha256 == study.file_sha256
        )
    )
    later = (
        None
        if current is None
        else db.scalar(
            select(DicomInstance)
            .where(DicomInstance.study_id == study.id, DicomInstance.id > current)
            .order_by(DicomInstance.id)
            .limit(1)
        )
    )
    if later is None:
        return False
    analyse_instead(db, study, later.file_sha256, later.file_size, study.content_type)
    return True


def _requeue(db: Session, study: Study, not_before: datetime | None = None) -> Job:
    """The study's analysis job queued (again: a study has one, which ran on a file that
    held no image, or before a late instance arrived)."""
    job = db.scalar(select(Job).where(Job.study_id == study.id, Job.kind == "analyse"))
    if job is None:
        return _queue(db, study, study.urgent, not_before)
    job.status, job.worker, job.lease_until, job.error = "queued", None, None, None
    job.attempts, job.started_at, job.finished_at = 0, None, None
    job.not_before, job.again = not_before, False
    job.priority = URGENT_PRIORITY if study.urgent else 0
    db.flush()
    return job


def reassign_conflict(
    db: Session, conflict_id: int, who: str, now: Any, stable_s: float = 0.0
) -> tuple[Study, Job | None]:
    """A person decided that a quarantined instance is another patient's: it becomes a study
    of its own (its analysis queued when a model reads it, a DICOM one to start ``stable_s``
    from now)."""
    row = conflicts.close(db, conflict_id, "reassigned", who, now)
    study, job = create(db, replace(conflicts.arrival_of(row), stable_s=stable_s))
    row.resolved_study_id = study.id
    db.flush()
    return study, job


def reassign_instance(
    db: Session, conflict_id: int, actor: audit.Actor, who: str, now: Any, stable_s: float = 0.0
) -> tuple[IdentityConflict, Study, Job | None]:
    """A radiologist's decision that a quarantined instance is another patient's
    (``reassign_conflict``), audited in the same transaction; the conflict, the new study and
    its analysis job (the caller dispatches it after the commit)."""
    study, job = reassign_conflict(db, conflict_id, who, now, stable_s=stable_s)
    row = conflicts.get(db, conflict_id)
    audit.record(
        db,
        actor,
        "resolve",
        "identity_conflict",
        conflict_id,
        op="reassign",
        study=row.study_id,
        new_study=study.id,
    )
    return row, study, job


def reject_instance(
    db: Session, conflict_id: int, actor: audit.Actor, who: str, now: Any
) -> IdentityConflict:
    """A radiologist's decision that a quarantined instance is not filed
    (``identity_conflicts.reject``), audited in the same transaction; the caller discards its
    file after the commit (``held_blobs.discard_unnamed``) unless something else names it."""
    row = conflicts.reject(db, conflict_id, who, now)
    audit.record(
        db, actor, "resolve", "identity_conflict", conflict_id, op="reject", study=row.study_id
    )
    return row
