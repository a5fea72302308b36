"""Retracting a study as entered in error (IHE Imaging Object Change Management).

When the wrong patient's instance arrived first, the study itself is wrong: filed under the
wrong patient (``wrong_patient``) or order (``wrong_study``), or withdrawn for patient safety
(``safety``). A radiologist retracts it (``POST /api/v1/studies/{id}/retract``; an admin reads
no patient data and may not), in one transaction:

- the study's status becomes ``entered_in_error`` (``studies.RETRACTED``): off the worklist
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
to a study of their own under the patient they name, or reject (``studies.file_study``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medai.platform.delivery import outbox
from medai.platform.records.tables import Study, StudyRetraction, User
from medai.platform.worklist.studies import RETRACTED, StudyRetracted, lock_study, set_status

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
    db: Session, study: Study, user: User, reason: str, note: str | None, now: datetime
) -> Retracted:
    """Retract ``study`` (see the module doc). Raises ``StudyRetracted`` (409) when it was
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
    cancelled = outbox.cancel_pending(db, study.id, now)
    corrections = outbox.on_retracted(db, study)
    db.flush()
    return Retracted(study, row, cancelled, [r.destination for r in corrections])
