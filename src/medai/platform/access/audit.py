"""The audit log: who did what to which record, when, and whether it was allowed.

Append-only twice over: this module only inserts, and the migration installs database
triggers that refuse UPDATE and DELETE. Events carry identifiers and counts, never patient text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from medai.platform.records.tables import (
    AuditEvent,
    Conversation,
    IdentityConflict,
    Kiosk,
    OutboxItem,
    User,
)

# "role": a role granted (a new account) or changed, or such a change refused; "approve": a
# clinical account approved for patient data, or such an approval refused
# (platform.access.approval): the events ``GET /api/v1/audit/role-grants`` and ``medai users
# grants`` list for review; "resolve": a person's decision on an identity conflict
# (platform.dicom.identity_conflicts); "retract": a study retracted as entered in error
# (platform.reading.retraction); "profile": an account's full name or title set
# (accounts.set_profile; detail: the fields, never the values)
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
    # a person asked for the study to be analysed again as another type (task=, previous=);
    # the analysis that follows records "reanalyse" (``platform.reading.reanalysis``)
    "reanalyse_as",
    "profile",
    # a radiologist's viewer measurements filed (``reading.measurements``): count=, sr=
    "measure",
    # an HL7 order received (target "order": control=, message=, question=, priority=) or
    # applied to its study (target "study": order=, state=; ``intake.orders``)
    "order",
    # a report template or macro saved (target "report_template": kind=, task=, name=, lang=,
    # version=, active=; ``reading.report_templates``)
    "template",
)
# targets named by a study's own id: the study or one of its parts (the event's ``study_id``)
STUDY_TARGETS = frozenset(
    {
        "study",
        "study_image",
        "heatmap",
        "report",
        "report_versions",
        "series",
        "labels",
        "measurements",
    }
)
ORDERS = ("desc", "asc")  # newest first (the log's default view), oldest first


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
            study_id=study_of(db, target_type, target_id),
        )
    )


def _row_id(value: Any) -> int | None:
    text = str(value) if value is not None else ""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def study_of(db: Session, target_type: str | None, target_id: Any) -> int | None:
    """The study an event's target belongs to: the study itself or one of its parts
    (``STUDY_TARGETS``), a conversation, an identity conflict or an outbox item (by its row);
    None for anything else (a user, a model, the worklist)."""

    row_id = _row_id(target_id)
    if row_id is None or target_type is None:
        return None
    if target_type in STUDY_TARGETS:
        return row_id
    tables: dict[str, type[Conversation] | type[IdentityConflict] | type[OutboxItem]] = {
        "conversation": Conversation,
        "identity_conflict": IdentityConflict,
        "outbox": OutboxItem,
    }
    table = tables.get(target_type)
    if table is None:
        return None
    # db.get gives a row of that table (mypy joins the tables to Base)
    row = cast("Conversation | IdentityConflict | OutboxItem | None", db.get(table, row_id))
    return row.study_id if row is not None else None


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
        "study_id": e.study_id,
    }


def target_names(db: Session, events: list[AuditEvent]) -> dict[int, str]:
    """Event id -> the name of the account or kiosk it targets (the log shows "Kullanıcı:
    ayse", not a row number)."""

    out: dict[int, str] = {}
    for kind, model, column in (("user", User, User.username), ("kiosk", Kiosk, Kiosk.name)):
        ids = {e.id: _row_id(e.target_id) for e in events if e.target_type == kind}
        wanted = {i for i in ids.values() if i is not None}
        if not wanted:
            continue
        names = dict(db.execute(select(model.id, column).where(model.id.in_(wanted))).all())
        out |= {eid: names[i] for eid, i in ids.items() if i in names}
    return out


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
    *,
    study_id: int | None = None,
    order: str = "asc",
    until_id: int | None = None,
) -> tuple[list[AuditEvent], int]:
    """Events matching every filter given, ``order`` "asc" (oldest first) or "desc" (newest
    first), ``limit`` from ``offset``, and how many match in all. ``until_id``: only events up
    to that id, so pages stay put while new events arrive (the first page's newest id)."""
    from sqlalchemy import func

    if order not in ORDERS:
        raise ValueError(f"order: one of {', '.join(ORDERS)}")
    q = select(AuditEvent)
    if isinstance(action, tuple):  # several actions (the role-grant review)
        q, action = q.where(AuditEvent.action.in_(action)), None
    for col, value in (
        (AuditEvent.action, action),
        (AuditEvent.actor, actor),
        (AuditEvent.target_type, target_type),
        (AuditEvent.target_id, target_id),
        (AuditEvent.study_id, study_id),
    ):
        if value is not None:
            q = q.where(col == value)
    if since is not None:
        q = q.where(AuditEvent.at >= since)
    if until is not None:
        q = q.where(AuditEvent.at < until)
    if until_id is not None:
        q = q.where(AuditEvent.id <= until_id)
    total = db.scalar(select(func.count()).select_from(q.subquery())) or 0
    by = AuditEvent.id.desc() if order == "desc" else AuditEvent.id
    rows = db.scalars(q.order_by(by).limit(limit).offset(offset)).all()
    return list(rows), total


def read_log(
    db: Session,
    viewer: Actor | None,
    action: str | None = None,
    actor: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
    *,
    study_id: int | None = None,
    order: str = "desc",
    until_id: int | None = None,
    pin: bool = False,
) -> dict[str, Any]:
    """A page of the log as people read it (``query``'s filters): each event (``as_dict``)
    with the name of the account or kiosk it targets (``target_name``), and ``total``.
    ``pin``: without ``until_id``, the pages are pinned to the newest event now (the answer's
    ``until_id``, for the pages that follow). ``viewer``: who reads it, the read itself
    audited in the caller's transaction (None: not audited, as ``medai audit list`` on the
    server)."""
    from sqlalchemy import func

    if pin and until_id is None:  # the newest event now: the pages that follow count up to it
        until_id = db.scalar(select(func.max(AuditEvent.id)))
    rows, total = query(
        db,
        action,
        actor,
        target_type,
        target_id,
        since,
        until,
        limit,
        offset,
        study_id=study_id,
        order=order,
        until_id=until_id,
    )
    names = target_names(db, rows)
    items = [as_dict(e) | {"target_name": names.get(e.id)} for e in rows]
    if viewer is not None:
        record(db, viewer, "view", "audit", None, results=len(items))
    return {"items": items, "total": total, "until_id": until_id}


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
