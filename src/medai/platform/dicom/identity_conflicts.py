"""Identity conflicts: the right patient, always.

A DICOM instance (from the node, STOW-RS, a DICOMweb pull or a browser upload) joins the study
of its StudyInstanceUID only when it names the same patient and order: PatientID and its issuer,
PatientName, PatientBirthDate and AccessionNumber (``identity.PATIENT_FIELDS``), and, for an
upload, the same pseudonymous patient reference. One that disagrees, a stored SOP instance
sent again with other content (``resend_differs``: the identity and the decoded image are
compared, not the bytes of one transfer syntax), or an instance of a series that another study
already holds (a SeriesInstanceUID is globally unique: ``series_owner``) is *quarantined* here
instead: its file is kept, it is not
merged into the study, not analysed, and nothing of the study it named leaves medai (the outbox
holds that study's deliveries and the exports answer 409 ``identity_conflict``) until a person
(a radiologist or an admin, both identities shown) decides:

- **reassign**: the instance becomes a study of its own, under its own patient, analysed as any
  new study. Its StudyInstanceUID is another patient's in medai (and may be in the PACS), so
  the new study keeps no UID to file DICOM objects under: DICOM destinations skip it, saying
  why, until the modality or RIS corrects the UIDs and sends it again;
- **reject**: the instance is discarded (its file too, unless something else names it).

Either way the decision is audited, and the study named by the conflict is released once it has
no open conflict left. Rows hold the incoming identity sealed (like every patient attribute) and
the keywords that disagreed, never values.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, exists, func, select, update
from sqlalchemy.orm import Session

from medai.core.errors import CODES, MedaiError
from medai.core.faults import StorageFault
from medai.platform.dicom import identity as dicom
from medai.platform.dicom.arrival import Arrival
from medai.platform.records.tables import DicomInstance, IdentityConflict, Patient, Study
from medai.services import imaging as imaging_service

STATES = ("open", "reassigned", "rejected")
REASONS = {
    "patient_mismatch": "the instance names another patient or order than the study",
    "sop_content_differs": "a stored SOP instance was sent again with other content",
    "series_elsewhere": "the instance's series (SeriesInstanceUID) belongs to this other study",
    # platform.reading.retraction: the study it names was retracted as entered in error
    "retracted_study": "the instance belongs to a study retracted as entered in error",
}


class ConflictError(MedaiError, ValueError):
    """A request about a conflict that cannot be done (``code``: not_found, invalid,
    conflict; the status is the code's)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    # read-only: derived from code, never set
    @property
    def status(self) -> int | None:  # type: ignore[override]
        return CODES[self.code].status


def open_conflict_clause(study_id_column: Any) -> Any:
    """SQL: the study in ``study_id_column`` has an open identity conflict (what holds its
    deliveries)."""
    return exists().where(
        IdentityConflict.study_id == study_id_column, IdentityConflict.state == "open"
    )


def has_open(db: Session, study_id: int) -> bool:
    return (
        db.scalar(
            select(IdentityConflict.id)
            .where(IdentityConflict.study_id == study_id, IdentityConflict.state == "open")
            .limit(1)
        )
        is not None
    )


def open_by_study(db: Session, study_ids: list[int]) -> dict[int, list[int]]:
    """The open conflicts naming each of these studies (one query; what their pages warn
    about)."""
    out: dict[int, list[int]] = {sid: [] for sid in study_ids}
    if study_ids:
        for cid, sid in db.execute(
            select(IdentityConflict.id, IdentityConflict.study_id)
            .where(IdentityConflict.study_id.in_(study_ids), IdentityConflict.state == "open")
            .order_by(IdentityConflict.id)
        ):
            out[sid].append(cid)
    return out


def open_count(db: Session) -> int:
    return (
        db.scalar(
            select(func.count())
            .select_from(IdentityConflict)
            .where(IdentityConflict.state == "open")
        )
        or 0
    )


def patient_ref(db: Session, study: Study) -> str | None:
    patient = db.get(Patient, study.patient_id) if study.patient_id else None
    return patient.ref if patient else None


def check(
    db: Session, study: Study, identity: dicom.DicomIdentity, upload_ref: str | None = None
) -> list[str]:
    """The attributes on which ``identity`` (and an upload's patient reference) disagrees
    with ``study``; empty when the instance may join it."""
    known = dicom.known_patient(study)
    fields = dicom.disagreements(known, dicom.patient_identity(identity)) if known else []
    if upload_ref:
        ref = patient_ref(db, study)
        if ref and ref != upload_ref:
            fields.append("patient_ref")
    return fields


def resend_differs(
    db: Session,
    store: Any,
    known: DicomInstance,
    study: Study,
    identity: dicom.DicomIdentity,
    sha: str,
    upload_ref: str | None = None,
) -> list[str]:
    """What differs when the stored instance ``known`` (of ``study``) arrives again as the
    file ``sha`` with other bytes; empty when it is the same instance (a resend in another
    transfer syntax, or the modality's original uploaded after the node stored its copy).

    The patient and order first, as ``check`` compares them (names by ``fold_name``): when
    they differ, they are the answer (the files are not read). Then the instance's study,
    series and SOP class UIDs, then every other header element (a corrected laterality,
    view or pixel spacing is a correction for a person, never a duplicate to drop) and the
    image: the two files' pixel data, decoded where the syntaxes differ, within the
    analysis's limits (``services.imaging.dicom_differences``).
    A file that cannot be shown the same (no ``store`` to read, an unreadable stored copy,
    past the limits) differs in ``PixelData``: a person decides, nothing is merged on a
    doubt."""
    fields = check(db, study, identity, upload_ref)
    if fields:  # another patient or order: that says enough
        return fields
    for keyword, ours, theirs in (
        ("StudyInstanceUID", study.study_uid, identity.study_uid),
        ("SeriesInstanceUID", known.series_uid, identity.series_uid),
        ("SOPClassUID", known.sop_class, identity.sop_class),
    ):
        if ours and ours != theirs:
            fields.append(keyword)
    return [
        *fields,
        *(f for f in _content_differences(store, known.file_sha256, sha) if f not in fields),
    ]


def _content_differences(store: Any, stored_sha: str, sha: str) -> list[str]:
    """What differs between the stored copy and the incoming file, header and image
    (``services.imaging.dicom_differences``); ``PixelData`` when that cannot be shown."""
    if store is None:
        return ["PixelData"]

    try:
        stored, incoming = store.read(stored_sha), store.read(sha)
    except StorageFault:  # a copy that cannot be read cannot be shown the same
        return ["PixelData"]
    # the patient's name was compared by ``check`` already, its case folded the Turkish way
    return imaging_service.dicom_differences(stored, incoming, ignore=("PatientName",))


def series_owner(db: Session, identity: dicom.DicomIdentity) -> Study | None:
    """The study that already holds the incoming instance's series when that is another study
    than the one the instance names (None: a new series, or that study's own). A
    SeriesInstanceUID is globally unique: a second study, of another patient or of the same
    one, claiming it is an identity conflict, never a new study."""
    owner_id = db.scalar(
        select(DicomInstance.study_id)
        .where(DicomInstance.series_uid == identity.series_uid)
        .order_by(DicomInstance.id)  # the study that filed the series first owns it
        .limit(1)
    )
    owner = db.get(Study, owner_id) if owner_id is not None else None
    return owner if owner is not None and owner.study_uid != identity.study_uid else None


def same_instance_file(
    db: Session, store: Any, study_id: int, identity: dicom.DicomIdentity, sha: str
) -> str | None:
    """The file of a conflict ``study`` already holds for this very instance (its SOP
    Instance UID, and the same header and image: ``_content_differences``) that arrived in
    other bytes, so that a resend in another transfer syntax finds that conflict (open or
    decided) instead of opening a second; None when there is none."""
    if not identity.sop_uid or store is None:
        return None
    rows = db.scalars(
        select(IdentityConflict.file_sha256)
        .where(
            IdentityConflict.study_id == study_id,
            IdentityConflict.sop_uid == identity.sop_uid,
            IdentityConflict.file_sha256 != sha,
        )
        .order_by(IdentityConflict.id)
        .limit(8)  # bounded: each is a file comparison
    ).all()
    for known in dict.fromkeys(rows):
        if not _content_differences(store, known, sha):
            return known
    return None


def decided(db: Session, study_id: int, sha: str) -> IdentityConflict | None:
    """The decided conflict these bytes already made with this study (a modality or a pull
    sending them again): rejected stays rejected, reassigned stays where it went."""
    return db.scalar(
        select(IdentityConflict)
        .where(
            IdentityConflict.study_id == study_id,
            IdentityConflict.file_sha256 == sha,
            IdentityConflict.state != "open",
        )
        .order_by(IdentityConflict.id.desc())
        .limit(1)
    )


def quarantine(
    db: Session, study: Study, arrival: Arrival, *, reason: str, fields: list[str]
) -> IdentityConflict:
    """Keep the arriving instance aside as a conflict with ``study`` (once: the same file sent
    again for the same study finds the open conflict it already made). The row keeps what
    ``arrival_of`` gives back when a person reassigns it."""
    if reason not in REASONS:
        raise ValueError(f"unknown conflict reason {reason!r}; valid: {', '.join(REASONS)}")
    known = db.scalar(
        select(IdentityConflict)
        .where(
            IdentityConflict.study_id == study.id,
            IdentityConflict.file_sha256 == arrival.sha,
            IdentityConflict.state == "open",
        )
        .limit(1)
    )
    if known is not None:
        return known
    identity = arrival.identity
    if identity is None:  # a file without a header names no patient to disagree with
        raise ValueError("only a DICOM instance can be held as an identity conflict")
    incoming = {
        **asdict(identity),
        "patient_ref": arrival.patient_ref,
        "question": arrival.question,
        "urgent": bool(arrival.urgent),
    }
    row = IdentityConflict(
        study_id=study.id,
        reason=reason,
        fields=fields,
        identity=dicom.seal_json(incoming),
        file_sha256=arrival.sha,
        file_size=arrival.size,
        content_type=arrival.content_type[:64],
        task=arrival.task,
        sop_uid=identity.sop_uid or None,
        language=arrival.language if arrival.language in ("tr", "en") else "tr",
        source=arrival.source[:8],
        calling_ae=arrival.calling_ae,
        uploaded_by=arrival.uploaded_by,
        state="open",
    )
    db.add(row)
    db.flush()
    return row


def get(db: Session, conflict_id: int) -> IdentityConflict:
    row = db.get(IdentityConflict, conflict_id)
    if row is None:
        raise ConflictError("not_found", f"no identity conflict {conflict_id}")
    return row


def listing(
    db: Session, state: str | None = "open", limit: int = 50, offset: int = 0
) -> tuple[list[IdentityConflict], int]:
    if state is not None and state not in STATES:
        raise ConflictError("invalid", f"state must be one of {', '.join(STATES)}")
    q = select(IdentityConflict)
    if state is not None:
        q = q.where(IdentityConflict.state == state)
    total = db.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = db.scalars(q.order_by(IdentityConflict.id.desc()).limit(limit).offset(offset)).all()
    return list(rows), total


def page(
    db: Session, state: str | None = "open", limit: int = 50, offset: int = 0
) -> tuple[list[IdentityConflict], int, int]:
    """What the conflicts page reads: ``listing`` (the rows, newest first, and how many match)
    and how many conflicts are open in all (``open_count``)."""
    rows, total = listing(db, state, limit, offset)
    return rows, total, open_count(db)


def _incoming(row: IdentityConflict) -> dict[str, Any]:
    return dicom.unseal_json(row.identity, row.study_id) or {}


def _identity_view(values: dict[str, Any] | None, ref: str | None) -> dict[str, Any]:
    values = values or {}
    return {
        "patient_id": values.get("patient_id") or None,
        "issuer": values.get("issuer") or None,
        "patient_name": values.get("patient_name") or None,
        "birth_date": values.get("birth_date") or None,
        "accession": values.get("accession") or None,
        "patient_ref": ref,
    }


def as_dict(db: Session, row: IdentityConflict) -> dict[str, Any]:
    """Both identities, for the person who decides (the API requires patient-data access)."""
    study = db.get(Study, row.study_id)
    incoming = _incoming(row)
    return {
        "id": row.id,
        "study_id": row.study_id,
        "state": row.state,
        "reason": row.reason,
        "reason_text": REASONS.get(row.reason, row.reason),
        "fields": list(row.fields),
        "source": row.source,
        "calling_ae": row.calling_ae,
        "task": row.task,
        "study_uid": incoming.get("study_uid") or None,
        "sop_uid": incoming.get("sop_uid") or None,
        "study": _identity_view(
            dicom.known_patient(study) if study else None, patient_ref(db, study) if study else None
        ),
        "incoming": _identity_view(incoming, incoming.get("patient_ref")),
        "created_at": row.created_at.isoformat() + "Z",
        "resolved_at": row.resolved_at.isoformat() + "Z" if row.resolved_at else None,
        "resolved_by": row.resolved_by,
        "resolved_study_id": row.resolved_study_id,
    }


def close(db: Session, conflict_id: int, state: str, who: str, now: datetime) -> IdentityConflict:
    """Mark an open conflict decided (``reassigned`` or ``rejected``); a decided one is a
    409."""
    row = get(db, conflict_id)
    done = db.execute(
        update(IdentityConflict)
        .where(  # two people deciding at once: one wins
            IdentityConflict.id == conflict_id, IdentityConflict.state == "open"
        )
        .values(state=state, resolved_by=who[:64], resolved_at=now)
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult, done).rowcount != 1:  # an UPDATE/DELETE's result is a CursorResult
        db.refresh(row)
        raise ConflictError("conflict", f"identity conflict {row.id} is already {row.state}")
    db.refresh(row)
    return row


def arrival_of(row: IdentityConflict) -> Arrival:
    """The quarantined instance's arrival as it came (its file, task, source, uploader and
    the upload's patient reference, question and urgency), with no StudyInstanceUID: that is
    another patient's study's, and a reassigned study keeps no UID to group or file DICOM
    objects under."""
    values = _incoming(row)
    fields = {k: v for k, v in values.items() if k in dicom.DicomIdentity.__dataclass_fields__}
    return Arrival(
        sha=row.file_sha256,
        size=row.file_size,
        content_type=row.content_type,
        task=row.task,
        uploaded_by=row.uploaded_by,
        identity=dicom.DicomIdentity(**{**fields, "study_uid": ""}),
        source=row.source,
        language=row.language,
        patient_ref=values.get("patient_ref"),
        question=values.get("question"),
        urgent=bool(values.get("urgent")),
    )


def reject(db: Session, conflict_id: int, who: str, now: datetime) -> IdentityConflict:
    """The quarantined instance is not filed (the caller discards its file if nothing else
    names it)."""
    row = close(db, conflict_id, "rejected", who, now)
    db.flush()
    return row
