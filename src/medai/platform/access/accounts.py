"""Accounts: users created, enrolled, reset, given a role or a profile, disabled and enabled
(the account use cases the API and the CLI share).

Who may do what is ``roles.PERMISSIONS``, the one table of access rules; the API, the CLI and
the tests read it. Admins manage users, models and the audit log but read no patient data
(least privilege); patients use triage and see only their own history. An account is
administrative or not for its whole life (``role_conflict``), so an admin never holds a clinical
role. Passwords are checked in ``credentials``, tokens issued in ``tokens``, and what an account
change refuses is named in ``account_errors``.

Nobody sets another person's password: an admin creates an account (or resets one) and is shown
a one-time enrolment code, stored only as its sha256, that expires; the user exchanges it for a
password they choose (``enrol``), checked by ``passwords.check`` like every password.

**A reset or a role change starts the account's own history anew** (``history_since``): the
admin who resets an account sees its new enrolment code, so whoever enrols with it must not
inherit what the person before them did. The account's own triage history and its
conversations list only rows made at or after ``users.history_since`` (``own_since``); nothing
is deleted, and clinicians still reach a triage by its record number (``triage_outcome``).

**Failed sign-ins are counted before the password is checked** (``credentials.take_attempt``):
the attempt's failure rows are inserted under a lock on their keys, and removed again when the
password was right (``credentials.settle``), so concurrent attempts meet the limit exactly as
serial ones do. A user name that names no account (often a password typed into the wrong
field) is counted and audited only as a keyed hash (``credentials.name_key``, ``audit_name``).

**The last active, enrolled admin cannot be disabled** (``LastAdmin``, 409 ``last_admin``):
nobody could then manage users from the API; a reset stays possible (it returns a new code).
"""

from __future__ import annotations

import secrets
import unicodedata
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from medai.platform.access import audit, passwords
from medai.platform.access.account_errors import (
    AccountError,
    AccountExists,
    EnrolmentRefused,
    InternalAccount,
    LastAdmin,
    NoSuchUser,
    PasswordNotAllowed,
    RoleConflict,
    WeakPassword,
)
from medai.platform.access.credentials import NO_PASSWORD, _hasher, name_key
from medai.platform.access.roles import ADMIN, check_role
from medai.platform.access.tokens import digest
from medai.platform.records.db import utcnow
from medai.platform.records.tables import Token, User

ENROL_HOURS = 72  # how long a new account's (or a reset's) enrolment code is valid by default


MAX_ENROL_HOURS = 14 * 24


# enrolment codes are typed by hand (kiosk codes on a touch screen): no 0/O, 1/I/L
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


CODE_LENGTH = 12  # of CODE_ALPHABET (31 symbols): about 59 bits


DICOM_ACCOUNT = "medai-dicom"  # what studies from the DICOM node are filed under (inactive)


INTERNAL = frozenset({DICOM_ACCOUNT})


def normalise_code(code: str) -> str:
    """What the user typed, without spaces or dashes, upper case (codes are shown grouped)."""
    return "".join(c for c in code.upper() if c.isalnum())[:64]


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
    if role != before:  # a new role's patient data needs a new approval (platform.access.approval)
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


def audit_name(db: Session, username: str) -> str:
    """Who a sign-in attempt names, for the audit log: an account's own name, else
    ``unknown:`` and the keyed hash of what was typed (repeats stay recognisable)."""
    if db.scalar(select(User.id).where(User.username == username[:64])) is not None:
        return username[:64]
    return f"unknown:{name_key(username)}"


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
