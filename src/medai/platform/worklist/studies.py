"""Studies: an uploaded image or DICOM for one imaging task, and the worklist.

One way in for every study, whoever brings it: ``file_study`` files a browser upload or a DICOM
instance received by the node (``integration.dicom_node``) the same way — a DICOM instance
joins the study of its StudyInstanceUID (idempotent per SOPInstanceUID) only when it names the
same patient and order; one that names another, a SOP instance sent again with other content
(another transfer syntax of the same instance is not), or one of a series another study holds,
is quarantined as an identity conflict (``platform.identity_conflicts``) and never merged or
analysed. A new study gets its analysis job, and a study no model reads is kept as
``no_model`` without one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medai.core.errors import MedaiError
from medai.core.faults import StorageMissing
from medai.core.task_registry import TaskError
from medai.core.task_registry import get as get_task
from medai.platform.access import audit
from medai.platform.dicom import identity as dicom
from medai.platform.dicom import identity_conflicts as conflicts
from medai.platform.dicom.arrival import Arrival
from medai.platform.documents.report_words import SIGNED
from medai.platform.records.crypto import cipher
from medai.platform.records.db import lock_key, utcnow
from medai.platform.records.tables import (
    AIResultRow,
    AuditEvent,
    DicomInstance,
    IdentityConflict,
    Job,
    Patient,
    ReportVersion,
    Study,
    StudyRetraction,
    User,
)
from medai.platform.worklist import patient_context, reading_order, study_order
from medai.services.imaging import decision_of

# no_model: a DICOM study no task's routing rule claims (stored, never analysed; reported by
# hand like a refused one)
STATUSES = (
    "received",
    "analysing",
    "ai_drafted",
    "preliminary",
    "final",
    "amended",
    "refused",
    "failed",
    "no_model",
    "entered_in_error",
)
# a study a radiologist retracted (``platform.retraction``): off the worklist unless asked for,
# never analysed, signed or delivered again; its instances, sent again, are held as conflicts
RETRACTED = "entered_in_error"
LANGUAGES = ("tr", "en")
URGENT_PRIORITY = 100


class StudyError(MedaiError, ValueError):
    status, code = 422, "invalid"


class StudyRetracted(MedaiError, Exception):
    """The study was retracted as entered in error: nothing more is done with it (409)."""

    status, code = 409, "retracted"


class NoSuchStudy(MedaiError, LookupError):
    status, code = 404, "not_found"


def get(db: Session, study_id: int) -> Study:
    """The study of ``study_id``; ``NoSuchStudy`` (404) when there is none."""
    study = db.get(Study, study_id)
    if study is None:
        raise NoSuchStudy(f"no study {study_id}")
    return study


def lock_study(db: Session, study: Study) -> Study:
    """``study`` re-read with its row locked for this transaction (PostgreSQL ``FOR UPDATE``;
    a SQLite session already holds the database's write lock). What changes a study's fate —
    a retraction, a signature, an edit, the analysis's draft — takes it first, so two of them
    at once run one after the other and the second sees the first's outcome (a signature that
    raced a retraction is refused, never committed over it)."""
    db.refresh(study, with_for_update=True)
    return study


def check_not_retracted(study: Study, what: str) -> None:
    """Raise ``StudyRetracted`` for a retracted study (``what``: the refused action, e.g.
    "signed"), as read: what only reads about the study (chat, label suggestions) needs no lock."""
    if study.status == RETRACTED:
        raise StudyRetracted(
            f"study {study.id} was retracted (entered in error): it cannot be {what}"
        )


def refuse_retracted(db: Session, study: Study, what: str) -> None:
    """``check_not_retracted`` with the study's row locked first (``lock_study``): for what
    changes the study (an edit, a signature)."""
    lock_study(db, study)
    check_not_retracted(study, what)


def imaging_task(name: str) -> Any:
    try:
        task = get_task(name)
    except TaskError as exc:
        raise StudyError(str(exc)) from None
    if task.kind != "imaging":
        raise StudyError(f"{name!r} is not an imaging task")
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
    request to analyse the study again as another type (``platform.reanalysis``) adds
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


# a study in these states was read and a report made from it: a late instance re-reads it
# without touching the report's state (``analysis``: the draft is replaced only while unsigned
# and the AI's own; after sign-off the signer is told, never a silent change)
REPORTED = ("ai_drafted", "preliminary", "final", "amended")


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
    at = settled_at(now, "dicom", stable_s)
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
        return hold(retracted, "retracted_study", conflicts.check(db, retracted, identity, ref))

    if grouped:
        known = db.scalar(select(DicomInstance).where(DicomInstance.sop_uid == identity.sop_uid))
        if known is not None:
            study = db.get(Study, known.study_id)
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
    return dicom.instance_row(
        arrival.identity, study.id, arrival.sha, arrival.size, arrival.calling_ae
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
        **(
            {"conflict": conflict.id, "reason": conflict.reason, "fields": conflict.fields}
            if conflict
            else {}
        ),
    )
    return filed


def _quarantine(
    db: Session, study: Study, arrival: Arrival, reason: str, fields: list[str], store: Any
) -> Filed:
    # the same instance again in other bytes (``storescu -xi``, an upload of what the node
    # stored): the conflict it already made, never a second one (two reassigns would make two
    # studies of one image)
    known = conflicts.same_instance_file(db, store, study.id, arrival.identity, arrival.sha)
    if known is not None:
        arrival = replace(arrival, sha=known)
    decided = conflicts.decided(db, study.id, arrival.sha)
    if decided is not None and decided.state == "reassigned":  # filed there already
        return Filed(db.get(Study, decided.resolved_study_id), None, "duplicate")
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


NO_IMAGE = "no_image"
"""The refusal code of a file without pixel data (``services.imaging``'s ``NoPixelData``)."""


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


def set_status(study: Study, status: str, reason: str | None = None) -> None:
    if status not in STATUSES:
        raise ValueError(f"unknown study status {status!r}; valid: {', '.join(STATUSES)}")
    study.status = status
    study.reason = reason[:400] if reason else None
    study.updated_at = utcnow()


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


def latest_result(db: Session, study_id: int, kind: str = "imaging") -> AIResultRow | None:
    return db.scalar(
        select(AIResultRow)
        .where(AIResultRow.study_id == study_id, AIResultRow.kind == kind)
        .order_by(AIResultRow.id.desc())
        .limit(1)
    )


def ai_label_rows(db: Session, study: Study) -> tuple[list[dict[str, Any]], str | None]:
    """The label rows of the study's latest imaging result's decision (each with its one
    ``state`` and, for an undecided one that follows a sub-finding, ``implied_by``: the stored
    decision's, ``services.imaging.decision_of``, never re-derived) and that result's model
    hash; no rows when it refused the image or there is none."""

    row = latest_result(db, study.id)
    if row is None or (row.payload or {}).get("refused"):
        return [], row.model_hash if row is not None else None
    decision = decision_of({"task": study.task, **(row.payload or {})}) or {}
    return list(decision.get("labels") or []), row.model_hash


def ai_label_states(db: Session, study: Study) -> tuple[dict[str, str], str | None]:
    """The model's state of each label in the study's latest imaging result (present, absent,
    indeterminate; ``ai_label_rows``) and that result's model hash."""

    rows, model_hash = ai_label_rows(db, study)
    return {r["label"]: r["state"] for r in rows}, model_hash


def stored_result(
    p: Any, study_id: int, kind: str, model_hash: str, reading: str = ""
) -> AIResultRow | None:
    with p.db.session() as db:
        return db.scalar(
            select(AIResultRow).where(
                AIResultRow.study_id == study_id,
                AIResultRow.kind == kind,
                AIResultRow.model_hash == model_hash,
                AIResultRow.reading == reading,
            )
        )


def save_result(
    p: Any,
    study_id: int,
    kind: str,
    model,
    payload: dict,
    heatmap: tuple[str, str] | None = None,
    reading: str = "",
) -> AIResultRow:
    """Store one AI result naming its model and what it read (a twin delivery's stored row
    wins)."""
    try:
        with p.db.session() as db:
            row = AIResultRow(
                study_id=study_id,
                kind=kind,
                model_name=model.name,
                model_version=model.version,
                model_hash=model.content_hash,
                reading=reading,
                payload=payload,
                heatmap_sha256=heatmap[0] if heatmap else None,
                heatmap_label=heatmap[1] if heatmap else None,
            )
            db.add(row)
        return row
    except IntegrityError:  # a twin delivery stored it first
        return stored_result(p, study_id, kind, model.content_hash, reading)


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
) -> dict[str, Any]:
    """The study for the API; a worklist row (``with_result`` false) passes the instances
    and open identity conflicts it read for the whole page and leaves out the series (unless
    ``with_series``). ``with_priors``: its patient's prior studies too
    (``patient_context.prior_list``; the caller audits each as viewed)."""
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
            study, dicom_instances, with_series=with_result if with_series is None else with_series
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
        # read again because a person asked for another type (``platform.reanalysis``), not
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


def with_states(payload: dict[str, Any]) -> dict[str, Any]:
    """A stored imaging result as every view reads it: its decision with each label's one
    ``state`` (results stored before states existed included), and ``findings`` the decision's
    rows, so no view re-derives present, absent or undecided from probabilities."""

    decision = decision_of(payload) if payload.get("task") else None
    if decision is None:
        return dict(payload)
    return {**payload, "decision": decision, "findings": decision["labels"]}


def _blob_key(sha: str) -> str:
    return f"blob:{sha}"


def hold_blob(db: Session, store: Any, sha: str) -> None:
    """Before a row names the stored file ``sha``: take the file's lock for this transaction
    and check the file is there. A failed upload of the same content on another host or
    thread discards it only under the same lock (``discard_unnamed``), so either that
    discard sees this row and keeps the file, or this check sees it gone and the caller is
    told (``StorageMissing``: the API's 503, the DICOM node's Out of Resources, both retried
    by the sender) instead of filing a study without its file."""

    lock_key(db, _blob_key(sha))
    db.connection()  # SQLite: the write lock (BEGIN IMMEDIATE) is taken before the check
    if not store.exists(sha):
        raise StorageMissing(str(store.path(sha)))


def _named(db: Session, sha: str) -> bool:
    return (
        db.scalar(select(Study.id).where(Study.file_sha256 == sha).limit(1))
        or db.scalar(select(DicomInstance.id).where(DicomInstance.file_sha256 == sha).limit(1))
        or db.scalar(
            select(IdentityConflict.id)
            .where(IdentityConflict.file_sha256 == sha, IdentityConflict.state == "open")
            .limit(1)
        )
    ) is not None


def discard_unnamed(p: Any, sha: str, what: str) -> None:
    """Take away the stored file ``sha`` of an upload or instance that got no row, unless a
    study or a DICOM instance names it (the same file arrived meanwhile). The check and the
    removal hold the file's lock (``hold_blob``): a study of the same content filed at the
    same moment on another node either commits first (its row is seen, the file stays) or
    finds the file gone and is refused. A database that takes no write (read-only, full)
    files no row either, so a read decides there; when the database cannot be read the file
    stays: an orphan file is safer than a study without its file."""
    import logging

    try:
        with p.db.session() as db:
            lock_key(db, _blob_key(sha))
            if not _named(db, sha):
                p.store.discard(sha)  # inside the lock: no row can name it meanwhile
        return
    except Exception:  # the read below decides, or keeps the file
        pass
    try:
        with p.db.reader() as db:
            named = _named(db, sha)
    except Exception as exc:
        logging.getLogger("medai.platform").warning(
            "blob of %s kept: the database cannot be read (%s)", what, type(exc).__name__
        )
        return
    if not named:
        p.store.discard(sha)
