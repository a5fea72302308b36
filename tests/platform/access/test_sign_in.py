"""The sign-in services (``access.sign_in``) without a server: what a password sign-in issues,
what a wrong one and a throttled one leave in the audit log, and a user's enrolment code,
right, wrong and throttled. The HTTP answers (cookies, status codes) are in
test_platform_access and test_hostile_accounts; the kiosk's in test_kiosk."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from helpers.platform import PASSWORD, bare_platform
from medai.platform.access import account_errors, accounts, audit, credentials, sign_in
from medai.platform.records.tables import AuditEvent

NEW_PASSWORD = "a-long-new-passphrase-77"


@pytest.fixture
def p(tmp_path, tfidf_model_dir, tiny_imaging_dir):
    with bare_platform("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as p:
        yield p


def _logins(p) -> list[tuple[str, str]]:
    with p.db.reader() as db:
        return [
            (e.actor, e.outcome)
            for e in db.scalars(
                select(AuditEvent).where(AuditEvent.action == "login").order_by(AuditEvent.id)
            )
        ]


def test_a_password_sign_in_issues_one_sign_in_of_two_credentials(p):
    signed = sign_in.login(p, "rad", PASSWORD, "10.0.0.1")
    assert signed.role == "radiologist"
    assert signed.bearer.csrf is None and signed.session.csrf
    assert signed.bearer.token != signed.session.token
    assert _logins(p) == [("rad", "ok")]


def test_wrong_passwords_are_audited_then_throttled(p):
    limit = p.settings.auth.login_max_failures
    for _ in range(limit):
        with pytest.raises(credentials.AuthFailed):
            sign_in.login(p, "rad", "wrong-password-1", "10.0.0.2")
    with pytest.raises(credentials.Throttled) as throttled:
        sign_in.login(p, "rad", PASSWORD, "10.0.0.2")  # the right one too, once throttled
    assert throttled.value.headers["Retry-After"]
    assert _logins(p) == [("rad", "failed")] * limit + [("rad", "throttled")]


def test_an_unknown_name_is_audited_by_its_keyed_hash_only(p):
    with pytest.raises(credentials.AuthFailed):
        sign_in.login(p, "nobody-here", "whatever-1", "10.0.0.3")
    ((actor, outcome),) = _logins(p)
    assert outcome == "failed" and actor.startswith("unknown:") and "nobody" not in actor


def _invite(p, username: str) -> str:
    with p.db.session() as db:
        _user, code = accounts.create_account(
            db, username, "clinician", audit.Actor("admin"), p.clock()
        )
    return code


def test_an_enrolment_code_sets_the_password_once(p):
    code = _invite(p, "clin9")
    user = sign_in.enrol(p, code, NEW_PASSWORD, "10.0.0.4")
    assert (user.username, user.role) == ("clin9", "clinician")
    with pytest.raises(account_errors.EnrolmentRefused):  # used up
        sign_in.enrol(p, code, NEW_PASSWORD, "10.0.0.4")
    assert sign_in.login(p, "clin9", NEW_PASSWORD, "10.0.0.4").role == "clinician"


def test_a_weak_password_leaves_the_code_valid_and_uncounted(p):
    code = _invite(p, "clin8")
    for _ in range(p.settings.auth.login_max_failures + 1):  # never throttled: no wrong code
        with pytest.raises(account_errors.WeakPassword):
            sign_in.enrol(p, code, "clin8", "10.0.0.5")
    assert sign_in.enrol(p, code, NEW_PASSWORD, "10.0.0.5").username == "clin8"


def test_wrong_codes_are_audited_then_throttled_with_the_window(p):
    limit = p.settings.auth.login_max_failures * credentials.CLIENT_FACTOR  # per client
    for _ in range(limit):
        with pytest.raises(account_errors.EnrolmentRefused):
            sign_in.enrol(p, "WRONGCODE1", NEW_PASSWORD, "10.0.0.6")
    with pytest.raises(sign_in.EnrolThrottled) as throttled:
        sign_in.enrol(p, "WRONGCODE1", NEW_PASSWORD, "10.0.0.6")
    exc = throttled.value
    assert (exc.status, exc.code) == (429, "throttled")
    assert exc.headers == {"Retry-After": str(int(p.settings.auth.login_window_s))}
    assert _logins(p) == [("enrol", "failed")] * limit + [("enrol", "throttled")]
