"""Findings of the hostile security test (issue 45), each through the real API on SQLite and
PostgreSQL: a reset or a role change does not hand the account's earlier triage history and
conversations to whoever enrols next; an unknown user name (a password typed into the wrong
field) is stored and audited only as a keyed hash; a forged X-Forwarded-For resets no quota or
throttle unless its proxy is trusted (``medai serve``); concurrent failed sign-ins, wrong
enrolment codes and anonymous triage requests meet their limits exactly as serial ones do;
the last active admin cannot be disabled."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import select

from helpers.platform import (
    PASSWORD,
    bearer,
    cli_add_user,
    clinic,
    free_port,
    png_bytes,
    reread_settings,
    start_serve,
    wait_status,
)

pytestmark = [pytest.mark.server]

NEW_PASSWORD = "kestane-kebap-ilkbahar"
COMPLAINT = "iki haftadır başım ağrıyor"


@pytest.fixture(params=["sqlite", "postgresql"])
def env(request, tmp_path, tfidf_model_dir, tiny_imaging_dir):
    with clinic(request.param, tmp_path / request.param, tfidf_model_dir, tiny_imaging_dir) as (
        app,
        client,
    ):
        admin = bearer(client, "admin")
        client.cookies.clear()  # each request below carries only the headers it names
        yield app, client, admin


def settings_env(monkeypatch, app, **values: str) -> None:
    """Set ``MEDAI_*`` variables for this test (the settings are re-read and handed to the
    running platform, as a restart with them would)."""
    for name, value in values.items():
        monkeypatch.setenv(f"MEDAI_{name}", value)
    reread_settings(monkeypatch, app.state.platform)


@pytest.fixture(autouse=True)
def _fresh_settings():
    from medai.settings import get_settings

    yield
    get_settings.cache_clear()  # after monkeypatch restored the environment


def at_once(n: int, call: Callable[[int], int]) -> list[int]:
    """``call(i)`` for i in 0..n-1 from n threads released together: the status codes."""
    codes: list[int] = []
    barrier = threading.Barrier(n)

    def one(i: int) -> None:
        barrier.wait()
        codes.append(call(i))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes


def reset_and_enrol(client, admin, name: str) -> dict[str, str]:
    """What the issue's admin did: reset the account, enrol its code, sign in as it."""
    r = client.post(f"/api/v1/users/{name}/reset", headers=admin)
    assert r.status_code == 200, r.text
    assert (
        client.post(
            "/api/v1/auth/enrol", json={"code": r.json()["enrol_code"], "password": NEW_PASSWORD}
        ).status_code
        == 200
    )
    r = client.post("/api/v1/auth/login", json={"username": name, "password": NEW_PASSWORD})
    assert r.status_code == 200, r.text
    client.cookies.clear()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def history(client, headers) -> list[str]:
    r = client.get("/api/v1/triage/history", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["total"] == len(r.json()["items"])
    return [i["complaint"] for i in r.json()["items"]]


# --- 1. a reset or a role change starts the account's own history anew


def test_a_reset_does_not_hand_the_triage_history_to_whoever_enrols(env):
    _, client, admin = env
    pat = bearer(client, "pat1")
    client.cookies.clear()
    before = client.post("/api/v1/triage", headers=pat, json={"text": "cildimde kaşıntı var"})
    assert before.status_code == 200
    assert history(client, pat) == ["cildimde kaşıntı var"]
    mine = reset_and_enrol(client, admin, "pat1")
    assert history(client, mine) == []  # the admin reads nothing of the patient's
    assert client.post("/api/v1/triage", headers=mine, json={"text": COMPLAINT}).status_code == 200
    assert history(client, mine) == [COMPLAINT]  # the new credentials' own history
    # nothing was deleted: a clinician still reaches the triage by its record number
    record = client.get(
        f"/api/v1/triage/{before.json()['record_id']}", headers=bearer(client, "clin")
    )
    assert record.status_code == 200 and record.json()["complaint"] == "cildimde kaşıntı var"


def test_a_role_change_leaves_the_old_roles_history_behind(env):
    _, client, admin = env
    pat = bearer(client, "pat2")
    client.cookies.clear()
    assert client.post("/api/v1/triage", headers=pat, json={"text": COMPLAINT}).status_code == 200
    r = client.patch("/api/v1/users/pat2", headers=admin, json={"role": "clinician"})
    assert r.status_code == 200
    assert (
        client.post("/api/v1/users/pat2/approve", headers=bearer(client, "rad1")).status_code == 200
    )
    assert history(client, bearer(client, "pat2")) == []
    rad2 = bearer(client, "rad2")
    assert client.post("/api/v1/triage", headers=rad2, json={"text": COMPLAINT}).status_code == 200
    same = client.patch("/api/v1/users/rad2", headers=admin, json={"role": "radiologist"})
    assert same.status_code == 200  # the same role: nothing moves
    assert history(client, rad2) == [COMPLAINT]


def test_a_reset_does_not_hand_the_conversations_to_whoever_enrols(env):
    _, client, admin = env
    clin, rad = bearer(client, "clin"), bearer(client, "rad1")
    client.cookies.clear()
    sid = client.post(
        "/api/v1/studies",
        headers=rad,
        data={"task": "cxr"},
        files={"file": ("x.png", png_bytes(3), "image/png")},
    ).json()["id"]
    wait_status(client, rad, sid, {"ai_drafted"})
    conv = client.post(f"/api/v1/studies/{sid}/conversations", headers=clin).json()["id"]
    assert (
        client.post(
            f"/api/v1/conversations/{conv}/messages", headers=clin, json={"text": "Bu nedir?"}
        ).status_code
        == 200
    )
    mine = reset_and_enrol(client, admin, "clin")
    # even once a radiologist approves the reset account (the two-person rule's second person)
    assert client.post("/api/v1/users/clin/approve", headers=rad).status_code == 200
    assert client.get("/api/v1/conversations", headers=mine).json()["items"] == []
    for method, path, body in (
        ("GET", f"/api/v1/conversations/{conv}", None),
        ("POST", f"/api/v1/conversations/{conv}/messages", {"text": "?"}),
    ):
        r = client.request(method, path, headers=mine, json=body)
        assert r.status_code == 404 and r.json()["code"] == "not_found", (method, r.text)
    new = client.post(f"/api/v1/studies/{sid}/conversations", headers=mine).json()["id"]
    said = client.post(f"/api/v1/conversations/{new}/messages", headers=mine, json={"text": "?"})
    assert said.status_code == 200  # a conversation is listed once it holds a question
    listed = client.get("/api/v1/conversations", headers=mine).json()["items"]
    assert [c["id"] for c in listed] == [new]


# --- 2. an unknown user name only as a keyed hash


def _everything_stored(app) -> str:
    """Every value of every table, as text (a typed secret must be in none)."""
    from medai.platform.records.db import Base

    out: list[str] = []
    with app.state.platform.db.session() as db:
        for table in Base.metadata.sorted_tables:
            for row in db.execute(select(table)).all():
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        value = bytes(value).decode("latin-1")
                    out.append(
                        json.dumps(value, default=str, ensure_ascii=False)
                        if isinstance(value, dict | list)
                        else str(value)
                    )
    return "\n".join(out).lower()


def test_an_unknown_user_name_is_stored_and_audited_only_as_a_keyed_hash(env, monkeypatch, caplog):
    app, client, admin = env
    settings_env(monkeypatch, app, LOGIN_MAX_FAILURES="2")
    typed = "Galata-Kulesi-Sifrem-1905"  # the password, typed into the user field
    caplog.set_level(logging.DEBUG)
    codes = [
        client.post("/api/v1/auth/login", json={"username": typed, "password": "x"}).status_code
        for _ in range(3)
    ]
    assert codes == [401, 401, 429]  # still counted (and throttled) per name
    assert (
        client.post("/api/v1/auth/login", json={"username": "clin", "password": "x"}).status_code
        == 401
    )
    stored = _everything_stored(app)
    assert typed.lower() not in stored and "galata-kulesi" not in stored
    assert typed.lower() not in caplog.text.lower()
    events = client.get(
        "/api/v1/audit", headers=admin, params={"action": "login", "order": "asc"}
    ).json()
    refused = [(e["actor"], e["outcome"]) for e in events["items"] if e["outcome"] != "ok"]
    assert len(refused) == 4 and refused[3] == ("clin", "failed")  # a real account's name
    pseudonyms = {actor for actor, _ in refused[:3]}
    assert len(pseudonyms) == 1  # the same typed name: the same pseudonym, recognisable
    (actor,) = pseudonyms
    assert actor.startswith("unknown:") and len(actor) == len("unknown:") + 32


# --- 3. forwarded headers only from a trusted proxy (the real `medai serve`)


def test_uvicorn_trusts_no_forwarded_header_unless_a_proxy_is_configured(monkeypatch):
    from medai.cli.serve import proxy_options
    from medai.settings import Settings

    monkeypatch.delenv("MEDAI_TRUSTED_PROXIES", raising=False)
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")  # uvicorn's own variable: not read
    assert proxy_options(Settings().serving.trusted_proxies) == {
        "proxy_headers": False,
        "forwarded_allow_ips": "",
    }
    monkeypatch.setenv("MEDAI_TRUSTED_PROXIES", '["10.0.0.5", "192.168.0.0/16"]')
    assert proxy_options(Settings().serving.trusted_proxies) == {
        "proxy_headers": True,
        "forwarded_allow_ips": ["10.0.0.5", "192.168.0.0/16"],
    }
    monkeypatch.setenv("MEDAI_TRUSTED_PROXIES", '["proxy.local"]')
    with pytest.raises(ValueError, match="MEDAI_TRUSTED_PROXIES"):
        Settings()


def _forged(i: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"203.0.113.{i}"}


@pytest.mark.slow
@pytest.mark.parametrize("trusted", [None, '["127.0.0.1"]'])
def test_a_forged_forwarded_for_resets_no_quota_or_throttle(
    trusted, tmp_path, tfidf_model_dir, tiny_imaging_dir
):
    env = {
        **os.environ,
        "MEDAI_HOME": str(tmp_path),
        "MEDAI_MODELS": f"triage={tfidf_model_dir},cxr={tiny_imaging_dir}",
        "MEDAI_KIOSK_DAILY_QUOTA": "1",
        "MEDAI_LOGIN_MAX_FAILURES": "1",
        "MEDAI_RED_FLAG_EMBEDDINGS": "false",
    }
    env.pop("MEDAI_TRUSTED_PROXIES", None)
    env.pop("FORWARDED_ALLOW_IPS", None)
    if trusted:
        env["MEDAI_TRUSTED_PROXIES"] = trusted
    proc, base = start_serve(env, free_port())
    try:
        triage = [
            httpx.post(
                f"{base}/api/v1/triage", json={"text": COMPLAINT}, headers=_forged(i), timeout=60
            ).status_code
            for i in range(2)
        ]
        logins = [
            httpx.post(
                f"{base}/api/v1/auth/login",
                headers=_forged(i),
                json={"username": f"guess{i}", "password": "x"},
                timeout=60,
            ).status_code
            for i in range(11)
        ]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    if trusted is None:  # every request is 127.0.0.1's: one slot, ten failures
        assert triage == [200, 429] and logins == [401] * 10 + [429]
    else:  # behind a trusted proxy each forwarded address counts on its own
        assert triage == [200, 200] and logins == [401] * 11


# --- 4. limits counted atomically


def test_concurrent_failed_logins_pass_the_limit_exactly_as_serial_ones(env, monkeypatch):
    app, client, _ = env
    settings_env(monkeypatch, app, LOGIN_MAX_FAILURES="1")  # 10 per client

    def login(i: int) -> int:
        return client.post(
            "/api/v1/auth/login", json={"username": f"guess{i}", "password": "x"}
        ).status_code

    codes = at_once(30, login)
    assert sorted(codes) == [401] * 10 + [429] * 20


def test_concurrent_wrong_enrolment_codes_pass_the_limit_exactly(env, monkeypatch):
    app, client, _ = env
    settings_env(monkeypatch, app, LOGIN_MAX_FAILURES="1")

    def enrol(i: int) -> int:
        return client.post(
            "/api/v1/auth/enrol", json={"code": f"NOSUCHCODE{i}", "password": NEW_PASSWORD}
        ).status_code

    assert sorted(at_once(24, enrol)) == [404] * 10 + [429] * 14


def test_concurrent_anonymous_triage_requests_meet_the_quota_exactly(env, monkeypatch):
    app, client, _ = env
    settings_env(monkeypatch, app, KIOSK_DAILY_QUOTA="3")

    def ask(_i: int) -> int:
        return client.post("/api/v1/triage", json={"text": COMPLAINT}).status_code

    assert sorted(at_once(12, ask)) == [200] * 3 + [429] * 9


def test_a_right_password_gives_its_counted_attempt_back(env, monkeypatch):
    app, client, _ = env
    settings_env(monkeypatch, app, LOGIN_MAX_FAILURES="2")
    for _ in range(25):  # far more than the 20 per client: successes are not failures
        assert (
            client.post(
                "/api/v1/auth/login", json={"username": "clin", "password": PASSWORD}
            ).status_code
            == 200
        )
    client.cookies.clear()
    for _ in range(2):
        client.post("/api/v1/auth/login", json={"username": "clin", "password": "x"})
    r = client.post("/api/v1/auth/login", json={"username": "clin", "password": PASSWORD})
    assert r.status_code == 429  # the user's own limit, as before


# --- 5. the last active admin


def test_the_last_active_admin_cannot_be_disabled(env):
    _, client, admin = env
    r = client.post("/api/v1/users/admin/disable", headers=admin)
    assert r.status_code == 409 and r.json()["code"] == "last_admin", r.text
    made = client.post(
        "/api/v1/users", headers=admin, json={"username": "deputy", "role": "admin"}
    ).json()
    r = client.post("/api/v1/users/admin/disable", headers=admin)  # deputy has not enrolled
    assert r.status_code == 409 and r.json()["code"] == "last_admin"
    assert (
        client.post(
            "/api/v1/auth/enrol", json={"code": made["enrol_code"], "password": NEW_PASSWORD}
        ).status_code
        == 200
    )
    deputy = {
        "Authorization": "Bearer "
        + client.post(
            "/api/v1/auth/login", json={"username": "deputy", "password": NEW_PASSWORD}
        ).json()["access_token"]
    }
    client.cookies.clear()
    assert client.post("/api/v1/users/admin/disable", headers=admin).status_code == 200
    r = client.post("/api/v1/users/deputy/disable", headers=deputy)
    assert r.status_code == 409 and r.json()["code"] == "last_admin"
    assert client.post("/api/v1/users/pat1/disable", headers=deputy).status_code == 200


def test_two_admins_disabling_each_other_at_once_leave_one(env):
    app, client, admin = env
    from medai.platform.access import accounts

    with app.state.platform.db.session() as db:
        accounts.create_user(
            db,
            "deputy",
            NEW_PASSWORD,
            "admin",
            hash_profile=app.state.platform.settings.auth.password_hash,
        )
    deputy = {
        "Authorization": "Bearer "
        + client.post(
            "/api/v1/auth/login", json={"username": "deputy", "password": NEW_PASSWORD}
        ).json()["access_token"]
    }
    client.cookies.clear()
    calls = [(admin, "deputy"), (deputy, "admin")]
    codes = at_once(
        2,
        lambda i: (
            client.post(f"/api/v1/users/{calls[i][1]}/disable", headers=calls[i][0]).status_code
        ),
    )
    assert sorted(codes)[0] == 200 and sorted(codes)[1] in (401, 409)
    with app.state.platform.db.session() as db:
        from medai.platform.records.tables import User

        active = db.scalars(
            select(User.username).where(User.role == "admin", User.active.is_(True))
        ).all()
    assert len(active) == 1


def test_the_cli_refuses_to_disable_the_last_admin(tmp_path):
    env = {**os.environ, "MEDAI_HOME": str(tmp_path)}
    cli_add_user(env, "boss", "admin")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "medai.cli", "users", *args, "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    r = cli("disable", "boss")
    assert r.returncode == 2 and json.loads(r.stdout)["code"] == "last_admin"
    assert json.loads(cli("list").stdout)["users"][0]["active"] is True


def test_the_dicom_nodes_own_account_is_no_person_waiting_for_approval(
    tmp_path, tfidf_model_dir, tiny_imaging_dir
):
    """Issue 46: `medai-dicom` was listed as a clinician "waiting for approval" with Reset and
    Enable buttons; it is medai's own account, which nobody signs in as."""
    from medai.platform.intake import receive

    with clinic("sqlite", tmp_path, tfidf_model_dir, tiny_imaging_dir) as (app, client):
        with app.state.platform.db.session() as db:
            receive.account(db)
        admin, rad = bearer(client, "admin"), bearer(client, "rad1")
        listed = {u["username"]: u for u in client.get("/api/v1/users", headers=admin).json()}
        own = listed["medai-dicom"]
        assert own["internal"] is True and own["approval_pending"] is False
        assert "medai-dicom" not in {
            u["username"] for u in client.get("/api/v1/users/pending", headers=rad).json()
        }
        for op in ("reset", "enable"):
            r = client.post(f"/api/v1/users/medai-dicom/{op}", headers=admin)
            assert r.status_code == 409 and r.json()["code"] == "internal_account", r.text
        r = client.patch("/api/v1/users/medai-dicom", headers=admin, json={"role": "radiologist"})
        assert r.status_code == 409
