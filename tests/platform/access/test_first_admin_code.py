"""The first admin of a Helm or systemd site (issue 57 item 9): the operator's secret
(``MEDAI_ADMIN_PASSWORD_FILE``, the units' ``admin-password`` credential) is the admin's
one-time enrolment code, never a password. It does not sign in; its holder enrols with it and
chooses the password (the first sign-in changes it), which spends it; the CLI never echoes it.
Too short a secret, or one given to a non-admin account, is refused."""

from __future__ import annotations

import json
import os

import pytest

from helpers.platform import PASSWORD, users_cli

PROFILE = os.environ["MEDAI_PASSWORD_HASH"]  # the CLI's, set by tests/conftest.py
SECRET = "Kiraz-Bahce-2026-ucak!"  # what an operator puts in the Secret or the credential


@pytest.mark.slow  # a CLI process per step (~1 s each)
def test_the_first_admins_secret_is_a_one_time_enrolment_code(tmp_path):
    env = {**os.environ, "MEDAI_HOME": str(tmp_path)}
    env.pop("MEDAI_DATABASE_URL", None)
    short = users_cli(
        env, "add", "admin", "--role", "admin", "--enrol-code-stdin", "--json", stdin="ab-12\n"
    )
    assert short.returncode == 2 and "at least 12" in json.loads(short.stdout)["error"]
    clinical = users_cli(
        env, "add", "dr.x", "--role", "radiologist", "--enrol-code-stdin", "--json", stdin=SECRET
    )
    assert clinical.returncode == 2, clinical.stdout
    made = users_cli(
        env, "add", "admin", "--role", "admin", "--enrol-code-stdin", "--json", stdin=SECRET
    )
    assert made.returncode == 0, made.stdout + made.stderr
    out = json.loads(made.stdout)
    assert out["enrol_code"] is None and out["enrol_code_supplied"] is True
    assert out["enrol_code_expires_at"]
    assert "KIRAZ" not in (made.stdout + made.stderr).upper()  # the secret is never echoed
    listed = json.loads(users_cli(env, "list", "--json").stdout)["users"]
    assert [(u["username"], u["enrolled"]) for u in listed] == [("admin", False)]

    # the secret opens nothing as a password
    from medai.platform.access import credentials
    from medai.platform.records.db import Database

    db = Database(f"sqlite:///{tmp_path / 'medai.db'}")
    try:
        with db.session() as s, pytest.raises(credentials.AuthFailed):
            credentials.verify(s, "admin", SECRET, hash_profile=PROFILE)
    finally:
        db.dispose()
    # its holder enrols with it (typed as it was given) and chooses the password: spent
    done = users_cli(env, "enrol", SECRET, "--password-stdin", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stdout + done.stderr
    again = users_cli(
        env, "enrol", SECRET, "--password-stdin", "--json", stdin="another-pass-phrase-9\n"
    )
    assert again.returncode != 0
    db = Database(f"sqlite:///{tmp_path / 'medai.db'}")
    try:
        with db.session() as s:
            assert credentials.verify(s, "admin", PASSWORD, hash_profile=PROFILE).role == "admin"
    finally:
        db.dispose()
