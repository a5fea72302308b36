"""Key rotation of everything sealed in the database (``medai keys rotate``).

``SEALED`` is the one list of columns that hold patient data under a key: the ones the code
seals itself (a chat message, a complaint, a DICOM patient ID, name and identity, a quarantined
instance's identity) and the ``platform.records.sealed`` columns (a clinical question, a report's
sections, findings and citations, an AI result's payload with its draft, a triage result, a
patient reference, a series description, the signer's labels, monitoring's samples, a site
set's verdicts, a validation's per-study outputs, a study's refusal reason and the finding a
heatmap is drawn for). Each
is re-encrypted under the newest key, and each patient's lookup hash (a reference's, a study's
PatientID's) recomputed with it, so
that the older keys can then be removed.

Report versions are append-only in the database itself (a trigger refuses an UPDATE): the
rotation, run from the server's shell (the hospital's trust root, like a migration), lifts that
trigger for its own transaction only, re-encrypts the sections (the same plaintext, checked) and
puts the trigger back before it commits. Lifting it locks ``report_versions`` (on PostgreSQL,
reads wait too) until the commit, so report versions go last, in a transaction of their own that
holds no other row: the rest is committed first. A server analysing meanwhile (it updates a
study, then adds a report version) then only waits, where one transaction holding both would
deadlock with it. A large database is best rotated in a quiet hour.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from sqlalchemy import Integer, select, table, text, update
from sqlalchemy import column as sa_column
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from medai.platform.records.crypto import cipher
from medai.platform.records.tables import (
    AIResultRow,
    DicomInstance,
    IdentityConflict,
    ImagingOrder,
    Message,
    MonitorSample,
    Patient,
    ReportVersion,
    SiteSet,
    Study,
    StudyLabel,
    StudyRetraction,
    TriageRecord,
    Validation,
)
from medai.platform.worklist.patient_context import hash_of

# (table, column attribute): a bytes token, a token's text, or a JSON string holding one
SEALED: tuple[tuple[Any, str], ...] = (
    (Message, "body"),
    (TriageRecord, "complaint"),
    (TriageRecord, "result"),
    (Study, "patient_key"),
    (Study, "patient_name"),
    (Study, "patient_identity"),
    (Study, "clinical_question"),
    (Study, "patient_birth_date"),
    (IdentityConflict, "identity"),
    (StudyRetraction, "note"),
    (AIResultRow, "payload"),
    (Patient, "ref"),
    (Study, "urgent_because"),
    (Study, "reason"),
    (AIResultRow, "heatmap_label"),
    (DicomInstance, "series_description"),
    (StudyLabel, "label"),
    (StudyLabel, "present"),
    (StudyLabel, "ai_positive"),
    (StudyLabel, "source"),
    (MonitorSample, "probs"),
    (MonitorSample, "positives"),
    (MonitorSample, "stats"),
    (MonitorSample, "meta"),
    (SiteSet, "studies"),
    (Validation, "metrics"),
    (ImagingOrder, "patient_key"),
    (ImagingOrder, "question"),
    (ImagingOrder, "priority"),
    (ImagingOrder, "ordering_physician"),
    (ReportVersion, "sections"),
    (ReportVersion, "findings"),
    (ReportVersion, "citations"),
)  # append-only last: it locks the table
APPEND_ONLY = {"report_versions"}
# (table, column): the migration that sealed a column an older schema already had in clear. A
# database of an older schema (a backup of the previous release, before ``medai migrate``)
# still holds those values in clear: ``backup.sealed_columns`` leaves the column out there,
# where every clear value would count as one no key opens
SEALED_SINCE: dict[tuple[str, str], str] = {
    ("studies", "reason"): "0027",
    ("ai_results", "heatmap_label"): "0027",
}


def _raw(model: Any, attr: str) -> tuple[Any, Any, Any]:
    """A table clause with the id and the database column behind ``attr`` under its stored
    type (the token, not the value the sealed type would decrypt): table, id, column."""
    column = getattr(model, attr).property.columns[0]
    stored = getattr(column.type, "impl_instance", column.type)
    t = table(model.__tablename__, sa_column("id", Integer()), sa_column(column.name, stored))
    return t, t.c.id, t.c[column.name]


def _batches(db: Session, model: Any, attr: str, batch: int) -> Iterator[list[tuple[int, Any]]]:
    _t, ids, column = _raw(model, attr)
    last = 0
    while True:
        rows = db.execute(
            select(ids, column).where(ids > last, column.is_not(None)).order_by(ids).limit(batch)
        ).all()
        if not rows:
            return
        yield [(r[0], r[1]) for r in rows]
        last = rows[-1][0]


def _rotated(token: Any) -> Any:
    """The same plaintext under the newest key, in the form it was stored (bytes or text)."""
    c = cipher()
    if isinstance(token, str):
        return c.rotate(token.encode("ascii")).decode("ascii")
    return c.rotate(bytes(token))


def _trigger(db: Session, table: str, lift: bool) -> None:
    """Drop or re-create the trigger that refuses an UPDATE of an append-only table (the DDL
    of migration 0001)."""
    name, dialect = f"{table}_no_update", db.get_bind().dialect.name
    if lift:
        db.execute(
            text(
                f"DROP TRIGGER IF EXISTS {name}"
                + (f" ON {table}" if dialect == "postgresql" else "")
            )
        )
    elif dialect == "sqlite":
        db.execute(
            text(
                f"CREATE TRIGGER {name} BEFORE UPDATE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )
        )
    elif dialect == "postgresql":
        db.execute(
            text(
                f"CREATE TRIGGER {name} BEFORE UPDATE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {name}()"
            )
        )


def _rekey_patient_ids(db: Session, batch: int) -> None:
    """Each study's PatientID hash (``patient_context.patient_hash``: how its priors are
    found) under the newest key, from its sealed PatientID and issuer."""

    last = 0
    while True:
        rows = db.scalars(
            select(Study)
            .where(Study.id > last, Study.patient_key.is_not(None))
            .order_by(Study.id)
            .limit(batch)
        ).all()
        if not rows:
            break
        for study in rows:
            study.patient_hash = hash_of(study) or study.patient_hash
        last = rows[-1].id
    db.flush()


def _deadlocked(exc: OperationalError) -> bool:
    """PostgreSQL chose this transaction to break a deadlock (SQLSTATE 40P01)."""
    return getattr(exc.orig, "sqlstate", None) == "40P01"


def _retried(db: Session, work: Callable[[], int], tries: int = 5) -> int:
    """Run one batch of re-encryption and commit it, again from the start of the batch when the
    database broke a deadlock by aborting it: a server analysing meanwhile updates a study and
    then its AI result, and the rotation's batch may hold the one while it waits for the other.
    Re-encrypting is idempotent (the newest key opens and re-seals its own tokens), so a batch
    re-run after a rollback changes nothing already done."""
    for attempt in range(tries):
        try:
            n = work()
            db.commit()
            return n
        except OperationalError as exc:
            db.rollback()
            if not _deadlocked(exc) or attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


def _rotate_column(db: Session, model: Any, attr: str, rows: list[tuple[int, Any]]) -> int:
    t, ids, column = _raw(model, attr)
    for row_id, token in rows:
        db.execute(update(t).where(ids == row_id).values({column: _rotated(token)}))
    return len(rows)


def rotate_all(db: Session, batch: int = 500) -> int:
    """Re-encrypt every sealed value under the newest key (and re-key the patients' lookup
    hashes) in the caller's session, one committed batch at a time, so that a server working
    meanwhile never waits long on a row the rotation holds, nor deadlocks with it (a batch the
    database aborted to break a deadlock is run again); the report versions last, in a
    transaction of their own left for the caller to commit. The number of values re-encrypted."""

    def patients() -> int:
        for (patient,) in db.execute(select(Patient)).all():
            if patient.ref is not None:  # the lookup hash under the newest key
                patient.ref_hash = cipher().pseudonym(patient.ref)
        db.flush()
        _rekey_patient_ids(db, batch)
        return 0

    _retried(db, patients)
    n = 0
    for model, attr in SEALED:
        if model.__tablename__ in APPEND_ONLY:
            continue
        for rows in _batches(db, model, attr, batch):
            n += _retried(db, partial(_rotate_column, db, model, attr, rows))
    for model, attr in SEALED:
        if model.__tablename__ not in APPEND_ONLY:
            continue
        db.commit()  # no other row held while the table is locked (see above)
        _trigger(db, model.__tablename__, lift=True)
        for rows in _batches(db, model, attr, batch):
            n += _rotate_column(db, model, attr, rows)
        _trigger(db, model.__tablename__, lift=False)
    return n


__all__ = ["SEALED", "SEALED_SINCE", "rotate_all"]
