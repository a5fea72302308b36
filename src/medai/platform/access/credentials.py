"""Password checking and its throttle: a password verified against its hash (a dummy hash
for an unknown user, so timing says nothing), failures counted per user and per client in
slots taken before the check, so that parallel guesses cannot pass the limit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from medai.core.errors import MedaiError
from medai.platform.access import passwords
from medai.platform.records.crypto import cipher
from medai.platform.records.db import lock_key, utcnow
from medai.platform.records.tables import LoginFailure, User

NO_PASSWORD = ""  # the stored hash of an account whose user has not enrolled: matches nothing


CLIENT_FACTOR = 10


def _hasher(profile: str):
    """The hasher of ``profile`` (passwords.HASH_PROFILES). Every function that hashes or
    checks a password is handed the configured profile (``MEDAI_PASSWORD_HASH``: the caller's
    ``settings.auth.password_hash``) as ``hash_profile``."""
    return passwords.hasher(profile)


def dummy_hash(profile: str) -> str:
    """Verified against when the user does not exist, so both cases take the same time (one
    per profile: the same cost as a real user's hash)."""
    if profile not in _DUMMY_HASHES:
        _DUMMY_HASHES[profile] = passwords.hasher(profile).hash("medai-timing-equaliser")
    return _DUMMY_HASHES[profile]


_DUMMY_HASHES: dict[str, str] = {}


class AuthFailed(MedaiError, Exception):
    """Never says which of the two was wrong."""

    status, code = 401, "unauthenticated"

    def __init__(self, message: str = "wrong user name or password") -> None:
        super().__init__(message)


class Throttled(MedaiError, Exception):
    status, code = 429, "throttled"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("too many failed logins; try again later")
        self.retry_after_s = retry_after_s

    # read-only: derived from retry_after_s, never set
    @property
    def headers(self) -> dict[str, str]:  # type: ignore[override]
        return {"Retry-After": str(self.retry_after_s)}


def _failures(db: Session, key: str, since: datetime) -> int:
    return (
        db.scalar(
            select(func.count())
            .select_from(LoginFailure)
            .where(LoginFailure.key == key, LoginFailure.at >= since)
        )
        or 0
    )


def take_slots(
    db: Session, limits: dict[str, int], window_s: float, at: datetime | None = None
) -> tuple[int, ...] | None:
    """Count one failure under each key of ``limits``, unless a key already holds its limit
    within the window: then nothing is counted and the answer is None. The keys are locked
    (in sorted order, so two takers never deadlock) before they are counted: concurrent
    takers then count exactly like serial ones. Returns the new rows' ids (``give_back``)."""
    at = at or utcnow()
    since = at - timedelta(seconds=window_s)
    for key in sorted(limits):
        lock_key(db, key)
    if any(_failures(db, k, since) >= n for k, n in limits.items()):
        return None
    rows = [LoginFailure(key=k, at=at) for k in limits]
    db.add_all(rows)
    db.flush()
    return tuple(r.id for r in rows)


def give_back(db: Session, ids: tuple[int, ...]) -> None:
    """Un-count what ``take_slots`` counted (the attempt succeeded)."""
    db.execute(delete(LoginFailure).where(LoginFailure.id.in_(ids)))


@dataclass(frozen=True)
class Attempt:
    """A sign-in attempt counted as a failure before its password is checked."""

    user_key: str
    ids: tuple[int, ...]


def take_attempt(
    db: Session, username: str, client: str, max_failures: int, window_s: float
) -> Attempt:
    """Count a sign-in attempt as failed, atomically with the throttle's check; raises
    ``Throttled`` after ``max_failures`` failures for the user name (or ten times as many
    from one client) within the window. Commit it before checking the password, so that a
    wrong password stays counted (``settle`` removes it when the password was right)."""
    keys = _throttle_keys(username, client)
    # a ward shares one address behind NAT: the per-client limit is ten times the per-user one
    ids = take_slots(db, {keys[0]: max_failures, keys[1]: max_failures * CLIENT_FACTOR}, window_s)
    if ids is None:
        raise Throttled(int(window_s))
    return Attempt(keys[0], ids)


def settle(db: Session, attempt: Attempt) -> None:
    """The password was right: the attempt and the user name's earlier failures are cleared
    (the client's other failures stay)."""
    give_back(db, attempt.ids)
    db.execute(delete(LoginFailure).where(LoginFailure.key == attempt.user_key))


def authenticate(
    db: Session,
    username: str,
    password: str,
    client: str,
    max_failures: int,
    window_s: float,
    *,
    hash_profile: str,
) -> User:
    """``take_attempt``, ``verify`` and ``settle`` in the caller's one transaction (a console
    or a test): an ``AuthFailed`` rolls the counted attempt back with it. The API takes the
    attempt in a transaction of its own first (``sign_in.login``)."""
    attempt = take_attempt(db, username, client, max_failures, window_s)
    user = verify(db, username, password, hash_profile=hash_profile)
    settle(db, attempt)
    return user


def verify(db: Session, username: str, password: str, *, hash_profile: str) -> User:
    """The active, enrolled user with this password (its hash re-made under
    ``hash_profile``, the configured one, when that is stronger), else ``AuthFailed``; an
    unknown name costs the same time."""
    user = db.scalar(select(User).where(User.username == username[:64]))
    stored = user.password_hash if user is not None else NO_PASSWORD
    h = _hasher(hash_profile)
    try:
        h.verify(stored or dummy_hash(hash_profile), password[:1024])
        ok = user is not None and stored != NO_PASSWORD and user.active
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None:  # ok only for a found user
        raise AuthFailed  # counted already (take_attempt)
    if h.check_needs_rehash(user.password_hash) and not passwords.weaker(h, user.password_hash):
        user.password_hash = h.hash(password)
    return user


def name_key(username: str) -> str:
    """What the throttle stores of a typed user name: its keyed hash (``Cipher.pseudonym``),
    never the text, which may be a password typed into the wrong field."""
    return cipher().pseudonym(username[:64].lower())


def _throttle_keys(username: str, client: str) -> list[str]:
    return [f"user:{name_key(username)}", f"client:{client}"]


def take_enrol_attempt(
    db: Session, client: str, max_failures: int, window_s: float
) -> tuple[int, ...] | None:
    """Count an enrolment attempt as a wrong code, atomically with the per-client check
    (the per-client sign-in limit); None when throttled. ``give_back`` when the code was
    right."""
    return take_slots(db, {f"enrol:{client}": max_failures * CLIENT_FACTOR}, window_s)
