"""The platform's tables (SQLAlchemy 2). The schema itself is created by the migrations.

Rows that record what happened are never changed: report versions, AI results and audit events
are inserted once (a unique key makes a repeated insert fail instead of duplicating), so
"nothing is lost or silently overwritten" is enforced by the database, not by convention.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from medai.platform.records.db import Base, utcnow
from medai.platform.records.sealed import SealedJSON, SealedText


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime, default=utcnow, nullable=False)


class User(Base):
    """An account. ``password_hash`` is "" (matches no password) until its user enrols with
    the one-time code; only the code's sha256 is kept, with its expiry."""

    __tablename__ = "users"
    __table_args__ = (Index("ux_users_enrol_code_hash", "enrol_code_hash", unique=True),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    created_at: Mapped[datetime] = _now()
    enrol_code_hash: Mapped[str | None] = mapped_column(String(64))
    enrol_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    # the two-person rule (platform.access.approval): a clinical account reads patient data only
    # once someone other than the admin who made it approved it; None: pending
    approved_at: Mapped[datetime | None] = mapped_column(DateTime)
    approved_by: Mapped[str | None] = mapped_column(String(64))
    # the account's own history (triage requests, conversations) starts here: a reset or a role
    # change moves it, so whoever enrols next reads nothing made before (accounts.own_since)
    history_since: Mapped[datetime | None] = mapped_column(DateTime)
    # the name signed documents give the signer (accounts.set_profile): "Ayşe Yılmaz", "Uzm. Dr.";
    # None: the documents name the user name
    full_name: Mapped[str | None] = mapped_column(String(60))
    title: Mapped[str | None] = mapped_column(String(24))


class Token(Base):
    """A session (cookie) or a bearer token; only its sha256 is stored. ``signin`` groups
    the credentials one password sign-in issued: signing out revokes them together."""

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # session | bearer
    csrf_hash: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    signin: Mapped[str | None] = mapped_column(String(32), index=True)


class LoginFailure(Base):
    __tablename__ = "login_failures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(128), nullable=False, index=True)
    at: Mapped[datetime] = _now()


class Patient(Base):
    """A pseudonymous reference only (the hospital's own identifier lives in its HIS), sealed;
    found by its keyed hash (``crypto.Cipher.pseudonym``, under any configured key)."""

    __tablename__ = "patients"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # the database column "ref" holds the keyed hash (what lookups compare); "ref_sealed" the
    # reference itself
    ref_hash: Mapped[str] = mapped_column("ref", String(64), unique=True, nullable=False)
    ref: Mapped[str | None] = mapped_column("ref_sealed", SealedText)
    created_at: Mapped[datetime] = _now()


class Study(Base):
    __tablename__ = "studies"
    __table_args__ = (Index("ux_studies_study_uid", "study_uid", unique=True),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    task: Mapped[str] = mapped_column(String(32), nullable=False)
    modality: Mapped[str] = mapped_column(String(16), nullable=False)
    file_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    # the display rendition (8-bit gray PNG, ≤ 2048 px a side), made once: never a full decode
    # of the original per view
    display_sha256: Mapped[str | None] = mapped_column(String(64))
    file_size: Mapped[int] = mapped_column(Integer, nullable=False)
    content_type: Mapped[str] = mapped_column(String(64), nullable=False)
    clinical_question: Mapped[str | None] = mapped_column(SealedText)  # patient text
    language: Mapped[str] = mapped_column(String(8), nullable=False, default="tr")
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # why it is urgent (``filing.URGENT_REASONS``: the clinical question raised a red flag, the
    # AI found an urgent label or could not rule one out); codes and label names, no patient
    # text, but a label name here is a finding: sealed (migration 0019)
    urgent_because: Mapped[list[Any] | None] = mapped_column(SealedJSON)
    # the worklist's reading order (``platform.worklist.reading_order``, migration 0023): codes and
    # booleans the database ranks and filters by; the finding and the rule's name stay sealed
    ai_state: Mapped[str | None] = mapped_column(String(16))  # reading_order.AI_STATES
    ai_urgent: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    red_flag: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # its HL7 order came marked STAT (``reading_order.ORDER_STAT``; migration 0029)
    order_stat: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    out_of_scope: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # a refusal or failure, short: what the image shows and where it came from, sealed
    # (migration 0027)
    reason: Mapped[str | None] = mapped_column(SealedText)
    uploaded_by: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    # the DICOM identity (platform.dicom.identity): instances group into a study by its
    # StudyInstanceUID (unique); the patient's ID and name are Fernet tokens, like other
    # patient text; the accession number is searchable
    study_uid: Mapped[str | None] = mapped_column(String(64))
    accession: Mapped[str | None] = mapped_column(String(16), index=True)
    patient_key: Mapped[bytes | None] = mapped_column(LargeBinary)  # PatientID, encrypted
    patient_name: Mapped[bytes | None] = mapped_column(LargeBinary)  # PatientName, encrypted
    study_date: Mapped[str | None] = mapped_column(String(8))  # DICOM DA, YYYYMMDD
    source: Mapped[str | None] = mapped_column(String(8))  # upload | dicom (None: upload)
    # the patient every instance of the study must agree with (PatientID, issuer, name, birth
    # date, accession: dicom.identity.patient_identity), sealed JSON; None on a study
    # filed before identity reconciliation (its ID, name and accession columns are compared)
    patient_identity: Mapped[bytes | None] = mapped_column(LargeBinary)
    # the patient's context (platform.worklist.patient_context, migration 0026): sex (M/F/O) and age
    # in whole years at the study date in plain (what a list shows), the birth date sealed
    # (identifying), and the keyed hash of the DICOM PatientID with its issuer (how a prior
    # study of the same patient is found; the ID itself stays sealed in patient_key)
    patient_sex: Mapped[str | None] = mapped_column(String(1))
    patient_age: Mapped[int | None] = mapped_column(Integer)
    patient_birth_date: Mapped[str | None] = mapped_column(SealedText)  # YYYYMMDD
    patient_hash: Mapped[str | None] = mapped_column(String(64), index=True)


class DicomInstance(Base):
    """One stored DICOM instance of a study (a browser upload or a C-STORE). A SOP Instance
    UID is stored once: the same instance sent again is a no-op, not a second copy."""

    __tablename__ = "dicom_instances"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), nullable=False, index=True)
    sop_uid: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    series_uid: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    sop_class: Mapped[str] = mapped_column(String(64), nullable=False)
    modality: Mapped[str | None] = mapped_column(String(16))
    view_position: Mapped[str | None] = mapped_column(String(16))
    body_part: Mapped[str | None] = mapped_column(String(64))
    # operator free text (a bed, a ward, a name typed at the modality): sealed
    series_description: Mapped[str | None] = mapped_column(SealedText)
    series_number: Mapped[int | None] = mapped_column(Integer)
    instance_number: Mapped[int | None] = mapped_column(Integer)
    file_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    file_size: Mapped[int] = mapped_column(Integer, nullable=False)
    calling_ae: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = _now()


class InstanceRendition(Base):
    """The display rendition of one slice of a series (``platform.reading.series_view``): an 8-bit
    gray PNG of at most 2048 px a side of a DICOM instance, or of one frame of a multi-frame
    instance, made once like the study's own (``Study.display_sha256``): the viewer scrolls a
    series without decoding an original per view (migration 0022)."""

    __tablename__ = "instance_renditions"
    __table_args__ = (UniqueConstraint("instance_id", "frame"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("dicom_instances.id"), nullable=False)
    frame: Mapped[int] = mapped_column(Integer, nullable=False)  # 1-based; 1 for one image
    display_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = _now()


class IdentityConflict(Base):
    """An instance (or upload) that would have joined ``study_id`` but names another patient,
    or resends a stored SOP instance with other content: quarantined, never merged or
    analysed, until a person reassigns it to a study of its own or rejects it
    (``platform.dicom.identity_conflicts``). ``identity`` is the incoming identity, sealed JSON;
    ``fields`` the DICOM keywords that disagree (names of attributes, never values)."""

    __tablename__ = "identity_conflicts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), nullable=False, index=True)
    reason: Mapped[str] = mapped_column(String(32), nullable=False)
    fields: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    identity: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    file_sha256: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    file_size: Mapped[int] = mapped_column(Integer, nullable=False)
    content_type: Mapped[str] = mapped_column(String(64), nullable=False)
    # the instance's SOP Instance UID (UIDs are kept plainly, as on every instance): a pull or a
    # resend finds what was already decided
    sop_uid: Mapped[str | None] = mapped_column(String(64), index=True)
    task: Mapped[str | None] = mapped_column(String(32))  # what routing chose for it
    language: Mapped[str] = mapped_column(String(8), nullable=False, default="tr")
    source: Mapped[str] = mapped_column(String(8), nullable=False)  # upload | dicom
    calling_ae: Mapped[str | None] = mapped_column(String(16))
    uploaded_by: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    created_at: Mapped[datetime] = _now()
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolved_study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id"))


class StudyRetraction(Base):
    """A study a radiologist retracted as entered in error (``platform.reading.retraction``): filed
    under the wrong patient or order, or withdrawn for patient safety. One per study (a second
    retraction is refused); the study's status is then ``entered_in_error``. ``reason`` is a
    code (``retraction.REASONS``); ``note`` the radiologist's free text, sealed;
    ``previous_status`` the status the study had."""

    __tablename__ = "study_retractions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), nullable=False, unique=True)
    reason: Mapped[str] = mapped_column(String(16), nullable=False)
    note: Mapped[str | None] = mapped_column(SealedText)
    retracted_by: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    previous_status: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = _now()


class AIResultRow(Base):
    """One AI output for a study, naming the exact model; at most one per (study, kind, model
    content hash, reading), which makes a repeated analysis a no-op instead of a duplicate.
    ``reading`` names the instances it read (``filing.reading_key``: "" for an upload): an
    instance arriving after the analysis re-opens the study, and the new reading is a new
    row beside the old one, which stays as history (migration 0021)."""

    __tablename__ = "ai_results"
    __table_args__ = (
        UniqueConstraint("study_id", "kind", "model_hash", "reading", name="uq_ai_results_reading"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # imaging | draft
    model_name: Mapped[str] = mapped_column(String(128), nullable=False)
    model_version: Mapped[str] = mapped_column(String(64), nullable=False)
    model_hash: Mapped[str] = mapped_column(String(80), nullable=False)
    reading: Mapped[str] = mapped_column(String(40), nullable=False, default="")
    # findings and, for a draft, its sections (patient text: sealed like report versions)
    payload: Mapped[dict[str, Any]] = mapped_column(SealedJSON, nullable=False)
    heatmap_sha256: Mapped[str | None] = mapped_column(String(64))
    # the stored file the result was read from (a chest study's film, a series' key slice): the
    # source of its DICOM objects, whatever the study's file later becomes (migration 0031)
    source_sha256: Mapped[str | None] = mapped_column(String(64))
    # the finding the heatmap is drawn for: a finding, sealed like the payload (migration 0027)
    heatmap_label: Mapped[str | None] = mapped_column(SealedText)
    created_at: Mapped[datetime] = _now()


class ReportVersion(Base):
    """An immutable version of a study's report; the current one is the highest."""

    __tablename__ = "report_versions"
    __table_args__ = (UniqueConstraint("study_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), nullable=False, index=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # preliminary|final|amended
    source: Mapped[str] = mapped_column(String(8), nullable=False)  # ai | human
    sections: Mapped[dict[str, Any]] = mapped_column(SealedJSON, nullable=False)
    # the AI's labels and probabilities, and the passages chosen for them: clinical, sealed
    citations: Mapped[list[Any]] = mapped_column(SealedJSON, nullable=False)
    findings: Mapped[list[Any]] = mapped_column(SealedJSON, nullable=False)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    signed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    signed_at: Mapped[datetime | None] = mapped_column(DateTime)
    # the signer's full name and title when they signed (None: signed before names existed)
    signer_name: Mapped[str | None] = mapped_column(String(60))
    signer_title: Mapped[str | None] = mapped_column(String(24))
    ai_result_id: Mapped[int | None] = mapped_column(ForeignKey("ai_results.id"))
    created_at: Mapped[datetime] = _now()


class Kiosk(Base):
    """A triage kiosk an admin registered: its own daily quota and two credentials, both
    stored as sha256 like sessions and tokens: the API token (header ``X-Kiosk-Token``) and
    the browser's (an HttpOnly cookie set when a one-time enrolment code is exchanged). A name
    is unique among the kiosks not revoked."""

    __tablename__ = "kiosks"
    __table_args__ = (
        Index(
            "ux_kiosks_active_name",
            "name",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    daily_quota: Mapped[int] = mapped_column(Integer, nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    cookie_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    enrol_code_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    enrol_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    enrolled_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = _now()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)


class TriageRecord(Base):
    """A triage request: the complaint encrypted at rest, the result, who asked (a user, a
    registered kiosk, or an anonymous client counted by its hashed address)."""

    __tablename__ = "triage_requests"
    __table_args__ = (Index("ix_triage_requests_kiosk_day", "kiosk_id", "created_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    kiosk_client: Mapped[str | None] = mapped_column(String(64), index=True)
    kiosk_id: Mapped[int | None] = mapped_column(ForeignKey("kiosks.id"))
    complaint: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    # the triage result: its red-flag evidence quotes the complaint (sealed like it)
    result: Mapped[dict[str, Any]] = mapped_column(SealedJSON, nullable=False)
    urgent: Mapped[bool] = mapped_column(Boolean, nullable=False)
    model_hash: Mapped[str] = mapped_column(String(80), nullable=False)
    created_at: Mapped[datetime] = _now()


class Conversation(Base):
    __tablename__ = "conversations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), nullable=False, index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    created_at: Mapped[datetime] = _now()


class Message(Base):
    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id"), nullable=False, index=True
    )
    role: Mapped[str] = mapped_column(String(16), nullable=False)  # user | assistant
    body: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)  # Fernet token
    backend: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = _now()


class Job(Base):
    """A background job; its state lives here so that a restart resumes it. ``lease_until``
    is renewed while a worker runs it: a job whose lease ran out is taken over."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("study_id", "kind"),
        Index("ix_jobs_claim", "status", "priority", "id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # queued|running|done|failed
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    worker: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    error: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[datetime] = _now()
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    # a DICOM study's analysis waits until its instances have settled (MEDAI_STUDY_STABLE_S
    # after the last one); None: claimable at once (an upload). ``again``: an instance was
    # filed while the job ran, so it runs once more after it (migration 0021)
    not_before: Mapped[datetime | None] = mapped_column(DateTime)
    again: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class AuditEvent(Base):
    """Append-only (the ORM refuses updates and deletes; see ``audit``). Never patient text."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False, index=True)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)
    role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)  # ok | denied | failed
    client: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    # the study the event concerns (audit.study_of), for the log read per study
    study_id: Mapped[int | None] = mapped_column(Integer, index=True)


class OutboxItem(Base):
    """One event to deliver to one destination (``delivery.outbox``), inserted in the
    transaction that records the event, so an event is never lost and, by the unique key,
    enqueued once per destination. Its state lives here: a restarted loop resumes it, and a
    sender that died while it was ``sending`` loses its lease. Ids, names and states only:
    never patient text (``reason`` is a destination's answer or an error type)."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("event_key", "destination"),
        Index("ix_outbox_due", "state", "next_at"),
        Index("ix_outbox_order", "destination", "study_id", "id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event: Mapped[str] = mapped_column(String(16), nullable=False)  # analysed | signed
    event_key: Mapped[str] = mapped_column(String(96), nullable=False)
    destination: Mapped[str] = mapped_column(String(32), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # dicom|dicomweb|fhir|hl7
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), nullable=False)
    report_version: Mapped[int | None] = mapped_column(Integer)
    ai_result_id: Mapped[int | None] = mapped_column(ForeignKey("ai_results.id"))
    # queued | sending | delivered | failed | skipped
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_at: Mapped[datetime | None] = mapped_column(DateTime)  # None: due at once
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    worker: Mapped[str | None] = mapped_column(String(128))
    code: Mapped[str | None] = mapped_column(String(32))  # why it waits, failed or skipped
    reason: Mapped[str | None] = mapped_column(String(200))
    sent: Mapped[int | None] = mapped_column(Integer)  # objects or messages acknowledged
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)


class UploadKey(Base):
    """An ``Idempotency-Key`` an uploader sent with ``POST /api/v1/studies``
    (``platform.intake.idempotency``): inserted in the transaction that files the study, so a retry
    with the same key answers that study instead of filing another, and two replicas racing
    on one key file once (the unique key makes the loser's insert fail). ``fingerprint`` is a
    keyed hash of the upload (its file and the fields that matter), never patient text.
    ``study_id`` and ``status`` are set before the transaction commits (never committed
    null); a key older than a day is forgotten (swept)."""

    __tablename__ = "upload_keys"
    __table_args__ = (UniqueConstraint("user_id", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    key: Mapped[str] = mapped_column(String(128), nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id"))
    status: Mapped[int | None] = mapped_column(Integer)  # the first answer's: 201 or 200
    created_at: Mapped[datetime] = mapped_column(
        DateTime, default=utcnow, nullable=False, index=True
    )


# the model lifecycle's tables live in their own module; imported here so that every table
# is known to the metadata (migrations, create_all) and reachable as ``tables.X``
from medai.platform.records.tables_lifecycle import (  # noqa: E402, F401
    ModelJob,
    ModelTransition,
    MonitorAlert,
    MonitorSample,
    RegisteredModel,
    SiteSet,
    StudyLabel,
    TriageOutcome,
    Validation,
)


class Measurement(Base):
    """One measurement a radiologist saved in the viewer (a TID 1500 SR sent over STOW-RS,
    ``reading.measurements``): the SR itself lives in the blob store (``file_sha``), each of its
    numeric items is a row. A newer SR of the same author for the same study supersedes the
    older one's rows (``superseded``: flagged, never deleted, so what was said stays known)."""

    __tablename__ = "measurements"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), nullable=False, index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    sr_sop_uid: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    sr_series_uid: Mapped[str] = mapped_column(String(64), nullable=False)
    sr_sop_class: Mapped[str] = mapped_column(String(64), nullable=False)
    file_sha: Mapped[str] = mapped_column(String(64), nullable=False)
    group_no: Mapped[int] = mapped_column(Integer, nullable=False)  # its measurement group
    kind: Mapped[str] = mapped_column(
        String(16), nullable=False
    )  # length|long_axis|short_axis|area
    value: Mapped[float] = mapped_column(Float, nullable=False)
    unit: Mapped[str] = mapped_column(String(8), nullable=False)  # mm | mm2
    ref_sop_uid: Mapped[str | None] = mapped_column(String(64))
    ref_frame: Mapped[int | None] = mapped_column(Integer)
    instance_number: Mapped[int | None] = mapped_column(Integer)
    # PixelSpacing (true size) or ImagerPixelSpacing (a projection film: at the detector plane)
    spacing: Mapped[str | None] = mapped_column(String(24))
    superseded: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)


class ImagingOrder(Base):
    """An imaging order the hospital's RIS/HIS sent over HL7 v2 (ORM^O01 / OMI^O23,
    ``intake.orders``): matched to its study by accession number, whichever comes first. The
    clinical question, priority, ordering physician and patient ID are patient data: sealed.
    One row per accession; a later message of the same order (a change, a cancel) updates it.

    ``state``: ``waiting`` (no study of that accession yet), ``matched`` (applied to
    ``study_id``), ``patient_mismatch`` (a study of that accession names another patient:
    nothing applied, the log says so) or ``cancelled`` (the order was cancelled before its
    study came)."""

    __tablename__ = "imaging_orders"
    __table_args__ = (Index("ux_imaging_orders_accession", "accession", unique=True),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    accession: Mapped[str] = mapped_column(String(16), nullable=False)
    patient_key: Mapped[str | None] = mapped_column(SealedText)  # PID-3's first identifier
    question: Mapped[str | None] = mapped_column(SealedText)
    priority: Mapped[str | None] = mapped_column(SealedText)  # HL7 table 0027: S, A, R, P, C, T
    ordering_physician: Mapped[str | None] = mapped_column(SealedText)  # XCN as sent
    order_control: Mapped[str] = mapped_column(String(2), nullable=False)  # ORC-1: NW, XO, CA…
    message_type: Mapped[str] = mapped_column(String(16), nullable=False)  # ORM^O01, OMI^O23
    control_id: Mapped[str] = mapped_column(String(64), nullable=False)  # MSH-10 of the latest
    sender: Mapped[str] = mapped_column(String(96), nullable=False)  # MSH-3^MSH-4
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id"), index=True)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)


class ReportTemplateVersion(Base):
    """One saved version of a report template or macro (``reporting.report_templates``,
    ``reading.report_templates``): a site's edit of a built-in one, or its own. Versions are
    never changed or deleted; the newest of a key is in use (``active`` false: withdrawn, the
    built-in one, if any, is used again)."""

    __tablename__ = "report_templates"
    __table_args__ = (
        Index(
            "ux_report_templates_version", "kind", "task", "name", "lang", "version", unique=True
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), nullable=False)  # template | macro
    task: Mapped[str] = mapped_column(String(32), nullable=False)  # "" for a macro of any task
    name: Mapped[str] = mapped_column(String(64), nullable=False)  # a result, or ".word"
    lang: Mapped[str] = mapped_column(String(8), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    title: Mapped[str] = mapped_column(String(120), nullable=False)
    sections: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
