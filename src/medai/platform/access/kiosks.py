"""Registered triage kiosks: who may register them, their credentials, their daily quota.

A kiosk in a waiting room is one network address; counted as an anonymous client it stopped
after three patients. A registered kiosk has its own quota, counted per day of the hospital's
time zone. Its credentials are stored as sha256 like sessions and tokens
(``tokens.digest``): an API token for machine clients, shown once, and a one-time
enrolment code that a kiosk browser exchanges for an HttpOnly cookie (so no long-lived secret
ever sits in a URL or a proxy log). The API, the CLI and the admin page all call these
functions; ``now`` is always passed in (naive UTC) so tests can move the clock.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medai.core.errors import MedaiError
from medai.platform.access import audit
from medai.platform.access.accounts import CODE_ALPHABET, normalise_code
from medai.platform.access.credentials import CLIENT_FACTOR, take_slots
from medai.platform.access.tokens import digest
from medai.platform.records.db import lock_key
from medai.platform.records.tables import Kiosk, TriageRecord

# enrolment codes are typed on a touch screen: 10 symbols of accounts.CODE_ALPHABET ≈ 49 bits
CODE_LENGTH = 10
MAX_QUOTA = 1_000_000
_LETTERS = "a-zA-Z0-9._çğıöşüÇĞİÖŞÜ-"
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ._-çğıöşüÇĞİÖŞÜ")
# the same rule as a pattern for the API's schema: NAME_CHARS, at least one that is not a space
NAME_PATTERN = f"^ *[{_LETTERS}][ {_LETTERS}]*$"


class KioskError(MedaiError, ValueError):
    """A kiosk request that cannot be done; the message is safe to show."""

    status, code = 422, "invalid"


class KioskNotFound(KioskError):
    status, code = 404, "not_found"


class KioskRevoked(KioskNotFound):
    """A triage request from a kiosk revoked since it was let in (``reserve``)."""

    status, code = 401, "kiosk_revoked"

    def __init__(self) -> None:
        super().__init__("this kiosk was revoked by an administrator")


class KioskConflict(KioskError):
    status, code = 409, "conflict"


class QuotaExhausted(MedaiError, Exception):
    """A registered kiosk's requests of today are used up (``reserve``); ``zone`` names the
    midnight it starts again at."""

    status, code = 429, "kiosk_quota_exhausted"

    def __init__(self, quota: int, reset_in_s: int, zone: str = "") -> None:
        super().__init__(f"this kiosk's {quota} triage requests for today are used up")
        self.quota, self.reset_in_s, self.zone = quota, reset_in_s, zone

    # read-only: derived from reset_in_s, never set
    @property
    def headers(self) -> dict[str, str]:  # type: ignore[override]
        return {"Retry-After": str(self.reset_in_s)}

    def public_detail(self) -> str:
        return f"{self}; it starts again at midnight ({self.zone}). Please ask at the desk."


class AnonymousQuotaExhausted(QuotaExhausted):
    """An unregistered client's complaints of today are used up (``reserve_anonymous``)."""

    code = "throttled"

    def public_detail(self) -> str:
        return (
            f"anonymous triage allows {self.quota} complaints a day from one address; "
            "sign in, or ask at the desk"
        )


@dataclass(frozen=True)
class Issued:
    """What an admin sees once: the kiosk, its API token and its enrolment code."""

    kiosk: Kiosk
    token: str
    enrol_code: str


def check_name(name: str) -> str:
    name = " ".join(name.split())
    if not 1 <= len(name) <= 64 or not set(name) <= NAME_CHARS:
        raise KioskError("name: 1–64 letters, digits, spaces, '.', '_' or '-'")
    return name


def check_quota(quota: int) -> int:
    if not 0 <= quota <= MAX_QUOTA:
        raise KioskError(f"daily_quota: 0 to {MAX_QUOTA}")
    return quota


def day_window(now: datetime, zone: str) -> tuple[datetime, int]:
    """The start of ``now``'s day in the hospital's time zone (naive UTC, as stored) and the
    seconds until the next local midnight (for Retry-After)."""
    tz = ZoneInfo(zone)
    local = now.replace(tzinfo=UTC).astimezone(tz)
    start = datetime.combine(local.date(), time(0), tzinfo=tz).astimezone(UTC)
    nxt = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return start.replace(tzinfo=None), max(
        1, int((nxt - now.replace(tzinfo=UTC)).total_seconds()) + 1
    )


def _new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def register(
    db: Session,
    name: str,
    daily_quota: int,
    now: datetime,
    enrol_minutes: int,
    created_by: int | None = None,
) -> Issued:
    name, daily_quota = check_name(name), check_quota(daily_quota)
    if db.scalar(select(Kiosk).where(Kiosk.name == name, Kiosk.revoked_at.is_(None))):
        raise KioskConflict(
            f"a kiosk named {name!r} is registered; revoke it first or choose another name"
        )
    token = secrets.token_urlsafe(32)
    kiosk = Kiosk(
        name=name,
        daily_quota=daily_quota,
        token_hash=digest(token),
        created_by=created_by,
        created_at=now,
    )
    db.add(kiosk)
    code = _set_code(kiosk, now, enrol_minutes)
    db.flush()
    return Issued(kiosk, token, code)


def _set_code(kiosk: Kiosk, now: datetime, minutes: int) -> str:
    code = _new_code()
    kiosk.enrol_code_hash = digest(code)
    kiosk.enrol_expires_at = now + timedelta(minutes=minutes)
    return code


def new_enrol_code(db: Session, kiosk: Kiosk, now: datetime, minutes: int) -> str:
    """A fresh one-time code (the previous unused one stops working); enrolling with it
    moves the kiosk to the new browser (the old browser's cookie stops working)."""
    _active(kiosk)
    return _set_code(kiosk, now, minutes)


def _active(kiosk: Kiosk) -> Kiosk:
    if kiosk.revoked_at is not None:
        raise KioskConflict(f"kiosk {kiosk.name!r} is revoked; register a new one")
    return kiosk


def enrol(db: Session, code: str, now: datetime) -> tuple[Kiosk, str]:
    """Exchange a valid one-time code for the browser's credential (returned raw, to be set
    as an HttpOnly cookie; only its hash is kept)."""
    code = normalise_code(code)
    kiosk = db.scalar(select(Kiosk).where(Kiosk.enrol_code_hash == digest(code))) if code else None
    if (
        kiosk is None
        or kiosk.revoked_at is not None
        or kiosk.enrol_expires_at is None
        or kiosk.enrol_expires_at <= now
    ):
        raise KioskNotFound("enrolment code unknown, used or expired; ask for a new one")
    secret = secrets.token_urlsafe(32)
    kiosk.cookie_hash, kiosk.enrolled_at = digest(secret), now
    kiosk.enrol_code_hash = kiosk.enrol_expires_at = None  # one use only
    return kiosk, secret


def take_enrol_attempt(
    db: Session, client: str, now: datetime, max_failures: int, window_s: float
) -> tuple[int, ...] | None:
    """Count a kiosk enrolment attempt as a wrong code, atomically with the per-client check
    (the per-client sign-in limit, ``credentials.take_slots``); None when throttled."""
    return take_slots(db, {f"kiosk-enrol:{client}": max_failures * CLIENT_FACTOR}, window_s, at=now)


def by_credential(db: Session, raw: str, kind: str) -> Kiosk | None:
    """The kiosk whose API token (``kind="token"``) or browser cookie (``"cookie"``) this is,
    revoked or not (the caller tells a revoked kiosk apart)."""
    column = {"token": Kiosk.token_hash, "cookie": Kiosk.cookie_hash}[kind]
    return db.scalar(select(Kiosk).where(column == digest(raw[:256])))


def get(db: Session, kiosk_id: int) -> Kiosk:
    kiosk = db.get(Kiosk, kiosk_id)
    if kiosk is None:
        raise KioskNotFound(f"no kiosk {kiosk_id}")
    return kiosk


def by_name(db: Session, name: str) -> Kiosk:
    """The registered (not revoked) kiosk of this name."""
    kiosk = db.scalar(
        select(Kiosk).where(Kiosk.name == " ".join(name.split()), Kiosk.revoked_at.is_(None))
    )
    if kiosk is None:
        raise KioskNotFound(f"no registered kiosk named {name!r}")
    return kiosk


def set_quota(kiosk: Kiosk, daily_quota: int) -> Kiosk:
    _active(kiosk).daily_quota = check_quota(daily_quota)
    return kiosk


def revoke(kiosk: Kiosk, now: datetime) -> Kiosk:
    """Both credentials stop at once; the row and its requests stay for the record."""
    if kiosk.revoked_at is None:
        kiosk.revoked_at = now
        kiosk.enrol_code_hash = kiosk.enrol_expires_at = None
    return kiosk


def listing(db: Session) -> list[Kiosk]:
    """Registered kiosks first (by name), then revoked ones (newest first)."""
    rows = list(db.scalars(select(Kiosk)))
    return sorted(
        rows,
        key=lambda k: (
            k.revoked_at is not None,
            k.name.lower() if k.revoked_at is None else -k.revoked_at.timestamp(),
        ),
    )


def used_today(db: Session, kiosk_ids: list[int], now: datetime, zone: str) -> dict[int, int]:
    """Triage requests each kiosk made since the local midnight."""
    if not kiosk_ids:
        return {}
    start, _ = day_window(now, zone)
    rows = db.execute(
        select(TriageRecord.kiosk_id, func.count())
        .where(TriageRecord.kiosk_id.in_(kiosk_ids), TriageRecord.created_at >= start)
        .group_by(TriageRecord.kiosk_id)
    ).all()
    counts = dict.fromkeys(kiosk_ids, 0)
    # kiosk_id is one of kiosk_ids (filtered above), never NULL
    counts.update({cast(int, k): n for k, n in rows})
    return counts


def _take_slot(
    db: Session,
    owner: dict[str, Any],
    quota: int,
    complaint: bytes,
    now: datetime,
    zone: str,
    refused: type[QuotaExhausted] = QuotaExhausted,
) -> int:
    """Count the requests ``owner`` (one TriageRecord column and its value) made since the
    local midnight and insert one more, unless it holds its quota (``QuotaExhausted``). The
    caller holds the owner's lock, so concurrent requests count like serial ones."""
    ((column, value),) = owner.items()
    start, reset_in = day_window(now, zone)
    used = (
        db.scalar(
            select(func.count())
            .select_from(TriageRecord)
            .where(getattr(TriageRecord, column) == value, TriageRecord.created_at >= start)
        )
        or 0
    )
    if used >= quota:
        raise refused(quota, reset_in, zone)
    row = TriageRecord(
        **owner, complaint=complaint, result={}, urgent=False, model_hash="", created_at=now
    )
    db.add(row)
    db.flush()
    return row.id


def reserve(db: Session, kiosk_id: int, complaint: bytes, now: datetime, zone: str) -> int:
    """Take one of today's slots of the kiosk: the kiosk row is locked (FOR UPDATE on
    PostgreSQL; SQLite's write transaction already serialises), counted and the request
    inserted in one transaction, so concurrent requests never exceed the quota. Returns the
    new request's id; raises ``QuotaExhausted``."""
    kiosk = db.scalar(select(Kiosk).where(Kiosk.id == kiosk_id).with_for_update())
    if kiosk is None or kiosk.revoked_at is not None:
        raise KioskRevoked()
    return _take_slot(db, {"kiosk_id": kiosk_id}, kiosk.daily_quota, complaint, now, zone)


def reserve_anonymous(
    db: Session, client: str | None, complaint: bytes, now: datetime, zone: str, quota: int
) -> int:
    """Take one of an unregistered client's daily slots: the client's key is locked
    (``db.lock_key``), its requests of today counted and the new one inserted in one
    transaction, so concurrent requests never exceed the quota (on PostgreSQL too, where an
    insert-then-count let two requests both see themselves within it). Returns the new
    request's id; raises ``QuotaExhausted``."""
    lock_key(db, f"anonymous-triage:{client}")
    return _take_slot(
        db, {"kiosk_client": client}, quota, complaint, now, zone, AnonymousQuotaExhausted
    )


# Use cases: what an admin (API or CLI) does to a kiosk, validated, written and audited
# (``admin`` on ``kiosk``) in the caller's transaction.


def register_kiosk(
    db: Session,
    name: str,
    daily_quota: int,
    now: datetime,
    enrol_minutes: int,
    actor: audit.Actor,
) -> Issued:
    """``register``, made by ``actor`` (``created_by``: its user id; none for the CLI) and
    audited as op=create with the quota."""
    issued = register(db, name, daily_quota, now, enrol_minutes, created_by=actor.id)
    audit.record(db, actor, "admin", "kiosk", issued.kiosk.id, op="create", daily_quota=daily_quota)
    return issued


def issue_enrol_code(
    db: Session, kiosk: Kiosk, now: datetime, minutes: int, actor: audit.Actor
) -> str:
    """``new_enrol_code``, audited as op=enrol_code (never the code itself)."""
    code = new_enrol_code(db, kiosk, now, minutes)
    audit.record(db, actor, "admin", "kiosk", kiosk.id, op="enrol_code")
    return code


def revoke_kiosk(db: Session, kiosk: Kiosk, now: datetime, actor: audit.Actor) -> Kiosk:
    """``revoke``, audited as op=revoke."""
    revoke(kiosk, now)
    audit.record(db, actor, "admin", "kiosk", kiosk.id, op="revoke")
    return kiosk


def change_quota(db: Session, kiosk: Kiosk, daily_quota: int, actor: audit.Actor) -> int:
    """``set_quota``, audited as op=quota with the quota before and after; returns the one
    before."""
    before = kiosk.daily_quota
    set_quota(kiosk, daily_quota)
    audit.record(
        db, actor, "admin", "kiosk", kiosk.id, op="quota", before=before, daily_quota=daily_quota
    )
    return before
