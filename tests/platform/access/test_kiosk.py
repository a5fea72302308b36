"""Registered kiosks: an admin registers one (token and enrolment code shown once, stored
hashed), a kiosk counts against its own daily quota (the hospital's day, moved with a fake
clock), not against the anonymous per-address quota; enrolment by one-time code into an
HttpOnly cookie; revocation; only admins manage kiosks; the migration on SQLite and
PostgreSQL; `medai kiosks`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from helpers.platform import (
    FakeClock,
    bearer,
    clinic,
    database_url,
    migrator,
    reread_settings,
    use_home,
)

COMPLAINT = "iki haftadır başım ağrıyor"
ADMIN_ROUTES = [
    ("GET", "/api/v1/admin/kiosks", None),
    ("POST", "/api/v1/admin/kiosks", {"name": "x"}),
    ("PATCH", "/api/v1/admin/kiosks/{id}", {"daily_quota": 9}),
    ("POST", "/api/v1/admin/kiosks/{id}/enrolment", None),
    ("POST", "/api/v1/admin/kiosks/{id}/revoke", None),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def env(request, tmp_path, tfidf_model_dir, tiny_imaging_dir, monkeypatch):
    monkeypatch.setenv("MEDAI_KIOSK_DAILY_QUOTA", "3")
    monkeypatch.setenv("MEDAI_TIMEZONE", "Europe/Istanbul")
    with clinic(request.param, tmp_path / request.param, tfidf_model_dir, tiny_imaging_dir) as (
        app,
        client,
    ):
        clock = FakeClock(datetime(2026, 3, 10, 9, 0))
        app.state.platform.clock = clock
        admin = bearer(client, "admin")
        client.cookies.clear()  # "anonymous" requests below carry no session
        yield app, client, admin, clock


def register(client, admin, name="Acil giriş 1", quota=None) -> dict:
    body = {"name": name} if quota is None else {"name": name, "daily_quota": quota}
    r = client.post("/api/v1/admin/kiosks", headers=admin, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def ask(client, headers=None):
    return client.post("/api/v1/triage", headers=headers or {}, json={"text": COMPLAINT})


def test_an_admin_registers_a_kiosk_whose_secrets_are_shown_once(env):
    app, client, admin, _ = env
    k = register(client, admin)
    assert k["daily_quota"] == 500 and k["used_today"] == 0 and not k["enrolled"]
    assert len(k["token"]) >= 40 and len(k["enrol_code"]) == 10
    listed = client.get("/api/v1/admin/kiosks", headers=admin).json()
    assert [x["name"] for x in listed] == ["Acil giriş 1"]
    assert "token" not in listed[0] and "enrol_code" not in listed[0]
    assert listed[0]["enrol_code_expires_at"] is not None
    with app.state.platform.db.session() as db:
        row = db.execute(text("SELECT * FROM kiosks")).mappings().one()
    assert k["token"] not in str(dict(row)) and k["enrol_code"] not in str(dict(row))
    events = client.get("/api/v1/audit", headers=admin, params={"target_type": "kiosk"}).json()[
        "items"
    ]
    assert [(e["action"], e["detail"]["op"]) for e in events] == [("admin", "create")]
    assert k["token"] not in str(events) and k["enrol_code"] not in str(events)
    again = client.post("/api/v1/admin/kiosks", headers=admin, json={"name": "Acil giriş 1"})
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    bad = client.post("/api/v1/admin/kiosks", headers=admin, json={"name": "<b>"})
    assert bad.status_code == 422


@pytest.mark.parametrize("user", ["rad1", "clin", "pat1", None])
def test_only_admins_manage_kiosks(env, user):
    _, client, admin, _ = env
    kid = register(client, admin)["id"]
    headers = bearer(client, user) if user else {}
    client.cookies.clear()
    for method, path, body in ADMIN_ROUTES:
        r = client.request(method, path.format(id=kid), headers=headers, json=body)
        assert r.status_code == (403 if user else 401), (method, path, r.status_code)
    assert client.get("/api/v1/admin/kiosks", headers=admin).json()[0]["revoked"] is False


def test_a_kiosk_uses_its_own_quota_not_the_addresss(env):
    _, client, admin, _ = env
    k = register(client, admin, quota=4)
    device = {"X-Kiosk-Token": k["token"]}
    assert [ask(client, device).status_code for _ in range(4)] == [200] * 4
    r = ask(client, device)
    assert r.status_code == 429 and r.json()["code"] == "kiosk_quota_exhausted"
    assert "4" in r.json()["detail"] and "Europe/Istanbul" in r.json()["detail"]
    assert int(r.headers["Retry-After"]) == 12 * 3600 + 1  # 12:00 → midnight in Istanbul
    # the same address, without the kiosk's token, still has its own three anonymous slots
    assert [ask(client).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert ask(client).json()["code"] == "throttled"
    listed = client.get("/api/v1/admin/kiosks", headers=admin).json()
    assert listed[0]["used_today"] == 4
    raised = client.patch(f"/api/v1/admin/kiosks/{k['id']}", headers=admin, json={"daily_quota": 5})
    assert raised.status_code == 200 and raised.json()["daily_quota"] == 5
    assert ask(client, device).status_code == 200 and ask(client, device).status_code == 429
    own = client.get("/api/v1/kiosk", headers=device).json()
    assert own == {
        "name": "Acil giriş 1",
        "daily_quota": 5,
        "used_today": 5,
        "resets_in_s": 12 * 3600 + 1,
    }


def test_the_quota_restarts_at_midnight_in_the_hospital_time_zone(env):
    _, client, admin, clock = env
    device = {"X-Kiosk-Token": register(client, admin, quota=2)["token"]}
    clock.at = datetime(2026, 3, 10, 20, 59, 0)  # 23:59 in Istanbul (UTC+3)
    assert [ask(client, device).status_code for _ in range(3)] == [200, 200, 429]
    assert int(ask(client, device).headers["Retry-After"]) == 61
    clock.at = datetime(2026, 3, 10, 21, 0, 30)  # 00:00:30 in Istanbul, still the 10th in UTC
    assert [ask(client, device).status_code for _ in range(3)] == [200, 200, 429]
    clock.at += timedelta(hours=23, minutes=59)  # 23:59:30 the same Istanbul day
    assert ask(client, device).status_code == 429


def test_the_utc_day_is_not_istanbuls(env, monkeypatch):
    app, client, admin, clock = env
    device = {"X-Kiosk-Token": register(client, admin, quota=1)["token"]}
    monkeypatch.setenv("MEDAI_TIMEZONE", "UTC")
    reread_settings(monkeypatch, app.state.platform)
    clock.at = datetime(2026, 3, 10, 20, 59)
    assert [ask(client, device).status_code for _ in range(2)] == [200, 429]
    clock.at = datetime(2026, 3, 10, 21, 0, 30)  # past Istanbul's midnight, not UTC's
    assert ask(client, device).status_code == 429
    clock.at = datetime(2026, 3, 11, 0, 0, 1)
    assert ask(client, device).status_code == 200


def test_a_kiosk_browser_enrols_once_by_code_into_an_httponly_cookie(env):
    _, client, admin, clock = env
    k = register(client, admin, quota=10)
    client.cookies.clear()
    grouped = f"{k['enrol_code'][:5].lower()}-{k['enrol_code'][5:]}"  # as typed on a screen
    r = client.post("/api/v1/kiosk/enrol", json={"code": grouped})
    assert r.status_code == 200 and r.json()["name"] == "Acil giriş 1"
    cookie = r.headers["set-cookie"]
    assert "medai_kiosk=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert k["enrol_code"] not in cookie and k["token"] not in cookie
    assert ask(client).status_code == 200  # the cookie makes it the kiosk
    assert client.get("/api/v1/kiosk").json()["used_today"] == 1
    stolen = client.cookies["medai_kiosk"]
    client.cookies.clear()
    used = client.post("/api/v1/kiosk/enrol", json={"code": k["enrol_code"]})
    assert used.status_code == 404  # one use only
    # a replacement browser: a new code; once used, the old browser's cookie stops
    code = client.post(f"/api/v1/admin/kiosks/{k['id']}/enrolment", headers=admin).json()
    clock.at += timedelta(minutes=31)
    assert (
        client.post("/api/v1/kiosk/enrol", json={"code": code["enrol_code"]}).status_code == 404
    )  # expired (MEDAI_KIOSK_ENROL_MINUTES = 30)
    code = client.post(f"/api/v1/admin/kiosks/{k['id']}/enrolment", headers=admin).json()
    assert client.post("/api/v1/kiosk/enrol", json={"code": code["enrol_code"]}).status_code == 200
    client.cookies.clear()
    client.cookies.set("medai_kiosk", stolen)
    old = ask(client)
    assert old.status_code == 401 and old.json()["code"] == "kiosk_unknown"
    ops = [
        e["detail"].get("op")
        for e in client.get(
            "/api/v1/audit", headers=admin, params={"target_type": "kiosk", "order": "asc"}
        ).json()["items"]
    ]
    assert ops == ["create", "enrol", None, "enrol_code", None, "enrol_code", "enrol"]


def test_wrong_enrolment_codes_are_throttled(env, monkeypatch):
    app, client, admin, _ = env
    monkeypatch.setenv("MEDAI_LOGIN_MAX_FAILURES", "1")  # ten per client and window
    reread_settings(monkeypatch, app.state.platform)
    code = register(client, admin)["enrol_code"]
    codes = [
        client.post("/api/v1/kiosk/enrol", json={"code": "WRONG23456"}).status_code
        for _ in range(11)
    ]
    assert codes == [404] * 10 + [429]
    assert client.post("/api/v1/kiosk/enrol", json={"code": code}).status_code == 429
    outcomes = [
        e["outcome"]
        for e in client.get(
            "/api/v1/audit",
            headers=admin,
            params={"action": "login", "target_type": "kiosk", "order": "asc"},
        ).json()["items"]
    ]
    assert outcomes == ["failed"] * 10 + ["throttled"] * 2


def test_a_revoked_kiosk_stops_at_once_and_its_name_is_free_again(env):
    _, client, admin, _ = env
    k = register(client, admin)
    client.cookies.clear()
    assert client.post("/api/v1/kiosk/enrol", json={"code": k["enrol_code"]}).status_code == 200
    assert ask(client).status_code == 200
    r = client.post(f"/api/v1/admin/kiosks/{k['id']}/revoke", headers=admin)
    assert r.status_code == 200 and r.json()["revoked"] and not r.json()["enrolled"]
    for headers in ({}, {"X-Kiosk-Token": k["token"]}):
        r = ask(client, headers)
        assert r.status_code == 401 and r.json()["code"] == "kiosk_revoked"
    assert (
        client.post(f"/api/v1/admin/kiosks/{k['id']}/enrolment", headers=admin).status_code == 409
    )
    client.cookies.clear()
    bogus = ask(client, {"X-Kiosk-Token": "not-a-token"})
    assert bogus.status_code == 401 and bogus.json()["code"] == "kiosk_unknown"
    again = register(client, admin)  # the same name, a new device
    listed = client.get("/api/v1/admin/kiosks", headers=admin).json()
    assert [(x["id"], x["revoked"]) for x in listed] == [(again["id"], False), (k["id"], True)]


def test_concurrent_requests_never_exceed_a_kiosks_quota(env):
    _, client, admin, _ = env
    device = {"X-Kiosk-Token": register(client, admin, quota=3)["token"]}
    codes: list[int] = []
    barrier = threading.Barrier(8)

    def one():
        barrier.wait()
        codes.append(ask(client, device).status_code)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] * 3 + [429] * 5


def test_registered_kiosks_work_with_anonymous_triage_switched_off(env, monkeypatch):
    app, client, admin, _ = env
    device = {"X-Kiosk-Token": register(client, admin)["token"]}
    monkeypatch.setenv("MEDAI_KIOSK_ENABLED", "false")
    reread_settings(monkeypatch, app.state.platform)
    assert ask(client).status_code == 401
    assert ask(client, device).status_code == 200


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_migration_adds_kiosks_and_keeps_triage_records(kind, tmp_path):
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from medai.platform.records.db import Base, make_engine

    use_home(tmp_path)
    with database_url(kind, tmp_path) as url:
        engine = make_engine(url)
        migrate = migrator(engine)

        def columns(table):
            with engine.connect() as conn:
                return {
                    r[0]
                    for r in conn.execute(text(f"SELECT * FROM {table} LIMIT 0")).cursor.description
                }

        migrate(command.upgrade, "0001")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO triage_requests (kiosk_client, complaint, result, urgent, "
                    "model_hash, created_at) VALUES ('c1', :b, '{}', false, 'h', :t)"
                ),
                {"b": b"x", "t": datetime(2026, 1, 1)},
            )
        migrate(command.upgrade, "head")
        assert "kiosk_id" in columns("triage_requests") and "cookie_hash" in columns("kiosks")
        with engine.connect() as conn:
            assert conn.execute(
                text("SELECT kiosk_client, kiosk_id FROM triage_requests")
            ).all() == [("c1", None)]
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        migrate(command.downgrade, "0001")
        assert "kiosk_id" not in columns("triage_requests")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM triage_requests")).scalar() == 1
        migrate(command.upgrade, "head")
        engine.dispose()


def _cli(env, *args):
    return subprocess.run(
        [sys.executable, "-m", "medai.cli", *args],
        text=True,
        capture_output=True,
        env=env,
        timeout=120,
    )


@pytest.mark.slow  # a CLI process per step (~1 s each)
def test_kiosks_cli(tmp_path):
    env = {**os.environ, "MEDAI_HOME": str(tmp_path)}
    env.pop("MEDAI_DATABASE_URL", None)
    added = _cli(env, "kiosks", "add", "Poliklinik 2", "--quota", "250", "--json")
    assert added.returncode == 0, added.stderr
    k = json.loads(added.stdout)
    assert k["daily_quota"] == 250 and k["token"] and len(k["enrol_code"]) == 10
    assert _cli(env, "kiosks", "add", "Poliklinik 2", "--json").returncode == 2
    assert _cli(env, "kiosks", "add", "Bad", "--quota", "-1").returncode == 2
    listed = json.loads(_cli(env, "kiosks", "list", "--json").stdout)["kiosks"]
    assert [(x["name"], x["daily_quota"], x["used_today"]) for x in listed] == [
        ("Poliklinik 2", 250, 0)
    ]
    assert "token" not in listed[0]
    code = json.loads(_cli(env, "kiosks", "enrol-code", "Poliklinik 2", "--json").stdout)
    assert len(code["enrol_code"]) == 10
    assert _cli(env, "kiosks", "revoke", "Poliklinik 2", "--json").returncode == 0
    assert _cli(env, "kiosks", "revoke", "Poliklinik 2", "--json").returncode == 2
    listed = json.loads(_cli(env, "kiosks", "list", "--json").stdout)["kiosks"]
    assert listed[0]["revoked"] is True
    human = _cli(env, "kiosks", "add", "Acil 1")
    assert human.returncode == 0 and "shown once" in human.stdout
