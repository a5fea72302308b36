"""Triage labels: the department a triaged patient was actually sent to (and whether staff
judged it urgent), recorded by a clinician against the triage's record number. Insert-only:
the latest record of a triage is its label, earlier ones stay. They are the triage model's
labels for export and retraining, and its agreement numbers in monitoring."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medai.core import task_registry
from medai.core.errors import MedaiError
from medai.platform.access import audit
from medai.platform.lifecycle import drift
from medai.platform.records.crypto import cipher
from medai.platform.records.localtime import iso_utc
from medai.platform.records.tables import TriageOutcome, TriageRecord, User

AGREEMENT_WINDOW = 200


class OutcomeError(MedaiError, ValueError):
    status, code = 422, "invalid"


class NoSuchTriage(OutcomeError):
    status, code = 404, "not_found"


def departments() -> tuple[str, ...]:
    return task_registry.get("triage").labels


def record(db: Session, triage_id: int, department: str, urgent: bool, user: User) -> TriageOutcome:
    valid = departments()
    if department not in valid:
        raise OutcomeError(f"unknown department {department!r}; valid: {', '.join(valid)}")
    if db.get(TriageRecord, triage_id) is None:
        raise NoSuchTriage(f"no triage record {triage_id}")
    row = TriageOutcome(
        triage_id=triage_id, department=department, urgent=urgent, recorded_by=user.id
    )
    db.add(row)
    db.flush()
    return row


def latest(db: Session, triage_id: int) -> TriageOutcome | None:
    return db.scalar(
        select(TriageOutcome)
        .where(TriageOutcome.triage_id == triage_id)
        .order_by(TriageOutcome.id.desc())
        .limit(1)
    )


def as_dict(o: TriageOutcome | None) -> dict[str, Any] | None:
    if o is None:
        return None
    return {"department": o.department, "urgent": o.urgent, "at": iso_utc(o.at)}


def answered(db: Session, triage_id: int) -> TriageRecord:
    """The triage record ``triage_id`` that has an answer (``NoSuchTriage`` otherwise: none, or
    one whose model gave no answer)."""
    row = db.get(TriageRecord, triage_id)
    if row is None or not row.result:
        raise NoSuchTriage(f"no triage record {triage_id}")
    return row


def view(db: Session, triage_id: int) -> dict[str, Any]:
    """A triage by its record number as staff read it: the complaint unsealed, the answer and
    the outcome recorded so far (the caller audits the read)."""
    row = answered(db, triage_id)
    return {
        "id": row.id,
        "complaint": cipher().decrypt(row.complaint),
        "urgent": row.urgent,
        "result": row.result,
        "created_at": iso_utc(row.created_at),
        "outcome": as_dict(latest(db, row.id)),
    }


def record_outcome(
    db: Session, triage_id: int, department: str, urgent: bool, user: User, actor: audit.Actor
) -> str:
    """Record where the patient of an answered triage was actually sent (``record``), audited
    in the caller's transaction; returns the triage's model hash (the caller checks that
    model's monitoring after the commit)."""
    row = answered(db, triage_id)
    record(db, triage_id, department, urgent, user)
    audit.record(
        db,
        actor,
        "triage",
        "triage_outcome",
        triage_id,
        department=department,
        urgent=urgent,
    )
    return row.model_hash


def labelled(db: Session) -> list[tuple[TriageRecord, TriageOutcome]]:
    """Every triage record with its latest outcome, oldest first."""
    last = (
        select(TriageOutcome.triage_id, func.max(TriageOutcome.id).label("oid"))
        .group_by(TriageOutcome.triage_id)
        .subquery()
    )
    rows = db.execute(
        select(TriageRecord, TriageOutcome)
        .join(last, last.c.triage_id == TriageRecord.id)
        .join(TriageOutcome, TriageOutcome.id == last.c.oid)
        .order_by(TriageRecord.id)
    )
    return [(r, o) for r, o in rows]


def agreement(db: Session, model_hash: str) -> dict[str, Any]:
    """Over the latest outcomes of this model's triages: how often its first department was
    the one the patient was sent to (abstentions apart), and its red flags against staff's
    urgency: sensitivity and PPV, each with a 95 % Wilson interval."""
    pairs = [(r, o) for r, o in labelled(db) if r.model_hash == model_hash][-AGREEMENT_WINDOW:]
    answered = [(r, o) for r, o in pairs if not (r.result or {}).get("abstained")]
    same = sum(
        1
        for r, o in answered
        if ((r.result or {}).get("departments") or [{}])[0].get("id") == o.department
    )
    tp = sum(1 for r, o in pairs if r.urgent and o.urgent)
    fn = sum(1 for r, o in pairs if not r.urgent and o.urgent)
    fp = sum(1 for r, o in pairs if r.urgent and not o.urgent)
    return {
        "n": len(pairs),
        "abstained": len(pairs) - len(answered),
        "department": drift.wilson(same, len(answered)),
        "red_flag_sensitivity": drift.wilson(tp, tp + fn),
        "red_flag_ppv": drift.wilson(tp, tp + fp),
    }
