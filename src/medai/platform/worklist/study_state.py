"""A study's status and the guard every change passes: the statuses, a study by id (404 ``NoSuchStudy``), its row locked, a retracted study refused (409 ``StudyRetracted``)."""

from __future__ import annotations

from typing import Literal, get_args

from sqlalchemy.orm import Session

from medai.core.errors import MedaiError
from medai.platform.records.db import utcnow
from medai.platform.records.tables import (
    Study,
)

# no_model: a DICOM study no task's routing rule claims (stored, never analysed; reported by
# hand like a refused one)
StudyStatus = Literal[
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
]
# written once: the API's schemas take the type, every check the tuple
STATUSES: tuple[str, ...] = get_args(StudyStatus)


# a study a radiologist retracted (``platform.reading.retraction``): off the worklist unless asked
# for, never analysed, signed or delivered again; its instances, sent again, are held as conflicts
RETRACTED = "entered_in_error"


LANGUAGES = ("tr", "en")


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


def locked(db: Session, study_id: int) -> Study:
    """The study of ``study_id`` read afresh with its row locked for this transaction
    (``lock_study``: what changes its fate takes it first); ``NoSuchStudy`` when there is
    none."""
    study = db.get(Study, study_id, with_for_update=True, populate_existing=True)
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


# a study in these states was read and a report made from it: a late instance re-reads it
# without touching the report's state (``analysis``: the draft is replaced only while unsigned
# and the AI's own; after sign-off the signer is told, never a silent change)
REPORTED = ("ai_drafted", "preliminary", "final", "amended")


def set_status(study: Study, status: str, reason: str | None = None) -> None:
    if status not in STATUSES:
        raise ValueError(f"unknown study status {status!r}; valid: {', '.join(STATUSES)}")
    study.status = status
    study.reason = reason[:400] if reason else None
    study.updated_at = utcnow()
