"""The outbox: everything medai sends to the hospital's PACS, FHIR server or HL7 receiver is
first a row here, written in the transaction that records its event, so it is never lost.

Events: ``analysed`` (the analysis stored its findings and draft: the findings SR and heatmap
for a PACS, a preliminary FHIR report) and ``signed`` (a report version was signed: the report
SR with the AI's key slices as a key image note, a final or amended FHIR report, an HL7
ORU^R01). Each event is enqueued once per configured destination (unique ``event_key`` +
``destination``); a destination whose kind files objects under the study's DICOM identity
(``destinations``: its ``needs_dicom_identity``) gets no row to send for a study without one (an
uploaded PNG): its row is ``skipped`` with the reason, so the admin page says why nothing went.

A sender claims a due row with a lease (``leases.claim_first``, as jobs are claimed), sends,
and marks it ``delivered`` when the destination acknowledged it; on failure it goes back to
``queued`` with its next attempt after an exponential back-off (capped, with jitter), or to
``failed`` when the destination refused it (a person looks, and may retry it). A sender that
dies between sending and marking loses its lease and the row is sent again: every message is
the same on a resend (DICOM UIDs, FHIR ids, HL7 control ids are derived from the event), so a
destination that had acknowledged it keeps one copy. Rows of one study and destination go in
order: a row waits while an earlier one of the same pair is queued or being sent. Nothing of a
study with an open identity conflict is sent (``platform.dicom.identity_conflicts``): its rows wait,
shown as ``held``, until a person has decided the conflict.

A study retracted as entered in error (``platform.reading.retraction``) sends nothing more: its
queued rows are cancelled (``skipped``, code ``retracted``) and an event enqueued later is recorded
skipped the same way. Each destination that already received something of it (a row delivered,
or being sent at that moment) gets one ``retracted`` row instead, the correction: the FHIR
report again with status ``entered-in-error``, the HL7 ORU with result status W, the PACS an
IOCM rejection note listing the objects it got. The correction goes after whatever the
destination was being sent (rows of a pair go in order), and an open identity conflict does
not hold it: withdrawing a wrong study is never what the hold protects against.

A row's ``code`` (why it waits, failed or was skipped) is one of ``core.errors.CODES``. Rows
written before issue 61 may hold the outbox's own earlier names (``OLD_CODES``); no migration
rewrites them, and they are read as the code they became.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, exists, func, or_, select, update
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, aliased

from medai.core.errors import CODES, MedaiError
from medai.platform.access import audit
from medai.platform.delivery.destinations import registry
from medai.platform.dicom.identity_conflicts import open_by_study, open_conflict_clause
from medai.platform.records.leases import claim_first
from medai.platform.records.localtime import iso_utc
from medai.platform.records.tables import (
    DicomInstance,
    OutboxItem,
    ReportVersion,
    Study,
)
from medai.platform.worklist.ai_results import signed_with

STATES = ("queued", "sending", "delivered", "failed", "skipped")
SHOWN = ("queued", "retrying", "held", "sending", "delivered", "failed", "skipped")
PENDING = ("queued", "sending")
RETRACTED_EVENT = "retracted"
RETRACTED_REASON = "the study was retracted (entered in error): nothing more is sent for it"
OLD_CODES = {
    "unavailable": "destination_unavailable",
    "rejected": "destination_rejected",
    "error": "delivery_error",
}
"""The codes rows written before issue 61 may hold (``unavailable`` meant the destination, not
medai, was unreachable; ``error`` an unexpected failure, not an HTTP status), and the code of
``CODES`` each is read as."""
WAKE = threading.Event()
"""Set after a transaction that enqueued something commits: a loop in this process looks at
once instead of at its next poll."""


class OutboxError(MedaiError, Exception):
    """A request about the outbox that cannot be done (``code``: not_found, conflict; the
    status is the code's)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    # read-only: derived from code, never set
    @property
    def status(self) -> int | None:  # type: ignore[override]
        return CODES[self.code].status


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off: ``base_s`` after the first failure, doubling, at most ``max_s``,
    minus up to ``jitter`` of it at random (senders that failed together do not retry in
    step)."""

    base_s: float = 30.0
    max_s: float = 3600.0
    jitter: float = 0.2

    def delay(self, attempts: int, rng: random.Random) -> float:
        raw = min(self.max_s, self.base_s * 2.0 ** min(max(attempts - 1, 0), 40))
        return raw * (1.0 - self.jitter * rng.random())


# --- enqueue (inside the event's transaction) -----------------------------------------------


def has_dicom_identity(db: Session, study: Study) -> bool:
    """Whether the study's image came as DICOM (its UIDs are what the PACS files under)."""
    if not study.study_uid:
        return False
    return (
        db.scalar(
            select(DicomInstance.id)
            .where(
                DicomInstance.study_id == study.id, DicomInstance.file_sha256 == study.file_sha256
            )
            .limit(1)
        )
        is not None
    )


def _wake_after_commit(db: Session) -> None:
    sa_event.listen(db, "after_commit", lambda _s: WAKE.set(), once=True)


def _enqueue(
    db: Session,
    event: str,
    key: str,
    study: Study,
    destinations: Iterable[Any],
    report_version: int | None,
    ai_result_id: int | None,
) -> list[OutboxItem]:
    wanted = [d for d in destinations if event in d.events]
    if not wanted:
        return []
    have = set(db.scalars(select(OutboxItem.destination).where(OutboxItem.event_key == key)))
    dicom_ok = None
    rows = []
    for d in wanted:
        if d.name in have:
            continue  # enqueued once per destination
        row = OutboxItem(
            event=event,
            event_key=key,
            destination=d.name,
            kind=d.kind,
            study_id=study.id,
            report_version=report_version,
            ai_result_id=ai_result_id,
            state="queued",
            attempts=0,
        )
        if study.status == "entered_in_error":  # retracted: recorded, never sent
            row.state, row.code, row.reason = "skipped", "retracted", RETRACTED_REASON
        elif registry.get(d.kind).needs_dicom_identity:
            dicom_ok = has_dicom_identity(db, study) if dicom_ok is None else dicom_ok
            if not dicom_ok:
                row.state, row.code = "skipped", "no_dicom_identity"
                row.reason = "the study has no DICOM identity (an uploaded image)"
        db.add(row)
        rows.append(row)
    if any(r.state == "queued" for r in rows):
        _wake_after_commit(db)
    return rows


def on_analysed(
    db: Session,
    study: Study,
    ai_result_id: int,
    report: ReportVersion,
    destinations: Iterable[Any],
) -> list[OutboxItem]:
    """The analysis stored its findings and the AI draft (version ``report``); ``destinations``
    are the configured ones (``Settings.destinations()``, what the caller's platform read)."""
    return _enqueue(
        db,
        "analysed",
        f"analysed:{study.id}:{ai_result_id}",
        study,
        destinations,
        report.version,
        ai_result_id,
    )


def on_signed(
    db: Session, study: Study, report: ReportVersion, destinations: Iterable[Any]
) -> list[OutboxItem]:
    """A version was signed (final, or a signed amendment). The row keeps the AI result the
    signer had on the page: its report SR refers to that reading's image and its key images
    are that reading's, whatever a later re-read adds (a retry, or a retraction's rebuild of
    what was sent, makes the same objects)."""
    if report.signed_by is None:
        return []
    shown = signed_with(db, study.id, report)
    return _enqueue(
        db,
        "signed",
        f"signed:{study.id}:{report.version}",
        study,
        destinations,
        report.version,
        shown.id if shown is not None else None,
    )


def cancel_pending(db: Session, study_id: int, now: datetime) -> int:
    """A retracted study's queued rows are cancelled (``skipped``, code ``retracted``); how
    many. A row being sent at this moment is not stopped: its correction follows it."""
    done = db.execute(
        update(OutboxItem)
        .where(OutboxItem.study_id == study_id, OutboxItem.state == "queued")
        .values(
            state="skipped",
            code="retracted",
            reason=RETRACTED_REASON[:200],
            next_at=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult, done).rowcount or 0  # an UPDATE's result is a CursorResult


def on_retracted(db: Session, study: Study, destinations: Iterable[Any]) -> list[OutboxItem]:
    """The correction for each configured destination that received something of ``study``
    (a row delivered or being sent): one ``retracted`` row, whatever events the destination
    takes. ``report_version`` is the newest version it got (what the FHIR and HL7
    corrections repeat as entered in error / withdrawn)."""
    key = f"{RETRACTED_EVENT}:{study.id}"
    have = set(db.scalars(select(OutboxItem.destination).where(OutboxItem.event_key == key)))
    received = dict(
        db.execute(
            select(OutboxItem.destination, func.max(OutboxItem.report_version))
            .where(
                OutboxItem.study_id == study.id,
                OutboxItem.event != RETRACTED_EVENT,
                OutboxItem.state.in_(("delivered", "sending")),
            )
            .group_by(OutboxItem.destination)
        ).all()
    )
    rows = []
    for d in destinations:
        if d.name not in received or d.name in have:
            continue
        row = OutboxItem(
            event=RETRACTED_EVENT,
            event_key=key,
            destination=d.name,
            kind=d.kind,
            study_id=study.id,
            report_version=received[d.name],
            state="queued",
            attempts=0,
        )
        db.add(row)
        rows.append(row)
    if rows:
        _wake_after_commit(db)
    return rows


# --- claim and mark ---------------------------------------------------------------------------


def _held():
    """SQL: the row waits for its study's open identity conflict (a retraction's correction
    never does)."""
    return open_conflict_clause(OutboxItem.study_id) & (OutboxItem.event != RETRACTED_EVENT)


def _due(now: datetime):
    earlier = aliased(OutboxItem)
    blocked = exists().where(
        earlier.destination == OutboxItem.destination,
        earlier.study_id == OutboxItem.study_id,
        earlier.id < OutboxItem.id,
        earlier.state.in_(PENDING),
    )
    held = _held()  # the right patient, always; a retraction's correction is never held
    waiting = (
        (OutboxItem.state == "queued")
        & or_(OutboxItem.next_at.is_(None), OutboxItem.next_at <= now)
        & ~blocked
        & ~held
    )
    orphaned = (OutboxItem.state == "sending") & (OutboxItem.lease_until < now) & ~held
    return or_(waiting, orphaned)


def claim(
    db: Session,
    worker: str,
    now: datetime,
    lease_s: float,
    skip: Iterable[str] = (),
    only: Iterable[str] | None = None,
) -> OutboxItem | None:
    """Claim the oldest due row (not for the destinations in ``skip``; only for those in
    ``only`` when given): ``sending``, under ``worker``'s lease."""
    q = select(OutboxItem.id).where(_due(now))
    if skip:
        q = q.where(OutboxItem.destination.not_in(list(skip)))
    if only is not None:
        q = q.where(OutboxItem.destination.in_(list(only)))
    candidates = db.scalars(q.order_by(OutboxItem.id).limit(8)).all()
    rid = claim_first(
        db,
        OutboxItem,
        candidates,
        _due(now),
        {
            "state": "sending",
            "worker": worker,
            "attempts": OutboxItem.attempts + 1,
            "lease_until": now + timedelta(seconds=lease_s),
            "updated_at": now,
        },
    )
    return db.get(OutboxItem, rid) if rid is not None else None


def _mark(db: Session, item_id: int, worker: str, now: datetime, **values: Any) -> bool:
    """Change a row this worker holds; False when it was taken over meanwhile. A code outside
    ``CODES`` is a mistake in medai, refused before it reaches a row."""
    if values.get("code") is not None and values["code"] not in CODES:
        raise ValueError(f"outbox code {values['code']!r} is not in medai.core.errors.CODES")
    done = db.execute(
        update(OutboxItem)
        .where(OutboxItem.id == item_id, OutboxItem.worker == worker, OutboxItem.state == "sending")
        .values(updated_at=now, lease_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult, done).rowcount == 1  # an UPDATE's result is a CursorResult


def mark_delivered(db: Session, item_id: int, worker: str, now: datetime, sent: int) -> bool:
    return _mark(
        db,
        item_id,
        worker,
        now,
        state="delivered",
        delivered_at=now,
        sent=sent,
        code=None,
        reason=None,
        next_at=None,
    )


def mark_retry(
    db: Session, item_id: int, worker: str, now: datetime, delay_s: float, code: str, reason: str
) -> bool:
    return _mark(
        db,
        item_id,
        worker,
        now,
        state="queued",
        code=code,
        reason=reason[:200],
        next_at=now + timedelta(seconds=delay_s),
    )


def mark_held(db: Session, item_id: int, worker: str, now: datetime) -> bool:
    """Put a claimed row back, untried: its study got an open identity conflict after the
    claim (the attempt the claim counted is given back)."""
    return _mark(
        db, item_id, worker, now, state="queued", attempts=OutboxItem.attempts - 1, next_at=None
    )


def mark_final(
    db: Session, item_id: int, worker: str, now: datetime, state: str, code: str, reason: str
) -> bool:
    """``failed`` (a person must look) or ``skipped`` (nothing to send, said why)."""
    return _mark(
        db, item_id, worker, now, state=state, code=code, reason=reason[:200], next_at=None
    )


def superseded(db: Session, item: OutboxItem) -> bool:
    """Whether a later event of the same study already reached this destination (a report
    status must not go back: an old FHIR or HL7 message retried by hand is not sent)."""
    return (
        db.scalar(
            select(OutboxItem.id)
            .where(
                OutboxItem.destination == item.destination,
                OutboxItem.study_id == item.study_id,
                OutboxItem.id > item.id,
                OutboxItem.state == "delivered",
            )
            .limit(1)
        )
        is not None
    )


def retry(db: Session, item_id: int, now: datetime) -> OutboxItem:
    """An admin sends a failed row again (due at once, back-off restarted)."""
    item = db.get(OutboxItem, item_id)
    if item is None:
        raise OutboxError("not_found", f"no delivery {item_id}")
    if item.state != "failed":
        raise OutboxError(
            "conflict", f"delivery {item_id} is {item.state}; only a failed one can be retried"
        )
    item.state, item.next_at, item.attempts, item.updated_at = "queued", None, 0, now
    _wake_after_commit(db)
    return item


def retry_by(db: Session, item_id: int, now: datetime, actor: audit.Actor) -> dict[str, Any]:
    """``retry`` a failed delivery for ``actor`` (an admin, or the CLI), audited in the same
    transaction; the delivery as admins see it (``as_dict``)."""
    item = retry(db, item_id, now)
    audit.record(db, actor, "admin", "outbox", item_id, op="retry", destination=item.destination)
    return as_dict(item)


# --- what admins see: ids, destinations, states (never patient data) -------------------------


def code_of(item: OutboxItem) -> str | None:
    """The row's code, an old one (``OLD_CODES``) read as the code it became."""
    return OLD_CODES.get(item.code, item.code) if item.code is not None else None


def shown_state(item: OutboxItem, held: bool = False) -> str:
    """``held``: queued for a study with an open identity conflict (sent once decided)."""
    if item.state == "queued" and held and item.event != RETRACTED_EVENT:
        return "held"
    if item.state == "queued" and item.attempts > 0:
        return "retrying"
    return item.state


def held_studies(db: Session, study_ids: Iterable[int]) -> set[int]:
    """Those of ``study_ids`` whose deliveries are held by an open identity conflict."""
    return {sid for sid, open_ids in open_by_study(db, list(study_ids)).items() if open_ids}


def as_dict(item: OutboxItem, held: bool = False) -> dict[str, Any]:
    shown = shown_state(item, held)
    return {
        "id": item.id,
        "event": item.event,
        "destination": item.destination,
        "kind": item.kind,
        "study_id": item.study_id,
        "report_version": item.report_version,
        "state": shown,
        "attempts": item.attempts,
        "next_attempt_at": iso_utc(item.next_at) if shown in ("queued", "retrying") else None,
        "code": "identity_conflict" if shown == "held" else code_of(item),
        "reason": (
            "held: the study has an open identity conflict" if shown == "held" else item.reason
        ),
        "sent": item.sent,
        "created_at": iso_utc(item.created_at),
        "updated_at": iso_utc(item.updated_at),
        "delivered_at": iso_utc(item.delivered_at),
    }


def summary(db: Session, destinations: Iterable[Any]) -> list[dict[str, Any]]:
    """Per destination (configured ones, and any that still has rows): where it is, how
    many rows are in each state, the next retry and the last failure."""
    dests = {d.name: d for d in destinations}
    counts: dict[str, dict[str, int]] = {}
    held = _held()
    for name, state, attempts, is_held, n in db.execute(
        select(
            OutboxItem.destination, OutboxItem.state, OutboxItem.attempts, held, func.count()
        ).group_by(OutboxItem.destination, OutboxItem.state, OutboxItem.attempts, held)
    ):
        shown = (
            "held"
            if state == "queued" and is_held
            else "retrying"
            if state == "queued" and attempts > 0
            else state
        )
        c = counts.setdefault(name, dict.fromkeys(SHOWN, 0))
        c[shown] += n
    out = []
    for name in [*dests, *sorted(set(counts) - set(dests))]:
        d = dests.get(name)
        next_at = db.scalar(
            select(func.min(OutboxItem.next_at)).where(
                OutboxItem.destination == name, OutboxItem.state == "queued"
            )
        )
        last = db.scalars(
            select(OutboxItem)
            .where(
                OutboxItem.destination == name,
                OutboxItem.code.is_not(None),
                OutboxItem.state.in_(("queued", "failed")),
            )
            .order_by(OutboxItem.updated_at.desc(), OutboxItem.id.desc())
            .limit(1)
        ).first()
        out.append(
            {
                "name": name,
                "kind": d.kind if d else None,
                "where": d.where if d else None,
                "configured": d is not None,
                "events": list(d.events) if d else [],
                "counts": counts.get(name, dict.fromkeys(SHOWN, 0)),
                "next_attempt_at": iso_utc(next_at),
                "last_problem": None
                if last is None
                else {
                    "id": last.id,
                    "state": shown_state(last),
                    "code": code_of(last),
                    "reason": last.reason,
                    "at": iso_utc(last.updated_at),
                },
            }
        )
    return out


def items(
    db: Session,
    destination: str | None = None,
    state: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[OutboxItem], int]:
    """Rows, newest first; ``state`` is one of ``SHOWN`` (``retrying``: queued after a
    failed attempt)."""
    q = select(OutboxItem)
    if destination:
        q = q.where(OutboxItem.destination == destination)
    held = _held()
    if state == "held":
        q = q.where(OutboxItem.state == "queued", held)
    elif state == "retrying":
        q = q.where(OutboxItem.state == "queued", OutboxItem.attempts > 0, ~held)
    elif state == "queued":
        q = q.where(OutboxItem.state == "queued", OutboxItem.attempts == 0, ~held)
    elif state:
        q = q.where(OutboxItem.state == state)
    total = db.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = db.scalars(q.order_by(OutboxItem.id.desc()).limit(limit).offset(offset)).all()
    return list(rows), total


def status(
    db: Session,
    destinations: Iterable[Any],
    destination: str | None = None,
    state: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """What the admin's outbox page reads: per destination (``summary``), and a page of the
    deliveries, newest first (``items``), each shown held when its study has an open identity
    conflict; ``total`` of them."""
    rows, total = items(db, destination, state, limit, offset)
    held = held_studies(db, {r.study_id for r in rows})
    return {
        "destinations": summary(db, destinations),
        "items": [as_dict(r, r.study_id in held) for r in rows],
        "total": total,
    }
