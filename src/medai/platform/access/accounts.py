"""Users, roles, passwords, sessions and tokens, and who may do what.

``PERMISSIONS`` is the one table of access rules; the API, the CLI and the tests read it.
Admins manage users, models and the audit log but read no patient data (least privilege);
patients use triage and see only their own history. An account is administrative or not for
its whole life (``role_conflict``), so an admin never holds a clinical role.

Nobody sets another person's password: an admin creates an account (or resets one) and is shown
a one-time enrolment code, stored only as its sha256, that expires; the user exchanges it for a
password they choose (``enrol``), checked by ``passwords.check`` like every password.

**A reset or a role change starts the account's own history anew** (``history_since``): the
admin who resets an account sees its new enrolment code, so whoever enrols with it must not
inherit what the person before them did. The account's own triage history and its
conversations list only rows made at or after ``users.history_since`` (``own_since``); nothing
is deleted, and clinicians still reach a triage by its record number (``triage_outcome``).

**Failed sign-ins are counted before the password is checked** (``take_attempt``): the
attempt's failure rows are inserted under a lock on their keys, and removed again when the
password was right (``settle``), so concurrent attempts meet the limit exactly as serial ones
do. A user name that names no account (often a password typed into the wrong field) is
counted and audited only as a keyed hash (``name_key``, ``audit_name``).

**The last active, enrolled admin cannot be disabled** (``LastAdmin``, 409 ``last_admin``):
nobody could then manage users from the API; a reset stays possible (it returns a new code).
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from medai.core.errors import MedaiError
from medai.platform.access import audit, passwords
from medai.platform.records.crypto import cipher
from medai.platform.records.db import lock_key, utcnow
from medai.platform.records.tables import LoginFailure, Token, User

ROLES = ("admin", "radiologist", "clinician", "patient")
CLINICAL = frozenset({"radiologist", "clinician"})
ADMIN = frozenset({"admin"})
ENROL_HOURS = 72  # how long a new account's (or a reset's) enrolment code is valid by default
MAX_ENROL_HOURS = 14 * 24
# enrolment codes are typed by hand (kiosk codes on a touch screen): no 0/O, 1/I/L
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 12  # of CODE_ALPHABET (31 symbols): about 59 bits
NO_PASSWORD = ""  # the stored hash of an account whose user has not enrolled: matches nothing
DICOM_ACCOUNT = "medai-dicom"  # what studies from the DICOM node are filed under (inactive)
INTERNAL = frozenset({DICOM_ACCOUNT})

PERMISSIONS: dict[str, frozenset[str]] = {
    "triage": frozenset(ROLES),
    "triage_history": frozenset(ROLES),  # each user's own
    "imaging": CLINICAL,  # the stateless predict / heatmap / draft endpoints
    "study_upload": CLINICAL,
    # analyse a study again as another type (platform.reanalysis): who may upload it again
    "study_reanalyse": CLINICAL,
    "study_read": CLINICAL,
    "report_edit": frozenset({"radiologist"}),
    "report_sign": frozenset({"radiologist"}),
    "report_export": CLINICAL,
    "chat": CLINICAL,  # each user's own conversations
    "users_manage": frozenset({"admin"}),
    "kiosks_manage": frozenset({"admin"}),  # register, list, re-enrol, revoke kiosk devices
    "models_read": frozenset({"admin"}),
    # read a triage by its record number and record where the patient was actually sent
    "triage_outcome": CLINICAL,
    # register, shadow, promote, roll back and retire models (platform.lifecycle)
    "models_manage": frozenset({"admin"}),
    "audit_read": frozenset({"admin"}),
    "outbox_manage": frozenset({"admin"}),  # deliveries to PACS/FHIR/HL7: states, retry
    # the second person of the two-person rule (platform.approval): a new, reset or re-roled
    # clinical account reads no patient data until a radiologist (or the server's shell) says so
    "accounts_approve": frozenset({"radiologist"}),
    # identity conflicts (platform.identity_conflicts): a radiologist sees both identities and
    # decides; an admin sees that they exist and why, identities masked (no patient data)
    "conflicts_review": frozenset({"radiologist"}),
    "conflicts_view": frozenset({"admin"}),
    # retract a study filed under the wrong patient or order (platform.retraction): the
    # radiologist who knows the images, never an admin (who reads no patient data)
    "study_retract": frozenset({"radiologist"}),
    # report templates and macros (reading.report_templates): read by those who write reports
    # (the macros of the study page); kept by an admin (listed, saved: versioned, audited).
    # Two actions, not one shared by both sides: an action held by a clinical role and an
    # admin would put admins under the two-person rule (``approval.GATED``)
    "templates_read": CLINICAL,
    "templates_manage": frozenset({"admin"}),
}

CLIENT_FACTOR = 10


def normalise_code(code: str) -> str:
    """What the user typed, without spaces or dashes, upper case (codes are shown grouped)."""
    return "".join(c for c in code.upper() if c.isalnum())[:64]


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


class AccountError(MedaiError, ValueError):
    """A request about accounts that cannot be done (message safe to show); ``status`` and
    ``code`` are the API's answer."""

    status, code = 422, "invalid"


class AccountExists(AccountError):
    status, code = 409, "conflict"


class NoSuchUser(AccountError):
    status, code = 404, "not_found"


class RoleConflict(AccountError):
    code = "role_conflict"


class InternalAccount(AccountError):
    """An account medai itself files studies under (``DICOM_ACCOUNT``): nobody signs in as
    it, so it is never reset, enabled, re-roled or waiting for approval."""

    status, code = 409, "internal_account"


class LastAdmin(AccountError):
    """Disabling the only active, enrolled admin would leave nobody to manage accounts."""

    status, code = 409, "last_admin"


class PasswordNotAllowed(AccountError):
    """A password given for an account whose user must choose it (every non-admin role)."""


class EnrolmentRefused(AccountError):
    """An enrolment code that is unknown, used or expired."""

    status, code = 404, "enrol_code_invalid"


class WeakPassword(AccountError):
    code = "weak_password"

    def __init__(self, verdict: passwords.Verdict) -> None:
        super().__init__(verdict.message)
        self.verdict = verdict

    @property
    def errors(self) -> list[dict]:  # the field the form marks, and why
        return [{"loc": ["body", "password"], "msg": str(self), "type": self.verdict.reason}]


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

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


def allowed(role: str | None, action: str) -> bool:
    if action not in PERMISSIONS:
        raise KeyError(f"unknown action {action!r}; valid: {', '.join(PERMISSIONS)}")
    return role in PERMISSIONS[action]


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; valid: {', '.join(ROLES)}")
    return role


def check_username(username: str) -> str:
    username = username.strip()
    if (
        not (1 <= len(username) <= 64)
        or not username.replace("_", "").replace(".", "").replace("-", "").isalnum()
    ):
        raise AccountError("username: 1–64 letters, digits, '.', '_' or '-'")
    return username


FULL_NAME_MAX, TITLE_MAX = 60, 24  # together at most FULL_NAME_MAX: a DICOM PN group holds 64
# what a person's name or title is made of: letters of any script, spaces, . - ' ’ (never the
# separators of a DICOM name or an HL7 field: ^ = \ | ~ &)
_NAME_PUNCT = frozenset(" .-'’")


def _clean_name(value: str | None, field: str, low: int, high: int) -> str | None:
    text = " ".join(unicodedata.normalize("NFC", value or "").split())
    if not text:
        return None
    if not (low <= len(text) <= high) or not all(c.isalpha() or c in _NAME_PUNCT for c in text):
        raise AccountError(
            f"{field}: {low}–{high} characters: letters, spaces, '.', '-' or an apostrophe "
            f"(got {len(text)} characters)"
        )
    return text


def check_profile(full_name: str | None, title: str | None) -> tuple[str | None, str | None]:
    """A full name ("Ayşe Yılmaz": given names, then the family name last) and a title
    ("Uzm. Dr."), spaces collapsed; empty: none. ``AccountError`` says what is valid."""
    name = _clean_name(full_name, "full name", 2, FULL_NAME_MAX)
    title = _clean_name(title, "title", 1, TITLE_MAX)
    if title and not name:
        raise AccountError("title: give a full name with it (a title alone names nobody)")
    if name and title and len(name) + len(title) + 1 > FULL_NAME_MAX:
        raise AccountError(
            f"full name and title together: at most {FULL_NAME_MAX} characters "
            "(a DICOM name holds 64)"
        )
    return name, title


def person_parts(full_name: str) -> tuple[str, list[str]]:
    """(family name, given names) of a full name: its last word is the family name."""
    words = full_name.split()
    return (words[-1], words[:-1]) if words else ("", [])


def signs_as(username: str, full_name: str | None, title: str | None) -> str:
    """How a signed document names a person: "Uzm. Dr. Ayşe Yılmaz", or the user name when
    no full name is set."""
    if not full_name:
        return username
    return f"{title} {full_name}" if title else full_name


def set_password(user: User, password: str, *, hash_profile: str) -> None:
    """The user's own choice, if the policy accepts it (``WeakPassword`` says why not), hashed
    under ``hash_profile``."""
    verdict = passwords.check(password, user.username)
    if not verdict.ok:
        raise WeakPassword(verdict)
    user.password_hash = _hasher(hash_profile).hash(password)
    user.enrol_code_hash = user.enrol_expires_at = None


def _new_user(db: Session, username: str, role: str) -> User:
    check_role(role)
    username = check_username(username)
    if db.scalar(select(User).where(User.username == username)) is not None:
        raise AccountExists(f"user {username!r} exists")
    return User(username=username, role=role, password_hash=NO_PASSWORD)


def create_user(db: Session, username: str, password: str, role: str, *, hash_profile: str) -> User:
    """An account with a password its own user chose: the first admin (``medai users add
    --password-stdin``); everyone else enrols (``invite``)."""
    user = _new_user(db, username, role)
    set_password(user, password, hash_profile=hash_profile)
    db.add(user)
    db.flush()
    return user


def _code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def check_given_code(code: str) -> str:
    """An enrolment code the operator supplies (the first admin's, from a deployment's secret)
    normalised as a typed one is (``normalise_code``): at least ``CODE_LENGTH`` letters and
    digits, as hard to guess as a generated one."""
    clean = normalise_code(code)
    if len(clean) < CODE_LENGTH:
        raise AccountError(
            f"a supplied enrolment code needs at least {CODE_LENGTH} letters and digits "
            f"(spaces, dashes and symbols do not count; got {len(clean)})"
        )
    return clean


def _set_code(user: User, now: datetime, hours: float, code: str | None = None) -> str:
    if not 0 < hours <= MAX_ENROL_HOURS:
        raise AccountError(f"enrol_hours: more than 0, at most {MAX_ENROL_HOURS}")
    code = _code() if code is None else check_given_code(code)
    user.enrol_code_hash = digest(code)
    user.enrol_expires_at = now + timedelta(hours=hours)
    return code


def invite(
    db: Session,
    username: str,
    role: str,
    now: datetime,
    hours: float = ENROL_HOURS,
    code: str | None = None,
) -> tuple[User, str]:
    """A new account without a password and its one-time enrolment code (returned once):
    generated, or ``code`` (``check_given_code``)."""
    user = _new_user(db, username, role)
    code = _set_code(user, now, hours, code)
    db.add(user)
    db.flush()
    return user, code


def get_user(db: Session, username: str) -> User:
    user = db.scalar(select(User).where(User.username == username[:64]))
    if user is None:
        raise NoSuchUser(f"no user {username[:64]!r}")
    return user


def _person(user: User) -> User:
    """``user``, unless it is one of medai's own accounts (``InternalAccount``)."""
    if user.username in INTERNAL:
        raise InternalAccount(
            f"{user.username!r} is medai's own account for studies from the "
            "DICOM node; nobody signs in as it"
        )
    return user


def reset(
    db: Session, username: str, now: datetime, hours: float = ENROL_HOURS
) -> tuple[User, str]:
    """Forget the password, end every session and token, issue a new enrolment code."""
    user = _person(get_user(db, username))
    code = _set_code(user, now, hours)
    user.password_hash = NO_PASSWORD
    user.approved_at = user.approved_by = None  # whoever enrols next is approved anew
    user.history_since = utcnow()  # ... and does not read what the account did before
    revoke_all(db, user)
    return user, code


def enrol(db: Session, code: str, password: str, now: datetime, *, hash_profile: str) -> User:
    """The user behind a valid code sets their password (``WeakPassword`` leaves the code
    usable; success uses it up)."""

    code = normalise_code(code)
    user = db.scalar(select(User).where(User.enrol_code_hash == digest(code))) if code else None
    if (
        user is None
        or not user.active
        or user.enrol_expires_at is None
        or user.enrol_expires_at <= now
    ):
        raise EnrolmentRefused(
            "enrolment code unknown, used or expired; ask an administrator for a new one"
        )
    set_password(user, password, hash_profile=hash_profile)
    return user


def change_role(db: Session, username: str, role: str) -> tuple[User, str]:
    """Move an account to another role within its side (administrative or not); the new
    role applies to the next request. Returns the user and the role before."""
    check_role(role)
    user = _person(get_user(db, username))
    before = user.role
    if (before in ADMIN) != (role in ADMIN):
        raise RoleConflict(
            f"an administrator account cannot hold a clinical or patient role, "
            f"nor the reverse ({before} -> {role}); create a separate account"
        )
    if role != before:  # a new role's patient data needs a new approval (platform.approval)
        user.approved_at = user.approved_by = None
        user.history_since = utcnow()  # and the old role's own history stays behind
    user.role = role
    return user, before


def record_grant(
    db: Session,
    actor: audit.Actor,
    user: User,
    op: str,
    before: str | None,
    role: str,
    outcome: str = "ok",
) -> None:
    """An audit event of action ``role``: ``grant`` (a new account) or ``change``."""
    audit.record(
        db,
        actor,
        "role",
        "user",
        user.id,
        outcome=outcome,
        op=op,
        username=user.username,
        role=role,
        before=before,
    )


def role_grants(db: Session, limit: int = 100, offset: int = 0) -> tuple[list[dict], int]:
    """Role grants, changes and refused changes, and approvals for patient data and refused
    approvals (``op`` "approve"), from the audit log, oldest first."""
    rows, total = audit.query(db, action=("role", "approve"), limit=limit, offset=offset)
    return [
        {
            "at": e.at.isoformat() + "Z",
            "by": e.actor,
            "by_role": e.role,
            "user_id": e.target_id,
            "username": (e.detail or {}).get("username"),
            "op": (e.detail or {}).get("op", ""),
            "role": (e.detail or {}).get("role"),
            "before": (e.detail or {}).get("before"),
            "outcome": e.outcome,
        }
        for e in rows
    ], total


def enrolled(user: User) -> bool:
    return user.password_hash != NO_PASSWORD


def pending(user: User, now: datetime) -> datetime | None:
    """When the user's unused enrolment code expires (None: no valid code)."""
    exp = user.enrol_expires_at
    return exp if user.enrol_code_hash and exp and exp > now else None


def revoke_all(db: Session, user: User) -> None:
    for tok in db.scalars(
        select(Token).where(Token.user_id == user.id, Token.revoked_at.is_(None))
    ):
        tok.revoked_at = utcnow()


def own_since(user: User, created_at: Any) -> ColumnElement[bool]:
    """The condition on a row's ``created_at`` that makes it part of ``user``'s own history:
    made at or after the account's last reset or role change (``history_since``)."""
    return true() if user.history_since is None else created_at >= user.history_since


def _is_working_admin(user: User) -> bool:
    return user.role in ADMIN and user.active and enrolled(user)


def _check_not_last_admin(db: Session, user: User) -> None:
    """Raise ``LastAdmin`` when ``user`` is the only active, enrolled admin. The admin rows
    are locked first (FOR UPDATE; SQLite's write transaction already serialises), so two
    admins disabling each other at once cannot both succeed."""
    if not _is_working_admin(user):
        return
    admins = db.scalars(
        select(User)
        .where(User.role.in_(sorted(ADMIN)), User.active.is_(True))
        .order_by(User.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    if not any(_is_working_admin(a) and a.id != user.id for a in admins):
        raise LastAdmin(
            f"{user.username!r} is the last active administrator; enable or enrol "
            "another admin first"
        )


def set_active(db: Session, username: str, active: bool) -> User:
    user = get_user(db, username)
    if active:
        _person(user)
    else:
        _check_not_last_admin(db, user)
    user.active = active
    if not active:  # a disabled user's sessions and tokens stop at once
        revoke_all(db, user)
    return user


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
    attempt in a transaction of its own first (``api.auth.login``)."""
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
        ok = stored != NO_PASSWORD and user.active
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok:
        raise AuthFailed  # counted already (take_attempt)
    if h.check_needs_rehash(user.password_hash) and not passwords.weaker(h, user.password_hash):
        user.password_hash = h.hash(password)
    return user


def name_key(username: str) -> str:
    """What the throttle stores of a typed user name: its keyed hash (``Cipher.pseudonym``),
    never the text, which may be a password typed into the wrong field."""
    return cipher().pseudonym(username[:64].lower())


def audit_name(db: Session, username: str) -> str:
    """Who a sign-in attempt names, for the audit log: an account's own name, else
    ``unknown:`` and the keyed hash of what was typed (repeats stay recognisable)."""
    if db.scalar(select(User.id).where(User.username == username[:64])) is not None:
        return username[:64]
    return f"unknown:{name_key(username)}"


def _throttle_keys(username: str, client: str) -> list[str]:
    return [f"user:{name_key(username)}", f"client:{client}"]


def take_enrol_attempt(
    db: Session, client: str, max_failures: int, window_s: float
) -> tuple[int, ...] | None:
    """Count an enrolment attempt as a wrong code, atomically with the per-client check
    (the per-client sign-in limit); None when throttled. ``give_back`` when the code was
    right."""
    return take_slots(db, {f"enrol:{client}": max_failures * CLIENT_FACTOR}, window_s)


def digest(raw: str) -> str:
    """What is stored of a secret (session, token, kiosk credential): its sha256. The secrets
    are 256-bit random, so a plain hash is enough (no password stretching needed)."""
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class Issued:
    token: str
    csrf: str | None
    expires_in_s: int


def new_signin() -> str:
    """The id shared by the credentials one sign-in issues (its session and its bearer
    token), so that signing out ends them all."""
    return secrets.token_hex(16)


def issue(
    db: Session,
    user: User,
    kind: str,
    lifetime: timedelta,
    name: str | None = None,
    signin: str | None = None,
) -> Issued:
    """A new session (with its CSRF secret) or bearer token; only hashes are stored."""
    raw = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24) if kind == "session" else None
    db.add(
        Token(
            user_id=user.id,
            token_hash=digest(raw),
            kind=kind,
            name=name,
            csrf_hash=digest(csrf) if csrf else None,
            signin=signin,
            expires_at=utcnow() + lifetime,
        )
    )
    return Issued(raw, csrf, int(lifetime.total_seconds()))


def resolve(db: Session, raw: str, kind: str | None = None) -> tuple[User, Token] | None:
    # one query for the credential and its user: every authenticated request runs it
    row = db.execute(
        select(Token, User)
        .join(User, User.id == Token.user_id)
        .where(Token.token_hash == digest(raw[:256]))
    ).first()
    if row is None:
        return None
    tok, user = row
    if tok.revoked_at is not None or tok.expires_at <= utcnow():
        return None
    if kind is not None and tok.kind != kind:
        return None
    if not user.active:
        return None
    return user, tok


def csrf_ok(tok: Token, presented: str | None) -> bool:
    return bool(
        tok.csrf_hash
        and presented
        and secrets.compare_digest(tok.csrf_hash, digest(presented[:256]))
    )


def revoke(db: Session, tok: Token) -> None:
    if tok.revoked_at is None:
        tok.revoked_at = utcnow()


def sign_out(db: Session, tok: Token) -> int:
    """Revoke this credential and every other one of the same sign-in (the session cookie
    and the bearer token a password login returns together); named tokens made with
    ``POST /auth/tokens`` are not part of a sign-in and stay. Returns how many ended."""
    ended = [tok]
    if tok.signin is not None:
        ended += db.scalars(
            select(Token).where(
                Token.signin == tok.signin, Token.user_id == tok.user_id, Token.id != tok.id
            )
        ).all()
    live = [t for t in ended if t.revoked_at is None]
    for t in live:
        revoke(db, t)
    return len(live)


# Use cases: what an admin (API or CLI) does to an account, validated, written and audited in
# the caller's transaction. The faces keep their I/O, status codes and throttles.


def create_account(
    db: Session,
    username: str,
    role: str,
    actor: audit.Actor,
    now: datetime,
    *,
    password: str | None = None,
    hash_profile: str | None = None,
    enrol_hours: float = ENROL_HOURS,
    code: str | None = None,
    full_name: str | None = None,
    title: str | None = None,
) -> tuple[User, str | None]:
    """A new account (``full_name`` and ``title``: ``check_profile``): with a one-time enrolment code (returned; ``code``: the operator's own,
    for an admin role only: a deployment's first-admin secret, spent at the first sign-in), or,
    for an admin role only, with the ``password`` its own user chose (the first admin at the
    console; hashed under ``hash_profile``, the configured ``MEDAI_PASSWORD_HASH``). Audited as
    ``admin`` op=create and as the role's grant."""
    if code is not None and check_role(role) not in ADMIN:
        raise PasswordNotAllowed(f"a {role}'s enrolment code is made by medai, not supplied")
    full_name, title = check_profile(full_name, title)
    if password is not None:
        if check_role(role) not in ADMIN:
            raise PasswordNotAllowed(
                f"a {role}'s password is chosen by its user: give them an enrolment code"
            )
        if hash_profile is None:
            raise TypeError("create_account: a password needs its hash_profile")
        user = create_user(db, username, password, role, hash_profile=hash_profile)
        code = None
    else:
        user, code = invite(db, username, role, now, enrol_hours, code)
    user.full_name, user.title = full_name, title
    audit.record(db, actor, "admin", "user", user.id, op="create", role=role)
    record_grant(db, actor, user, "grant", None, role)
    return user, code


def reset_account(
    db: Session, username: str, actor: audit.Actor, now: datetime, hours: float = ENROL_HOURS
) -> tuple[User, str]:
    """``reset``, audited (``admin`` op=reset); returns the user and the new code."""
    user, code = reset(db, username, now, hours)
    audit.record(db, actor, "admin", "user", user.id, op="reset")
    return user, code


def assign_role(db: Session, username: str, role: str, actor: audit.Actor) -> tuple[User, str]:
    """``change_role``, audited as a role change when the role changed. A ``RoleConflict``
    rolls the caller's transaction back: record it with ``record_role_refusal`` in a new one."""
    user, before = change_role(db, username, role)
    if before != role:
        record_grant(db, actor, user, "change", before, role)
    return user, before


def record_role_refusal(db: Session, username: str, role: str, actor: audit.Actor) -> None:
    """The audit event of a refused role change (``role_conflict``)."""
    user = get_user(db, username)
    record_grant(db, actor, user, "change", user.role, role, "denied")


def set_account_active(db: Session, username: str, active: bool, actor: audit.Actor) -> User:
    """``set_active``, audited (``admin`` op=enable or op=disable)."""
    user = set_active(db, username, active)
    audit.record(db, actor, "admin", "user", user.id, op="enable" if active else "disable")
    return user


def set_profile(
    db: Session,
    username: str,
    full_name: str | None,
    title: str | None,
    actor: audit.Actor,
) -> User:
    """Set an account's full name and title (``check_profile``), audited as ``profile`` with
    the fields that changed (never their values). Who may: the account's own user, or an
    admin (the faces check that)."""
    user = _person(get_user(db, username))
    name, title = check_profile(full_name, title)
    changed = [
        f
        for f, old, new in (("full_name", user.full_name, name), ("title", user.title, title))
        if old != new
    ]
    user.full_name, user.title = name, title
    if changed:
        audit.record(db, actor, "profile", "user", user.id, username=user.username, fields=changed)
    return user


def enrol_account(
    db: Session,
    code: str,
    password: str,
    now: datetime,
    client: str | None = None,
    *,
    hash_profile: str,
) -> User:
    """``enrol``, audited as the user's own ``login`` op=enrol (from ``client``)."""
    user = enrol(db, code, password, now, hash_profile=hash_profile)
    audit.record(
        db,
        audit.Actor(user.username, user.id, user.role, client),
        "login",
        "user",
        user.id,
        op="enrol",
    )
    return user


def internal_account(db: Session, username: str = DICOM_ACCOUNT) -> User:
    """One of medai's own accounts (``INTERNAL``: what DICOM-received studies are filed
    under), made on first use: inactive, without a password, so nobody can sign in as it."""
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(username=username, role="clinician", password_hash=NO_PASSWORD, active=False)
        db.add(user)
        db.flush()
    return user
