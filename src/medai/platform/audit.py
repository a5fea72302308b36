"""The audit log: who did what to which record, when, and whether it was allowed.

Append-only twice over: this module only inserts, and the migration installs database
triggers that refuse UPDATE and DELETE. Events carry identifiers and counts, never patient text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from medai.platform.tables import AuditEvent

# "role": a role granted (a new account) or changed, or such a change refused; "approve": a
# clinical account approved for patient data, or such an approval refused (platform.approval):
# the events ``GET /api/v1/audit/role-grants`` and ``medai users grants`` list for review;
# "resolve": a person's decision on an identity conflict (platform.identity_conflicts);
# "retract": a study retracted as entered in error (platform.retraction)
ACTIONS = (
    "login",
    "logout",
    "token",
    "view",
    "upload",
    "predict",
    "draft",
    "edit",
    "sign",
    "export",
    "triage",
    "chat",
    "admin",
    "role",
    "denied",
    "approve",
    "model",
    "monitor",
    "resolve",
    "retract",
    "reanalyse",  # a late instance re-read the study (analysis; report=what became of it)
)


@dataclass(frozen=True)
class Actor:
    """Who acts: a user, a kiosk client or a worker."""

    name: str
    id: int | None = None
    role: str | None = None
    client: str | None = None


def record(
    db: Session,
    actor: Actor,
    action: str,
    target_type: str | None = None,
    target_id: Any = None,
    outcome: str = "ok",
    **detail: Any,
) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; valid: {', '.join(ACTIONS)}")
    db.add(
        AuditEvent(
            actor_id=actor.id,
            actor=actor.name,
            role=actor.role,
            action=action,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            outcome=outcome,
            client=actor.client,
            detail=detail,
        )
    )


def as_dict(e: AuditEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.at.isoformat() + "Z",
        "actor": e.actor,
        "actor_id": e.actor_id,
        "role": e.role,
        "action": e.action,
        "target_type": e.target_type,
        "target_id": e.target_id,
        "outcome": e.outcome,
        "client": e.client,
        "detail": e.detail,
    }


def query(
    db: Session,
    action: str | tuple[str, ...] | None = None,
    actor: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[AuditEvent], int]:
    from sqlalchemy import func

    q = select(AuditEvent)
    if isinstance(action, tuple):  # several actions (the role-grant review)
        q, action = q.where(AuditEvent.action.in_(action)), None
    for col, value in (
        (AuditEvent.action, action),
        (AuditEvent.actor, actor),
        (AuditEvent.target_type, target_type),
        (AuditEvent.target_id, target_id),
    ):
        if value is not None:
            q = q.where(col == value)
    if since is not None:
        q = q.where(AuditEvent.at >= since)
    if until is not None:
        q = q.where(AuditEvent.at < until)
    total = db.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = db.scalars(q.order_by(AuditEvent.id).limit(limit).offset(offset)).all()
    return list(rows), total


def export_jsonl(db: Session, out: IO[str], batch: int = 1000) -> int:
    """Every event, oldest first, one JSON object per line (streamed in batches)."""
    n, last = 0, 0
    while True:
        rows = db.scalars(
            select(AuditEvent).where(AuditEvent.id > last).order_by(AuditEvent.id).limit(batch)
        ).all()
        if not rows:
            return n
        for e in rows:
            out.write(json.dumps(as_dict(e), ensure_ascii=False) + "\n")
        n, last = n + len(rows), rows[-1].id
