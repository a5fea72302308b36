"""The two-person rule (issue 24 item 4): an admin could create a clinician, enrol it with the
code they were shown, sign in as it and read studies. A clinical account made (or reset, or
re-roled) by an admin now reads no patient data until a radiologist or the server's shell
approves it; approvals and refusals are audited and listed with the role grants."""

from __future__ import annotations

import json
import os

import pytest
from sqlalchemy import text

from helpers.platform import PASSWORD, bearer, clinic, database_url, migrator, use_home, users_cli


@pytest.fixture(params=["sqlite", "postgresql"])
def env(request, tmp_path, tfidf_model_dir, tiny_imaging_dir):
    with clinic(request.param, tmp_path / request.param, tfidf_model_dir, tiny_imaging_dir) as (
        app,
        client,
    ):
        yield app, client


def _enrol(client, code: str) -> None:
    assert (
        client.post("/api/v1/auth/enrol", json={"code": code, "password": PASSWORD}).status_code
        == 200
    )


def _admin_makes_and_enrols(client, admin, name: str, role: str = "clinician") -> dict:
    """What the issue's admin did: create the account, enrol it with the code, sign in."""
    made = client.post("/api/v1/users", headers=admin, json={"username": name, "role": role})
    assert made.status_code == 201 and made.json()["approval_pending"] is True
    _enrol(client, made.json()["enrol_code"])
    return bearer(client, name)


def test_an_admin_alone_cannot_make_an_account_that_reads_patient_data(env):
    _, client = env
    admin, rad = bearer(client, "admin"), bearer(client, "rad1")
    client.cookies.clear()
    mine = _admin_makes_and_enrols(client, admin, "dr.sahte")
    assert client.get("/api/v1/auth/me", headers=mine).status_code == 200  # may sign in
    r = client.get("/api/v1/studies", headers=mine)
    assert r.status_code == 403 and r.json()["code"] == "approval_pending"
    for method, path in (
        ("POST", "/api/v1/studies/1/conversations"),
        ("GET", "/api/v1/conversations"),
        ("GET", "/api/v1/studies/1"),
    ):
        r = client.request(method, path, headers=mine)
        assert r.status_code == 403 and r.json()["code"] == "approval_pending", (method, path)
    assert client.get("/api/v1/triage/history", headers=mine).status_code == 200  # own data
    # the admin can neither see the pending list nor approve
    assert client.get("/api/v1/users/pending", headers=admin).json()["code"] == "forbidden"
    r = client.post("/api/v1/users/dr.sahte/approve", headers=admin)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert client.get("/api/v1/users/pending", headers=rad).json() == [
        {"username": "dr.sahte", "role": "clinician", "enrolled": True}
    ]
    # a radiologist approves: the account reads studies
    r = client.post("/api/v1/users/dr.sahte/approve", headers=rad)
    assert r.status_code == 200 and r.json()["approval_pending"] is False
    assert client.get("/api/v1/studies", headers=mine).status_code == 200
    assert client.get("/api/v1/users/pending", headers=rad).json() == []
    again = client.post("/api/v1/users/dr.sahte/approve", headers=rad)
    assert again.status_code == 409 and again.json()["code"] == "not_pending"
    # the admin resets it (a new code they see): pending again, whoever enrols
    code = client.post("/api/v1/users/dr.sahte/reset", headers=admin).json()["enrol_code"]
    _enrol(client, code)
    mine = bearer(client, "dr.sahte")
    r = client.get("/api/v1/studies", headers=mine)
    assert r.status_code == 403 and r.json()["code"] == "approval_pending"
    listed = {u["username"]: u for u in client.get("/api/v1/users", headers=admin).json()}
    assert listed["dr.sahte"]["approval_pending"] and not listed["rad1"]["approval_pending"]
    # the refusals are audited as denied with what was needed
    events = client.get(
        "/api/v1/audit", headers=admin, params={"action": "denied", "actor": "dr.sahte"}
    ).json()["items"]
    assert {e["detail"]["needed"] for e in events} >= {"study_read", "chat"}


def test_approval_waits_for_the_holders_own_enrolment(env):
    """Issue 57 item 2: the admin made dr.new and kept the code, a radiologist approved the
    pending name, the admin enrolled with the code and read patient data. Approval now needs
    the holder's enrolment first (409 ``not_enrolled``), the pending list says who enrolled,
    and a reset clears an earlier approval (the account is not enrolled again until used)."""
    _, client = env
    admin, rad = bearer(client, "admin"), bearer(client, "rad1")
    client.cookies.clear()
    made = client.post(
        "/api/v1/users", headers=admin, json={"username": "dr.new", "role": "clinician"}
    ).json()
    assert client.get("/api/v1/users/pending", headers=rad).json() == [
        {"username": "dr.new", "role": "clinician", "enrolled": False}
    ]
    early = client.post("/api/v1/users/dr.new/approve", headers=rad)
    assert early.status_code == 409 and early.json()["code"] == "not_enrolled"
    # whoever then enrols with the code (here: the admin who saw it) reads nothing
    _enrol(client, made["enrol_code"])
    mine = bearer(client, "dr.new")
    r = client.get("/api/v1/studies", headers=mine)
    assert r.status_code == 403 and r.json()["code"] == "approval_pending"
    assert client.get("/api/v1/users/pending", headers=rad).json() == [
        {"username": "dr.new", "role": "clinician", "enrolled": True}
    ]
    assert client.post("/api/v1/users/dr.new/approve", headers=rad).status_code == 200
    assert client.get("/api/v1/studies", headers=mine).status_code == 200
    # a reset clears the approval, and the new code's holder must enrol before a new one
    client.post("/api/v1/users/dr.new/reset", headers=admin)
    assert client.get("/api/v1/users/pending", headers=rad).json() == [
        {"username": "dr.new", "role": "clinician", "enrolled": False}
    ]
    again = client.post("/api/v1/users/dr.new/approve", headers=rad)
    assert again.status_code == 409 and again.json()["code"] == "not_enrolled"
    grants = client.get("/api/v1/audit/role-grants", headers=admin).json()["items"]
    approvals = [(g["username"], g["outcome"]) for g in grants if g["op"] == "approve"]
    assert approvals == [("dr.new", "denied"), ("dr.new", "ok"), ("dr.new", "denied")]


def test_no_one_approves_themselves_and_a_pending_radiologist_approves_no_one(env):
    _, client = env
    admin, rad = bearer(client, "admin"), bearer(client, "rad1")
    client.cookies.clear()
    r = client.post("/api/v1/users/rad1/approve", headers=rad)
    assert r.status_code == 403 and r.json()["code"] == "approval_self"
    # two admin-made radiologists cannot approve each other (or themselves) while pending
    a = _admin_makes_and_enrols(client, admin, "rad.a", "radiologist")
    _admin_makes_and_enrols(client, admin, "rad.b", "radiologist")
    for path in ("/api/v1/users/rad.b/approve", "/api/v1/users/rad.a/approve"):
        r = client.post(path, headers=a)
        assert r.status_code == 403 and r.json()["code"] == "approval_pending"
    assert client.get("/api/v1/users/pending", headers=a).json()["code"] == "approval_pending"
    # approving an admin or a patient: nothing to approve
    assert client.post("/api/v1/users/admin/approve", headers=rad).json()["code"] == "not_pending"
    assert client.post("/api/v1/users/nobody/approve", headers=rad).status_code == 404
    # the review lists approvals and refused approvals, by whom
    grants = client.get("/api/v1/audit/role-grants", headers=admin).json()["items"]
    approvals = [(g["by"], g["username"], g["outcome"]) for g in grants if g["op"] == "approve"]
    assert approvals == [("rad1", "rad1", "denied"), ("rad1", "admin", "denied")]


def test_a_role_change_into_a_clinical_role_needs_approval_again(env):
    _, client = env
    admin, rad = bearer(client, "admin"), bearer(client, "rad1")
    client.cookies.clear()
    assert client.get("/api/v1/studies", headers=bearer(client, "clin")).status_code == 200
    # a patient account (whose code the admin saw) made a clinician
    r = client.patch("/api/v1/users/pat1", headers=admin, json={"role": "clinician"})
    assert r.status_code == 200 and r.json()["approval_pending"] is True
    r = client.get("/api/v1/studies", headers=bearer(client, "pat1"))
    assert r.json()["code"] == "approval_pending"
    # a clinician made a radiologist gains signing: approved again first
    client.patch("/api/v1/users/clin", headers=admin, json={"role": "radiologist"})
    assert (
        client.get("/api/v1/studies", headers=bearer(client, "clin")).json()["code"]
        == "approval_pending"
    )
    assert client.post("/api/v1/users/clin/approve", headers=rad).status_code == 200
    assert client.get("/api/v1/studies", headers=bearer(client, "clin")).status_code == 200
    grants = client.get("/api/v1/audit/role-grants", headers=admin).json()["items"]
    assert [(g["op"], g["username"], g["outcome"]) for g in grants][-1] == ("approve", "clin", "ok")


@pytest.mark.slow  # a CLI process per step (~1 s each)
def test_the_server_shell_approves_and_the_review_lists_it(tmp_path):
    env = {**os.environ, "MEDAI_HOME": str(tmp_path)}
    code = json.loads(users_cli(env, "add", "dr.ilk", "--role", "radiologist", "--json").stdout)[
        "enrol_code"
    ]
    early = users_cli(env, "approve", "dr.ilk", "--json")  # not enrolled yet: nobody to vouch for
    assert early.returncode == 2 and json.loads(early.stdout)["code"] == "not_enrolled"
    assert users_cli(env, "enrol", code, "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    listed = json.loads(users_cli(env, "list", "--json").stdout)["users"]
    assert listed[0]["approval_pending"] is True
    assert users_cli(env, "list").stdout.rstrip().endswith("approval pending")
    ok = users_cli(env, "approve", "dr.ilk", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["approval_pending"] is False
    again = users_cli(env, "approve", "dr.ilk", "--json")
    assert again.returncode == 2 and json.loads(again.stdout)["code"] == "not_pending"
    assert users_cli(env, "approve", "nobody", "--json").returncode == 2
    assert (
        json.loads(users_cli(env, "list", "--json").stdout)["users"][0]["approval_pending"] is False
    )
    grants = json.loads(users_cli(env, "grants", "--json").stdout)["grants"]
    assert [(g["op"], g["by"], g["outcome"]) for g in grants] == [
        ("grant", "cli", "ok"),
        ("approve", "cli", "denied"),
        ("approve", "cli", "ok"),
        ("approve", "cli", "denied"),
    ]
    assert "REFUSED" in users_cli(env, "grants").stdout.splitlines()[-1]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_migration_approves_enrolled_clinical_users_only(kind, tmp_path):
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from medai.platform.records.db import Base, make_engine

    use_home(tmp_path)
    with database_url(kind, tmp_path) as url:
        engine = make_engine(url)
        migrate = migrator(engine)

        migrate(command.upgrade, "0006")
        with engine.begin() as conn:
            for name, role, pw in (
                ("boss", "admin", "$argon2id$x"),
                ("rad", "radiologist", "$argon2id$x"),
                ("clin", "clinician", "$argon2id$x"),
                ("invited", "clinician", ""),
                ("pat", "patient", "$a"),
            ):
                conn.execute(
                    text(
                        "INSERT INTO users (username, password_hash, role, active, "
                        "created_at) VALUES (:n, :p, :r, :a, CURRENT_TIMESTAMP)"
                    ),
                    {"n": name, "p": pw, "r": role, "a": True},
                )
        migrate(command.upgrade, "head")
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
            approved = dict(
                conn.execute(
                    text("SELECT username, approved_by FROM users WHERE approved_at IS NOT NULL")
                ).all()
            )
        assert approved == {"rad": "migration 0007", "clin": "migration 0007"}
        migrate(command.downgrade, "0006")
        migrate(command.upgrade, "head")
        engine.dispose()


def test_the_messages_exist_in_both_languages():
    from medai.platform.access.audit import ACTIONS
    from medai.platform.web.i18n import catalogue, missing_keys, missing_names

    assert missing_keys() == {}
    assert missing_names({"audit_": ACTIONS}) == []
    for lang in ("tr", "en"):
        for key in (
            "approval_pending_notice",
            "approvals_title",
            "approvals_approve",
            "error_approval_pending",
            "error_approval_self",
            "error_not_pending",
        ):
            assert catalogue()[lang][key].strip(), (lang, key)
    assert (
        catalogue()["tr"]["approval_pending_notice"] != catalogue()["en"]["approval_pending_notice"]
    )
