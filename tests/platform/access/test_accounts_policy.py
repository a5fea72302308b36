"""Accounts as hospitals run them: the password policy (NIST SP 800-63B, zxcvbn) on every path
that sets a password; admins never set or see a password (one-time enrolment codes, stored as
digests, expiring, single use; resets revoke every credential); an admin account never holds a
clinical role, and role grants are audited and listed; signing out ends every credential of
that sign-in. On SQLite and PostgreSQL where the database matters."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from helpers.platform import PASSWORD, FakeClock, bearer, clinic, database_url, migrator, use_home

PROFILE = "insecure-fast"  # the suite's password hashing (MEDAI_PASSWORD_HASH in conftest)

GOOD = "kestane-kebap-ilkbahar"


@pytest.fixture(params=["sqlite", "postgresql"])
def env(request, tmp_path, tfidf_model_dir, tiny_imaging_dir):
    with clinic(request.param, tmp_path / request.param, tfidf_model_dir, tiny_imaging_dir) as (
        app,
        client,
    ):
        clock = FakeClock(datetime(2026, 3, 10, 9, 0))
        app.state.platform.clock = clock
        admin = bearer(client, "admin")
        client.cookies.clear()  # each request below carries only the headers it names
        yield app, client, admin, clock


def invite(client, admin, name: str, role: str = "clinician") -> dict:
    r = client.post("/api/v1/users", headers=admin, json={"username": name, "role": role})
    assert r.status_code == 201, r.text
    return r.json()


def login(client, name: str, password: str):
    return client.post("/api/v1/auth/login", json={"username": name, "password": password})


def enrol(client, code: str, password: str):
    return client.post("/api/v1/auth/enrol", json={"code": code, "password": password})


# --- the policy itself


@pytest.mark.parametrize(
    ("password", "username", "reason"),
    [
        ("12345678", "boss", "common"),
        ("password", "boss", "common"),
        ("        ", "boss", "guessable"),  # eight spaces
        ("dr.ayse.yilmaz", "dr.ayse.yilmaz", "contains_username"),  # the user's own name
        ("Dr.Ayse.Yilmaz1", "dr.ayse.yilmaz", "contains_username"),
        ("galatasaray1905", "boss", "common"),  # Turkish common words count too
        ("medai2024!", "boss", "context"),  # the service's own name
        ("xK9#mQ2v", "boss", "guessable"),  # 8 random characters: fewer than 10^8 guesses
        ("short", "boss", "too_short"),
        ("k" * 1025, "boss", "too_long"),
    ],
)
def test_the_policy_refuses_weak_passwords_and_says_why(password, username, reason):
    from medai.platform.access.passwords import REASONS, check

    verdict = check(password, username)
    assert not verdict.ok and verdict.reason == reason
    assert verdict.message == REASONS[reason]


def test_the_policy_accepts_passphrases_long_ones_and_any_characters():
    from medai.platform.access.passwords import check

    for password in (
        PASSWORD,
        GOOD,
        "ilkbahar yağmuru 🌧 sokakta",
        "xK9#mQ2vLp",
        "uzun bir cümle " * 4 + "ve sonu",  # 64+ characters
        "Zq4!" + "".join(chr(0x61 + (i * 7) % 26) for i in range(1020)),
    ):
        assert check(password, "dr.ayse").ok, password
    assert len("uzun bir cümle " * 4 + "ve sonu") >= 64


def test_the_library_refuses_a_weak_password_for_every_role(tmp_path):
    """Today's code accepted ``12345678`` for an admin (length was the only rule)."""
    from medai.platform.access import account_errors, accounts, roles
    from medai.platform.records.db import Database

    use_home(tmp_path)
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    db.upgrade()
    for role in roles.ROLES:
        with pytest.raises(account_errors.WeakPassword) as caught, db.session() as s:
            accounts.create_user(s, f"u_{role}", "12345678", role, hash_profile=PROFILE)
        assert caught.value.code == "weak_password" and caught.value.verdict.reason == "common"
    db.dispose()


def test_no_permission_is_shared_by_admins_and_clinical_roles():
    """Least privilege, in the table itself: an admin does nothing a clinician does, save the
    triage everyone may use."""
    from medai.platform.access.roles import ADMIN, CLINICAL, PERMISSIONS

    shared = {a for a, roles in PERMISSIONS.items() if roles & ADMIN and roles & CLINICAL}
    assert shared == {"triage", "triage_history"}


# --- enrolment: the user chooses the password


def test_an_admin_cannot_set_a_password_and_the_user_enrols_with_a_one_time_code(env):
    app, client, admin, _ = env
    refused = client.post(
        "/api/v1/users",
        headers=admin,
        json={"username": "spy", "password": PASSWORD, "role": "clinician"},
    )
    assert refused.status_code == 422  # there is no password to set
    made = invite(client, admin, "dr.ayse", "radiologist")
    code = made["enrol_code"]
    assert made["enrolled"] is False and made["enrol_code_expires_at"].startswith("2026-03-13")
    assert login(client, "dr.ayse", PASSWORD).status_code == 401  # no password yet
    with app.state.platform.db.session() as db:  # only the digest is stored
        row = db.execute(
            text("SELECT password_hash, enrol_code_hash FROM users WHERE username = 'dr.ayse'")
        ).one()
        dump = " ".join(str(v) for r in db.execute(text("SELECT * FROM users")).all() for v in r)
    assert row == ("", hashlib.sha256(code.encode()).hexdigest()) and code not in dump

    weak = enrol(client, code, "12345678")
    assert weak.status_code == 422 and weak.json()["code"] == "weak_password"
    assert weak.json()["errors"][0]["type"] == "common"
    assert "common" in weak.json()["detail"]
    own = enrol(client, code.lower()[:4] + "-" + code[4:], "dr.ayse-1234")  # typed grouped
    assert own.status_code == 422 and own.json()["errors"][0]["type"] == "contains_username"

    done = enrol(client, code, GOOD)  # the weak tries left the code valid
    assert done.status_code == 200 and done.json() == {"username": "dr.ayse", "role": "radiologist"}
    again = enrol(client, code, GOOD + "x")  # single use
    assert again.status_code == 404 and again.json()["code"] == "enrol_code_invalid"
    me = login(client, "dr.ayse", GOOD)
    assert me.status_code == 200 and me.json()["role"] == "radiologist"
    listed = {u["username"]: u for u in client.get("/api/v1/users", headers=admin).json()}
    assert listed["dr.ayse"]["enrolled"] and listed["dr.ayse"]["enrol_code_expires_at"] is None


def test_an_enrolment_code_expires(env):
    _, client, admin, clock = env
    code = invite(client, admin, "late")["enrol_code"]
    clock.at += timedelta(hours=72, seconds=1)
    r = enrol(client, code, GOOD)
    assert r.status_code == 404 and r.json()["code"] == "enrol_code_invalid"
    listed = {u["username"]: u for u in client.get("/api/v1/users", headers=admin).json()}
    assert listed["late"]["enrol_code_expires_at"] is None and not listed["late"]["enrolled"]


def test_wrong_enrolment_codes_are_throttled(env, monkeypatch):
    app, client, _, _ = env
    from medai.settings import Settings

    # the platform's settings, as with MEDAI_LOGIN_MAX_FAILURES=1: 10 per client
    monkeypatch.setattr(app.state.platform, "settings", Settings(login_max_failures=1))
    for _ in range(10):
        assert enrol(client, "NOSUCHCODE", GOOD).status_code == 404
    r = enrol(client, "NOSUCHCODE", GOOD)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


def test_a_reset_ends_every_credential_and_issues_a_new_code(env):
    _, client, admin, _ = env
    signed = login(client, "clin", PASSWORD)
    session = client.cookies.get("medai_session")
    client.cookies.clear()
    machine = client.post(
        "/api/v1/auth/tokens",
        json={"name": "pacs"},
        headers={"Authorization": f"Bearer {signed.json()['access_token']}"},
    ).json()["token"]
    r = client.post("/api/v1/users/clin/reset", headers=admin)
    assert r.status_code == 200 and r.json()["enrolled"] is False
    for headers in (
        {"Authorization": f"Bearer {signed.json()['access_token']}"},
        {"Authorization": f"Bearer {machine}"},
        {"Cookie": f"medai_session={session}"},
    ):
        assert client.get("/api/v1/auth/me", headers=headers).status_code == 401
    assert login(client, "clin", PASSWORD).status_code == 401  # the old password is gone
    assert enrol(client, r.json()["enrol_code"], GOOD).status_code == 200
    assert login(client, "clin", GOOD).status_code == 200
    assert client.post("/api/v1/users/nobody/reset", headers=admin).status_code == 404


# --- roles


def test_an_admin_account_never_holds_a_clinical_role_and_grants_are_listed(env):
    _, client, admin, _ = env
    assert client.get("/api/v1/studies", headers=admin).status_code == 403
    for name, role in (
        ("admin", "clinician"),
        ("admin", "radiologist"),
        ("rad1", "admin"),
        ("pat1", "admin"),
    ):
        r = client.patch(f"/api/v1/users/{name}", headers=admin, json={"role": role})
        assert r.status_code == 422 and r.json()["code"] == "role_conflict", (name, role)
    assert client.get("/api/v1/auth/me", headers=admin).json()["role"] == "admin"
    ok = client.patch("/api/v1/users/clin", headers=admin, json={"role": "radiologist"})
    assert ok.status_code == 200 and ok.json()["role"] == "radiologist"
    invite(client, admin, "dr.can", "clinician")

    grants = client.get("/api/v1/audit/role-grants", headers=admin).json()
    seen = [
        (g["username"], g["op"], g["before"], g["role"], g["outcome"], g["by"])
        for g in grants["items"]
    ]
    assert seen == [
        ("admin", "change", "admin", "clinician", "denied", "admin"),
        ("admin", "change", "admin", "radiologist", "denied", "admin"),
        ("rad1", "change", "radiologist", "admin", "denied", "admin"),
        ("pat1", "change", "patient", "admin", "denied", "admin"),
        ("clin", "change", "clinician", "radiologist", "ok", "admin"),
        ("dr.can", "grant", None, "clinician", "ok", "admin"),
    ]
    assert grants["total"] == 6
    rad = bearer(client, "rad1")
    assert client.get("/api/v1/audit/role-grants", headers=rad).status_code == 403


# --- signing out


def test_logout_ends_the_session_and_the_bearer_token_of_that_sign_in(env):
    """Today's code revoked only the credential presented: the bearer token of the same
    sign-in stayed valid for 12 hours."""
    _, client, _, _ = env
    first = login(client, "rad1", PASSWORD)
    bearer_1 = {"Authorization": f"Bearer {first.json()['access_token']}"}
    session_1 = client.cookies.get("medai_session")
    named = client.post(
        "/api/v1/auth/tokens", headers=bearer_1, json={"name": "pacs-bridge"}
    ).json()["token"]
    client.cookies.clear()
    other = login(client, "rad1", PASSWORD)  # a second sign-in, e.g. another workstation
    client.cookies.clear()

    out = client.post(
        "/api/v1/auth/logout",
        headers={
            "Cookie": f"medai_session={session_1}",
            "X-CSRF-Token": first.json()["csrf_token"],
        },
    )
    assert out.status_code == 200
    assert client.get("/api/v1/auth/me", headers=bearer_1).status_code == 401
    assert (
        client.get("/api/v1/auth/me", headers={"Cookie": f"medai_session={session_1}"}).status_code
        == 401
    )
    assert (
        client.get(
            "/api/v1/auth/me",
            headers={  # another sign-in is untouched
                "Authorization": f"Bearer {other.json()['access_token']}"
            },
        ).status_code
        == 200
    )
    assert (
        client.get(
            "/api/v1/auth/me",
            headers={  # a named machine token is its own thing
                "Authorization": f"Bearer {named}"
            },
        ).status_code
        == 200
    )

    second = login(client, "rad1", PASSWORD)  # and the other way round
    session_2 = client.cookies.get("medai_session")
    client.cookies.clear()
    assert (
        client.post(
            "/api/v1/auth/logout",
            headers={"Authorization": f"Bearer {second.json()['access_token']}"},
        ).status_code
        == 200
    )
    assert (
        client.get("/api/v1/auth/me", headers={"Cookie": f"medai_session={session_2}"}).status_code
        == 401
    )


# --- the CLI


def _cli(env: dict, *args: str, stdin: str = ""):
    return subprocess.run(
        [sys.executable, "-m", "medai.cli", *args],
        input=stdin,
        text=True,
        capture_output=True,
        env=env,
        timeout=120,
    )


@pytest.mark.slow  # a CLI process per step (~1 s each)
def test_users_cli_applies_the_same_rules(tmp_path):
    env = {**os.environ, "MEDAI_HOME": str(tmp_path)}
    weak = _cli(
        env,
        "users",
        "add",
        "boss",
        "--role",
        "admin",
        "--password-stdin",
        "--json",
        stdin="12345678\n",
    )
    assert weak.returncode == 2
    assert json.loads(weak.stdout)["code"] == "weak_password"
    assert json.loads(weak.stdout)["reason"] == "common"
    assert (
        _cli(
            env, "users", "add", "boss", "--role", "admin", "--password-stdin", stdin=GOOD + "\n"
        ).returncode
        == 0
    )
    set_for_other = _cli(
        env,
        "users",
        "add",
        "dr.x",
        "--role",
        "clinician",
        "--password-stdin",
        "--json",
        stdin=GOOD + "\n",
    )
    assert set_for_other.returncode == 2 and "enrolment code" in set_for_other.stdout

    made = json.loads(_cli(env, "users", "add", "dr.x", "--role", "clinician", "--json").stdout)
    assert made["role"] == "clinician" and len(made["enrol_code"]) == 12
    weak = _cli(
        env,
        "users",
        "enrol",
        made["enrol_code"],
        "--password-stdin",
        "--json",
        stdin="dr.x-dr.x-dr.x\n",
    )
    assert weak.returncode == 2 and json.loads(weak.stdout)["reason"] == "contains_username"
    assert (
        _cli(
            env, "users", "enrol", made["enrol_code"], "--password-stdin", stdin=GOOD + "\n"
        ).returncode
        == 0
    )
    assert (
        _cli(
            env, "users", "enrol", made["enrol_code"], "--password-stdin", stdin=GOOD + "\n"
        ).returncode
        == 2
    )  # used up

    conflict = _cli(env, "users", "role", "boss", "radiologist", "--json")
    assert conflict.returncode == 2 and json.loads(conflict.stdout)["code"] == "role_conflict"
    assert _cli(env, "users", "role", "dr.x", "radiologist").returncode == 0
    reset = json.loads(_cli(env, "users", "reset", "dr.x", "--json").stdout)
    assert reset["enrol_code"] != made["enrol_code"]
    users = json.loads(_cli(env, "users", "list", "--json").stdout)["users"]
    assert [(u["username"], u["role"], u["enrolled"]) for u in users] == [
        ("boss", "admin", True),
        ("dr.x", "radiologist", False),
    ]
    grants = json.loads(_cli(env, "users", "grants", "--json").stdout)["grants"]
    assert [(g["username"], g["op"], g["role"], g["outcome"]) for g in grants] == [
        ("boss", "grant", "admin", "ok"),
        ("dr.x", "grant", "clinician", "ok"),
        ("boss", "change", "radiologist", "denied"),
        ("dr.x", "change", "radiologist", "ok"),
    ]


# --- the migration


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_migration_keeps_existing_users_and_tokens(kind, tmp_path):
    from alembic import command

    from medai.platform.access import accounts, credentials, tokens
    from medai.platform.records.db import Database, make_engine

    use_home(tmp_path)
    with database_url(kind, tmp_path) as url:
        engine = make_engine(url)
        migrate = migrator(engine)

        migrate(command.upgrade, "0002")
        hashed = credentials._hasher(PROFILE).hash(PASSWORD)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (username, password_hash, role, active, "
                    "created_at) VALUES ('old', :h, 'clinician', true, :t)"
                ),
                {"h": hashed, "t": datetime(2026, 1, 1)},
            )
            conn.execute(
                text(
                    "INSERT INTO tokens (user_id, token_hash, kind, created_at, "
                    "expires_at) VALUES (1, :d, 'bearer', :t, :e)"
                ),
                {
                    "d": tokens.digest("raw-token"),
                    "t": datetime(2026, 1, 1),
                    "e": datetime(2099, 1, 1),
                },
            )
        migrate(command.upgrade, "head")
        db = Database(url)
        with db.session() as s:
            who = credentials.authenticate(s, "old", PASSWORD, "c", 5, 60, hash_profile=PROFILE)
            assert who.username == "old"
            assert tokens.resolve(s, "raw-token") is not None
            accounts.invite(s, "new", "radiologist", datetime(2026, 1, 2))
        migrate(command.downgrade, "0002")  # a pending account matches no password there
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT username, password_hash FROM users ORDER BY id")).all()
        assert rows == [("old", hashed), ("new", "")]
        migrate(command.upgrade, "head")
        db.dispose()
        engine.dispose()
