"""Retracting a study as entered in error (IHE Imaging Object Change Management).

When the wrong patient's instance arrived first, the study itself is wrong: filed under the
wrong patient (``wrong_patient``) or order (``wrong_study``), or withdrawn for patient safety
(``safety``). A radiologist retracts it (``POST /api/v1/studies/{id}/retract``; an admin reads
no patient data and may not), in one transaction:

- the study's status becomes ``entered_in_error`` (``study_state.RETRACTED``): off the worklist
  unless asked for, never analysed, edited, signed or delivered again (409 ``retracted``); its
  page, PDF and FHIR export say so; a second retraction is 409 ``retracted`` too;
- the retraction is recorded (``StudyRetraction``: who, when, the reason, the radiologist's
  note sealed at rest, the status it had) and audited (``retract``; the note is not in the
  audit event, only its length);
- its queued deliveries are cancelled, and every destination that already received something
  gets the correction (``outbox.on_retracted``): the FHIR report ``entered-in-error``, the HL7
  ORU withdrawn (W), the PACS an IOCM rejection note (``dicom_rejection``).

Its instances are not deleted; sent again (the modality or PACS re-sends them, corrected or
not), they are held as identity conflicts (``retracted_study``) for a radiologist to reassign
to a study of their own under the patient they name, or reject (``filing.file_study``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medai.platform.access import audit
from medai.platform.context import Platform
from medai.platform.delivery import outbox
from medai.platform.records.tables import Study, StudyRetraction, User
from medai.platform.worklist import listing, reading_order, study_state
from medai.platform.worklist.study_state import RETRACTED, StudyRetracted, lock_study, set_status

REASONS = ("wrong_patient", "wrong_study", "safety")
MAX_NOTE_CHARS = 2000


@dataclass(frozen=True)
class Retracted:
    """What a retraction did: the study, its record, how many queued deliveries it cancelled
    and which destinations get a correction."""

    study: Study
    row: StudyRetraction
    cancelled: int
    corrections: list[str]


def retract(
    db: Session,
    study: Study,
    user: User,
    reason: str,
    note: str | None,
    now: datetime,
    *,
    destinations: Iterable[Any],
) -> Retracted:
    """Retract ``study`` (see the module doc); ``destinations``: the configured ones, each
    that received something gets a correction. Raises ``StudyRetracted`` (409) when it was
    retracted already, ``ValueError`` for a reason not in ``REASONS``."""
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {', '.join(REASONS)}")
    lock_study(db, study)  # a signature, an edit or the analysis's draft at once: one first
    if study.status == RETRACTED:
        raise StudyRetracted(f"study {study.id} was retracted already")
    row = StudyRetraction(
        study_id=study.id,
        reason=reason,
        note=(note or "").strip()[:MAX_NOTE_CHARS] or None,
        retracted_by=user.id,
        previous_status=study.status,
        created_at=now,
    )
    db.add(row)
    try:
        db.flush()
    except IntegrityError:  # two radiologists at once: the unique study id lets one in
        db.rollback()
        raise StudyRetracted(f"study {study.id} was retracted already") from None
    # an analysis job not run yet finds the status and does nothing; one running stops
    # before its draft (``analysis.analyse_study``)
    set_status(study, RETRACTED)
    reading_order.refresh_patient(db, study)  # its signed findings are no longer known
    cancelled = outbox.cancel_pending(db, study.id, now)
    corrections = outbox.on_retracted(db, study, destinations)
    db.flush()
    return Retracted(study, row, cancelled, [r.destination for r in corrections])


def retract_study(
    p: Platform,
    study_id: int,
    user: User,
    actor: audit.Actor,
    reason: str,
    note: str | None,
) -> dict[str, Any]:
    """A person's retraction of study ``study_id`` (``retract``), audited with what it did
    (the status it had, how many deliveries it cancelled, which destinations get a
    correction): the study as it is now. One retracted already is refused (``StudyRetracted``,
    409), that refusal audited in its own transaction; no such study is ``NoSuchStudy``."""
    try:
        with p.db.session() as db:
            done = retract(
                db,
                study_state.get(db, study_id),
                user,
                reason,
                note,
                p.clock(),
                destinations=p.settings.destinations(),
            )
            audit.record(
                db,
                actor,
                "retract",
                "study",
                study_id,
                reason=reason,
                previous_status=done.row.previous_status,
                note_chars=len(done.row.note or ""),
                cancelled=done.cancelled,
                corrections=done.corrections,
            )
            return listing.as_dict(db, done.study)
    except StudyRetracted:
        with p.db.session() as db:
            audit.record(db, actor, "retract", "study", study_id, outcome="conflict", reason=reason)
        raise
