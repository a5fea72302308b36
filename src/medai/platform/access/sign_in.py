"""Signing in, one service per way: a password (``login``), a user's one-time enrolment code
(``enrol``) and a kiosk's (``enrol_kiosk``). The API's routes call these and keep only the
HTTP (the body, the cookies); the rules are here, alike for each way:

- the attempt is counted as failed against the throttle before it is tried, atomically with
  the throttle's check and in its own transaction, and un-counted when it was right: requests
  at once never pass the limit between them (``credentials.take_attempt``,
  ``take_enrol_attempt``);
- a throttled or failed attempt is audited in its own transaction once the attempt is
  counted, so the refusal is on record whatever the request does next.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from medai.core.errors import MedaiError
from medai.platform.access import account_errors, accounts, audit, credentials, kiosks, tokens
from medai.platform.context import Platform
from medai.platform.records.tables import User


class EnrolThrottled(MedaiError, Exception):
    """Too many wrong enrolment codes from this client within the window (429, with
    ``Retry-After``: the window)."""

    status, code = 429, "throttled"

    def __init__(self, message: str, window_s: float) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(int(window_s))}


@dataclass(frozen=True)
class SignedIn:
    """A password sign-in's two credentials (one sign-in: signing out ends both) and the
    user's role."""

    bearer: tokens.Issued
    session: tokens.Issued
    role: str


@dataclass(frozen=True)
class KioskEnrolled:
    """A kiosk browser's enrolment: its secret (the cookie) and what the kiosk sees of
    itself (``KioskSelf``)."""

    secret: str
    name: str
    daily_quota: int
    used_today: int
    resets_in_s: int


def login(p: Platform, username: str, password: str, client: str) -> SignedIn:
    """Password sign-in (``credentials.verify``): a bearer token and a browser session, the
    session's lifetime ``MEDAI_SESSION_HOURS``. A wrong name or password is ``AuthFailed``
    (401), too many failures ``Throttled`` (429), each audited under the name given
    (``accounts.audit_name``)."""
    auth = p.settings.auth
    try:
        with p.db.session() as db:
            attempt = credentials.take_attempt(
                db, username, client, auth.login_max_failures, auth.login_window_s
            )
        with p.db.session() as db:
            user = credentials.verify(db, username, password, hash_profile=auth.password_hash)
            credentials.settle(db, attempt)
            session_life = timedelta(hours=auth.session_hours)
            signin = tokens.new_signin()  # logout ends both credentials together
            bearer = tokens.issue(db, user, "bearer", session_life, name="login", signin=signin)
            session = tokens.issue(db, user, "session", session_life, signin=signin)
            audit.record(
                db, audit.Actor(user.username, user.id, user.role, client), "login", "user", user.id
            )
            return SignedIn(bearer, session, user.role)
    except credentials.Throttled:
        _failed_login(p, username, client, "throttled")
        raise
    except credentials.AuthFailed:
        _failed_login(p, username, client, "failed")
        raise


def _failed_login(p: Platform, username: str, client: str, outcome: str) -> None:
    """Audit a refused sign-in under the name it gave: an account's name, else only the keyed
    hash of what was typed (``accounts.audit_name``)."""
    with p.db.session() as db:
        audit.record(
            db,
            audit.Actor(accounts.audit_name(db, username), client=client),
            "login",
            "user",
            None,
            outcome=outcome,
        )


def enrol(p: Platform, code: str, password: str, client: str) -> User:
    """A user chooses their password with the one-time code an administrator gave them
    (``accounts.enrol_account``); the code is then used up. A wrong code stays counted
    (``EnrolmentRefused``, audited); a right code with a weak password
    (``account_errors.AccountError``) is no wrong code: un-counted, the code still valid."""
    auth = p.settings.auth
    now = p.clock()
    with p.db.session() as db:
        taken = credentials.take_enrol_attempt(
            db, client, auth.login_max_failures, auth.login_window_s
        )
        if taken is None:
            _enrol_refused(db, "enrol", "user", client, "throttled", op="enrol")
    if taken is None:  # raised after the audit event is committed
        raise EnrolThrottled("too many wrong enrolment codes; try again later", auth.login_window_s)
    try:
        with p.db.session() as db:
            user = accounts.enrol_account(
                db, code, password, now, client, hash_profile=auth.password_hash
            )
            credentials.give_back(db, taken)
            return user
    except account_errors.EnrolmentRefused:
        with p.db.session() as db:  # the attempt stays counted
            _enrol_refused(db, "enrol", "user", client, "failed", op="enrol")
        raise
    except account_errors.AccountError:
        with p.db.session() as db:  # a right code with a weak password is no wrong code
            credentials.give_back(db, taken)
        raise


def enrol_kiosk(p: Platform, code: str, client: str) -> KioskEnrolled:
    """A kiosk browser exchanges its one-time enrolment code for the kiosk's secret
    (``kiosks.enrol``; the code then stops working), throttled per client like a user's
    code: a wrong one stays counted (``kiosks.KioskError``, audited)."""
    settings = p.settings
    window_s, zone = settings.auth.login_window_s, settings.general.timezone
    now = p.clock()
    with p.db.session() as db:
        taken = kiosks.take_enrol_attempt(
            db, client, now, settings.auth.login_max_failures, window_s
        )
        if taken is None:
            _enrol_refused(db, "kiosk-enrol", "kiosk", client, "throttled")
    if taken is None:  # raised after the audit event is committed
        raise EnrolThrottled("too many wrong enrolment codes; try later", window_s)
    try:
        with p.db.session() as db:
            kiosk, secret = kiosks.enrol(db, code, now)
            credentials.give_back(db, taken)
            audit.record(
                db,
                audit.Actor(f"kiosk:{kiosk.name}"[:64], client=client),
                "login",
                "kiosk",
                kiosk.id,
                op="enrol",
            )
            used = kiosks.used_today(db, [kiosk.id], now, zone)[kiosk.id]
            _, reset_in = kiosks.day_window(now, zone)
            return KioskEnrolled(secret, kiosk.name, kiosk.daily_quota, used, reset_in)
    except kiosks.KioskError:
        with p.db.session() as db:  # the attempt stays counted
            _enrol_refused(db, "kiosk-enrol", "kiosk", client, "failed")
        raise


def _enrol_refused(db, name: str, target: str, client: str, outcome: str, **detail) -> None:
    audit.record(
        db, audit.Actor(name, client=client), "login", target, None, outcome=outcome, **detail
    )
