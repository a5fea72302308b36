"""A triage request, who may make it and what is kept of it: the one service the triage route
calls (``ask``), so that the route keeps only the HTTP (the body, the role check, the model's
lane) and the rules are here.

Who: a signed-in user (kept as their history), a registered kiosk (each its own daily quota,
``kiosks.reserve``) or an anonymous client (a small daily quota per address,
``kiosks.reserve_anonymous``; refused with 401 when ``MEDAI_KIOSK_ENABLED`` is off). A kiosk's
or client's slot is taken before the model runs, with the complaint sealed, so concurrent
requests never pass the quota; a request that gets no answer (the model refused the text, or
failed) gives its slot back. What is kept: the complaint sealed, the answer, its urgency and
model; the audit log records only that it happened (urgent, abstained). A signed-in user reads
their own requests back with ``history``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from medai.core.errors import MedaiError
from medai.platform.access import accounts, audit, kiosks
from medai.platform.context import Platform
from medai.platform.records.crypto import cipher
from medai.platform.records.tables import Kiosk, TriageRecord, User
from medai.services.triage import TriageResult


class SignInToTriage(MedaiError, Exception):
    """An anonymous request where anonymous triage is off (``MEDAI_KIOSK_ENABLED``)."""

    status, code = 401, "unauthenticated"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers = {"WWW-Authenticate": "Bearer"}


async def ask(
    p: Platform,
    user: User | None,
    actor: audit.Actor,
    client: str | None,
    kiosk: Kiosk | None,
    text: str,
    answer: Callable[[], Awaitable[TriageResult]],
) -> tuple[TriageResult, int]:
    """``answer`` (the model, in its lane) for the complaint ``text`` of ``user``, else of
    ``kiosk`` (audited as it), else of the anonymous ``client``: the answer and its record's
    id (what staff record the patient's actual department under)."""
    reserved = None
    if user is None:
        if kiosk is not None:
            reserved = await run_in_threadpool(_kiosk_reserve, p, kiosk, text)
            actor = audit.Actor(name=f"kiosk:{kiosk.name}"[:64], client=client)
        else:
            reserved = await run_in_threadpool(_anonymous_reserve, p, client, text)
    try:
        result = await answer()
    except BaseException:  # broad: the reservation released on any exit, re-raised
        await run_in_threadpool(_release, p, reserved)
        raise
    record_id = await run_in_threadpool(_save, p, user, actor, reserved, text, result)
    return result, record_id


def _kiosk_reserve(p: Platform, kiosk: Kiosk, text: str) -> int:
    """Take one of the registered kiosk's slots for today (``kiosks.reserve``)."""
    zone = p.settings.general.timezone
    with p.db.session() as db:
        return kiosks.reserve(db, kiosk.id, cipher().encrypt(text), p.clock(), zone)


def _anonymous_reserve(p: Platform, client: str | None, text: str) -> int:
    """Take one of an unregistered client's daily slots (``kiosks.reserve_anonymous``: counted
    and taken in one locked transaction, so concurrent requests never exceed the quota)."""
    settings = p.settings
    if not settings.kiosk.kiosk_enabled:
        raise SignInToTriage("sign in (or use a registered kiosk) to use triage")
    with p.db.session() as db:
        return kiosks.reserve_anonymous(
            db,
            client,
            cipher().encrypt(text),
            p.clock(),
            settings.general.timezone,
            settings.kiosk.kiosk_daily_quota,
        )


def _release(p: Platform, reserved: int | None) -> None:
    """A request that got no answer does not use up a kiosk's or client's slot."""
    if reserved is not None:
        with p.db.session() as db:
            db.execute(delete(TriageRecord).where(TriageRecord.id == reserved))


def _save(
    p: Platform,
    user: User | None,
    actor: audit.Actor,
    reserved: int | None,
    text: str,
    result: TriageResult,
) -> int:
    """The answer kept in the reserved record (a user's: a new one, its complaint sealed)
    and audited; the record's id."""
    with p.db.session() as db:
        values = {
            "result": result.model_dump(mode="json"),
            "urgent": result.urgent,
            "model_hash": result.model.content_hash,
        }
        if reserved is not None:
            db.execute(update(TriageRecord).where(TriageRecord.id == reserved).values(**values))
            record_id = reserved
        else:
            # no reservation: a signed-in user's request (kiosks and anonymous ones reserve)
            row = TriageRecord(
                user_id=cast(User, user).id, complaint=cipher().encrypt(text), **values
            )
            db.add(row)
            db.flush()
            record_id = row.id
        audit.record(
            db,
            actor,
            "triage",
            "triage",
            record_id,
            urgent=result.urgent,
            abstained=result.abstained,
        )
        return record_id


def history(db: Session, user: User, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """``user``'s own triage requests, newest first (a patient reads only theirs), since the
    account's last reset or role change (``accounts.own_since``): ``limit`` from ``offset``
    of ``total``, the complaints unsealed (the caller audits the read)."""
    c = cipher()
    q = select(TriageRecord).where(
        TriageRecord.user_id == user.id, accounts.own_since(user, TriageRecord.created_at)
    )
    total = db.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = db.scalars(q.order_by(TriageRecord.id.desc()).limit(limit).offset(offset))
    items = [
        {
            "id": r.id,
            "complaint": c.decrypt(r.complaint),
            "urgent": r.urgent,
            "result": r.result,
            "created_at": r.created_at.isoformat() + "Z",
        }
        for r in rows
    ]
    return {"items": items, "total": total}
