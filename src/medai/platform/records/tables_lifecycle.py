"""The model lifecycle's tables (``platform.lifecycle``): the registry and its transitions,
the labels signatures give, monitoring samples and alerts, site sets and validations, triage
outcomes and training jobs. Imported through ``platform.records.tables`` like every other table."""

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
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from medai.platform.records.db import Base, utcnow
from medai.platform.records.sealed import SealedJSON, SealedText


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime, nullable=False, default=utcnow)


class RegisteredModel(Base):
    """A sealed model directory registered for a task (``platform.lifecycle``), its files
    copied into content-addressed storage (``path``, relative to MEDAI_HOME). Exactly one
    ``active`` per task, enforced by a partial unique index."""

    __tablename__ = "registered_models"
    __table_args__ = (
        UniqueConstraint("task", "content_hash"),
        Index("ix_registered_models_task_state", "task", "state"),
        Index(
            "ux_registered_models_one_active",
            "task",
            unique=True,
            sqlite_where=text("state = 'active'"),
            postgresql_where=text("state = 'active'"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[str] = mapped_column(String(32), nullable=False)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    version: Mapped[str] = mapped_column(String(64), nullable=False)
    model_type: Mapped[str] = mapped_column(String(32), nullable=False)
    content_hash: Mapped[str] = mapped_column(String(80), nullable=False)
    path: Mapped[str] = mapped_column(String(255), nullable=False)
    # candidate | shadow | active | retired
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    source: Mapped[str] = mapped_column(String(255), nullable=False)  # bundled | a folder | …
    card: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    registered_by: Mapped[str] = mapped_column(String(64), nullable=False)
    registered_at: Mapped[datetime] = _now()
    state_at: Mapped[datetime] = _now()


class ModelTransition(Base):
    """One change of a registered model's state, with its reason (rollback reads which model
    was active before)."""

    __tablename__ = "model_transitions"
    __table_args__ = (Index("ix_model_transitions_task", "task", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"), nullable=False)
    task: Mapped[str] = mapped_column(String(32), nullable=False)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str] = mapped_column(String(400), nullable=False)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)
    override: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    at: Mapped[datetime] = _now()


class StudyLabel(Base):
    """What the signing radiologist said about one label of a study, for one signed report
    version (``lifecycle.labels``): present or absent, what the AI decided, and how
    (``confirmed``/``rejected`` an AI finding, ``added`` a missing one, ``text``: taken from
    the signed text without a click). Inserted once per version: an amendment adds its own.

    The verdict (label, present, ai_positive, source) is sealed (migration 0019): the set of a
    study's labels alone can say what its signer found (a refused study's rows are the labels
    the text named). So no unique (study, version, label) in the database: a token is never
    equal to another; ``labels.record`` writes a version's labels once, in the signature's
    transaction, and report versions are unique per study. Nothing filters or orders on them in
    SQL: the readers take a version's rows and decide in Python."""

    __tablename__ = "study_labels"
    __table_args__ = (Index("ix_study_labels_study", "study_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), nullable=False)
    report_version: Mapped[int] = mapped_column(Integer, nullable=False)
    label: Mapped[str] = mapped_column(SealedText, nullable=False)
    present: Mapped[bool] = mapped_column(SealedJSON, nullable=False)
    ai_positive: Mapped[bool | None] = mapped_column(SealedJSON)
    source: Mapped[str] = mapped_column(SealedText, nullable=False)
    model_hash: Mapped[str | None] = mapped_column(String(80))
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = _now()


class MonitorSample(Base):
    """What monitoring keeps of one analysis (``lifecycle.monitoring``). Beside its study
    (an accession, a StudyInstanceUID, a date) the probabilities, positives, image statistics
    and population (age band, sex) are clinical: sealed (migration 0019); monitoring decrypts
    a model's reference and window and computes in Python (nothing aggregates them in SQL)."""

    __tablename__ = "monitor_samples"
    __table_args__ = (Index("ix_monitor_samples_model", "task", "model_hash", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[str] = mapped_column(String(32), nullable=False)
    model_hash: Mapped[str] = mapped_column(String(80), nullable=False)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id"))
    at: Mapped[datetime] = _now()
    latency_ms: Mapped[float | None] = mapped_column(Float)
    refused: Mapped[bool] = mapped_column(Boolean, nullable=False)
    abstained: Mapped[bool] = mapped_column(Boolean, nullable=False)
    probs: Mapped[dict[str, Any]] = mapped_column(SealedJSON, nullable=False)
    positives: Mapped[list[Any]] = mapped_column(SealedJSON, nullable=False)
    stats: Mapped[dict[str, Any]] = mapped_column(SealedJSON, nullable=False)
    meta: Mapped[dict[str, Any]] = mapped_column(SealedJSON, nullable=False)


class MonitorAlert(Base):
    """A monitoring threshold crossed for a model; open until the condition clears."""

    __tablename__ = "monitor_alerts"
    __table_args__ = (Index("ix_monitor_alerts_model", "task", "model_hash"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[str] = mapped_column(String(32), nullable=False)
    model_hash: Mapped[str] = mapped_column(String(80), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    key: Mapped[str] = mapped_column(String(64), nullable=False)
    value: Mapped[float] = mapped_column(Float, nullable=False)
    threshold: Mapped[float] = mapped_column(Float, nullable=False)
    samples: Mapped[int] = mapped_column(Integer, nullable=False)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    at: Mapped[datetime] = _now()
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime)


class SiteSet(Base):
    """A task's site evaluation set, frozen: ``studies`` is [{study_id, labels: {label:
    present}}] as signed when it was built (the signers' verdicts: sealed, migration 0019).
    Versioned per task (the newest is used)."""

    __tablename__ = "site_sets"
    __table_args__ = (UniqueConstraint("task", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[str] = mapped_column(String(32), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    studies: Mapped[list[Any]] = mapped_column(SealedJSON, nullable=False)
    label_counts: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    content_hash: Mapped[str] = mapped_column(String(80), nullable=False)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = _now()


class Validation(Base):
    """A candidate evaluated beside the active model on a site set, and the verdict.
    ``metrics`` keeps the candidate's output on each site-set study (``monitor_reference``:
    probabilities, age band, sex), so it is sealed (migration 0019)."""

    __tablename__ = "validations"
    __table_args__ = (Index("ix_validations_model", "model_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"), nullable=False)
    active_model_id: Mapped[int | None] = mapped_column(ForeignKey("registered_models.id"))
    site_set_id: Mapped[int] = mapped_column(ForeignKey("site_sets.id"), nullable=False)
    margin: Mapped[float] = mapped_column(Float, nullable=False)
    passed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    metrics: Mapped[dict[str, Any]] = mapped_column(SealedJSON, nullable=False)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = _now()


class TriageOutcome(Base):
    """Where a triaged patient was actually sent, recorded by a clinician (insert-only; the
    latest row of a triage is its label)."""

    __tablename__ = "triage_outcomes"
    __table_args__ = (Index("ix_triage_outcomes_triage", "triage_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    triage_id: Mapped[int] = mapped_column(ForeignKey("triage_requests.id"), nullable=False)
    department: Mapped[str] = mapped_column(String(64), nullable=False)
    urgent: Mapped[bool] = mapped_column(Boolean, nullable=False)
    recorded_by: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    at: Mapped[datetime] = _now()


class ModelJob(Base):
    """A retraining or validation run (``lifecycle.model_jobs``) on the ``training`` queue or
    in the server's own thread: its progress, its result, or why it failed. ``lease_until``
    is renewed while a worker runs it; a job whose lease ran out is taken over."""

    __tablename__ = "model_jobs"
    __table_args__ = (Index("ix_model_jobs_task", "task", "status", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # retrain | validate
    task: Mapped[str] = mapped_column(String(32), nullable=False)
    model_id: Mapped[int | None] = mapped_column(ForeignKey("registered_models.id"))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    # queued | running | done | failed | cancelled
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    progress: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    stage: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    worker: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(String(400))
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = _now()
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
