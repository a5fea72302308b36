"""Users, roles, passwords, sessions and tokens, and who may do what.

``PERMISSIONS`` is the one table of access rules; the API, the CLI and the tests read it.
Admins manage users, models and the audit log but read no patient data (least privilege);
patients use triage and see only their own history.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from medai.platform.db import utcnow
from medai.platform.tables import LoginFailure, Token, User

ROLES = ("admin", "radiologist", "clinician", "patient")
CLINICAL = frozenset({"radiologist", "clinician"})

PERMISSIONS: dict[str, frozenset[str]] = {
    "triage": frozenset(ROLES),
    "triage_history": frozenset(ROLES),  # each user's own
    "imaging": CLINICAL,  # the stateless predict / heatmap / draft endpoints
    "study_upload": CLINICAL,
    "study_read": CLINICAL,
    "report_edit": frozenset({"radiologist"}),
    "report_sign": frozenset({"radiologist"}),
    "report_export": CLINICAL,
    "chat": CLINICAL,  # each user's own conversations
    "users_manage": frozenset({"admin"}),
    "kiosks_manage": frozenset({"admin"}),  # register, list, re-enrol, revoke kiosk devices
    "models_read": frozenset({"admin"}),
    "audit_read": frozenset({"admin"}),
}

CLIENT_FACTOR = 10
_hasher = PasswordHasher()
# verified against when the user does not exist, so both cases take the same time
_DUMMY_HASH = _hasher.hash("medai-timing-equaliser")


class AccountError(ValueError):
    """A request about accounts that cannot be done (message safe to show)."""


class AuthFailed(Exception):
    pass


class Throttled(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__("too many failed logins; try again later")
        self.retry_after_s = retry_after_s


def allowed(role: str | None, action: str) -> bool:
    if action not in PERMISSIONS:
        raise KeyError(f"unknown action {action!r}; valid: {', '.join(PERMISSIONS)}")
    return role in PERMISSIONS[action]


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; valid: {', '.join(ROLES)}")
    return role


def create_user(db: Session, username: str, password: str, role: str) -> User:
    check_role(role)
    username = username.strip()
    if not (1 <= len(username) <= 64) or not username.replace("_", "").replace(
            ".", "").replace("-", "").isalnum():
        raise AccountError("username: 1–64 letters, digits, '.', '_' or '-'")
    if len(password) < 8 or len(password) > 1024:
        raise AccountError("password: 8 to 1024 characters")
    if db.scalar(select(User).where(User.username == username)) is not None:
        raise AccountError(f"user {username!r} exists")
    user = User(username=username, password_hash=_hasher.hash(password), role=role)
    db.add(user)
    db.flush()
    return user


def set_active(db: Session, username: str, active: bool) -> User:
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        raise AccountError(f"no user {username!r}")
    user.active = active
    if not active:  # a disabled user's sessions and tokens stop at once
        for tok in db.scalars(select(Token).where(Token.user_id == user.id,
                                                  Token.revoked_at.is_(None))):
            tok.revoked_at = utcnow()
    return user


def _failures(db: Session, key: str, window_s: float) -> int:
    since = utcnow() - timedelta(seconds=window_s)
    return db.scalar(select(func.count()).select_from(LoginFailure).where(
        LoginFailure.key == key, LoginFailure.at >= since)) or 0


def authenticate(db: Session, username: str, password: str, client: str,
                 max_failures: int, window_s: float) -> User:
    """The active user with this password; raises ``Throttled`` after ``max_failures``
    failures for the user name (or ten times as many from one client) within the window,
    else ``AuthFailed``."""
    keys = _throttle_keys(username, client)
    # a ward shares one address behind NAT: the per-client limit is ten times the per-user one
    limits = (max_failures, max_failures * CLIENT_FACTOR)
    if any(_failures(db, k, window_s) >= n for k, n in zip(keys, limits, strict=True)):
        raise Throttled(int(window_s))
    user = db.scalar(select(User).where(User.username == username[:64]))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password[:1024])
        ok = user is not None and user.active
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok:
        raise AuthFailed  # the caller records it (record_failure) in its own transaction
    db.execute(delete(LoginFailure).where(LoginFailure.key == keys[0]))
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def _throttle_keys(username: str, client: str) -> list[str]:
    return [f"user:{username[:64].lower()}", f"client:{client}"]


def record_failure(db: Session, username: str, client: str) -> None:
    for k in _throttle_keys(username, client):
        db.add(LoginFailure(key=k))


def digest(raw: str) -> str:
    """What is stored of a secret (session, token, kiosk credential): its sha256. The secrets
    are 256-bit random, so a plain hash is enough (no password stretching needed)."""
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class Issued:
    token: str
    csrf: str | None
    expires_in_s: int


def issue(db: Session, user: User, kind: str, lifetime: timedelta,
          name: str | None = None) -> Issued:
    """A new session (with its CSRF secret) or bearer token; only hashes are stored."""
    raw = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24) if kind == "session" else None
    db.add(Token(user_id=user.id, token_hash=digest(raw), kind=kind, name=name,
                 csrf_hash=digest(csrf) if csrf else None,
                 expires_at=utcnow() + lifetime))
    return Issued(raw, csrf, int(lifetime.total_seconds()))


def resolve(db: Session, raw: str, kind: str | None = None) -> tuple[User, Token] | None:
    tok = db.scalar(select(Token).where(Token.token_hash == digest(raw[:256])))
    if tok is None or tok.revoked_at is not None or tok.expires_at <= utcnow():
        return None
    if kind is not None and tok.kind != kind:
        return None
    user = db.get(User, tok.user_id)
    if user is None or not user.active:
        return None
    return user, tok


def csrf_ok(tok: Token, presented: str | None) -> bool:
    return bool(tok.csrf_hash and presented
                and secrets.compare_digest(tok.csrf_hash, digest(presented[:256])))


def revoke(db: Session, tok: Token) -> None:
    if tok.revoked_at is None:
        tok.revoked_at = utcnow()
