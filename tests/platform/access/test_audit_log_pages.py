"""The audit log (issue 59, item 6): the API answers newest first by default (``order=asc``:
oldest first), a page at a time (``limit``, ``offset``) of a ``total``, held still by
``until_id`` while new events arrive; each event names the study it concerns (``study_id``,
written by ``audit.record``, filled in for older events by migration 0025) and can be filtered
by it; a user target is named by its user name. ``medai audit list`` reads the same pages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime

import pytest
from sqlalchemy import inspect, text

from helpers.platform import (
    bearer,
    clinic,
    database_url,
    migrator,
    png_bytes,
    use_home,
    wait_status,
)


@pytest.fixture(scope="module")
def hosp(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    home = tmp_path_factory.mktemp("audit-pages")
    with clinic("sqlite", home, tfidf_model_dir, tiny_imaging_dir) as (app, client):
        yield app, client, home


def upload(client, headers, seed: int) -> int:
    r = client.post(
        "/api/v1/studies",
        headers=headers,
        data={"task": "cxr"},
        files={"file": ("x.png", png_bytes(seed), "image/png")},
    )
    assert r.status_code == 201, r.text
    return wait_status(client, headers, r.json()["id"], {"ai_drafted"})["id"]


def log(client, admin, **params) -> dict:
    r = client.get("/api/v1/audit", headers=admin, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_log_answers_newest_first_a_page_at_a_time_of_a_total(hosp):
    _app, client, _home = hosp
    admin, rad = bearer(client, "admin"), bearer(client, "rad1")
    for _ in range(4):
        client.get("/api/v1/studies", headers=rad)  # "view worklist" events

    first = log(client, admin, limit=3)
    ids = [e["id"] for e in first["items"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 3  # newest first, by default
    assert first["order"] == "desc" and first["until_id"] == ids[0]
    assert first["total"] > 6
    oldest = log(client, admin, limit=3, order="asc")["items"]
    assert [e["id"] for e in oldest] == sorted(e["id"] for e in oldest) and oldest[0]["id"] == 1

    # the next page, asked with the first page's until_id, follows on although the log grew
    # (each read of it is an event too): no event is shown twice or skipped
    client.get("/api/v1/studies", headers=rad)
    second = log(client, admin, limit=3, offset=3, until_id=first["until_id"])
    assert second["total"] == first["total"]
    assert [e["id"] for e in second["items"]] == [ids[-1] - 1, ids[-1] - 2, ids[-1] - 3]
    last = log(client, admin, limit=1000, offset=0, until_id=first["until_id"])
    assert len(last["items"]) == last["total"] == first["total"]

    r = client.get("/api/v1/audit", headers=admin, params={"order": "sideways"})
    assert r.status_code == 422


def test_each_event_names_its_study_and_the_log_filters_by_it(hosp):
    _app, client, _home = hosp
    admin, rad = bearer(client, "admin"), bearer(client, "rad1")
    a, b = upload(client, rad, 11), upload(client, rad, 12)
    client.get(f"/api/v1/studies/{a}", headers=rad)
    client.get(f"/api/v1/studies/{a}/report", headers=rad)
    client.get(f"/api/v1/studies/{b}/report", headers=rad)
    conv = client.post(f"/api/v1/studies/{a}/conversations", headers=rad, json={})

    of_a = log(client, admin, study_id=a, limit=1000)  # waiting for the draft read it often
    assert of_a["total"] == len(of_a["items"]) >= 4
    assert {e["study_id"] for e in of_a["items"]} == {a}
    kinds = {(e["action"], e["target_type"]) for e in of_a["items"]}
    assert {("upload", "study"), ("view", "study"), ("view", "report")} <= kinds
    if conv.status_code == 201:  # image chat served: its conversation belongs to the study
        assert ("chat", "conversation") in kinds
    assert {e["study_id"] for e in log(client, admin, study_id=b, limit=1000)["items"]} == {b}
    assert log(client, admin, study_id=999_999)["total"] == 0


def test_a_user_target_is_named_by_its_user_name(hosp):
    _app, client, _home = hosp
    admin = bearer(client, "admin")
    r = client.post(
        "/api/v1/users", headers=admin, json={"username": "dr.demir", "role": "clinician"}
    )
    assert r.status_code == 201, r.text
    created = log(client, admin, action="admin", limit=1)["items"][0]
    assert (created["target_type"], created["target_name"]) == ("user", "dr.demir")
    assert created["target_id"] == str(r.json()["id"]) and created["study_id"] is None


@pytest.mark.slow  # a CLI process per step
def test_audit_list_at_the_console(tmp_path):
    env = {**os.environ, "MEDAI_HOME": str(tmp_path)}
    env.pop("MEDAI_DATABASE_URL", None)

    def cli(*args):
        r = subprocess.run(
            [sys.executable, "-m", "medai.cli", *args],
            text=True,
            capture_output=True,
            env=env,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        return r.stdout

    for name in ("u1", "u2", "u3"):
        cli("users", "add", name, "--role", "clinician", "--json")
    page = json.loads(cli("audit", "list", "--limit", "2", "--json"))
    assert page["total"] == 6  # each account: created, and its role granted
    ids = [e["id"] for e in page["items"]]
    assert ids == [6, 5]  # newest first
    assert page["items"][0]["target_name"] == "u3"
    oldest = json.loads(cli("audit", "list", "--limit", "2", "--oldest-first", "--json"))
    assert [e["id"] for e in oldest["items"]] == [1, 2]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_migration_fills_in_the_study_of_earlier_events(kind, tmp_path):
    from alembic import command

    from medai.platform.records.db import make_engine

    use_home(tmp_path)
    with database_url(kind, tmp_path) as url:
        engine = make_engine(url)
        migrate = migrator(engine)
        migrate(command.upgrade, "0024")
        at = datetime(2026, 12, 1, 9, 0)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (id, username, password_hash, role, active, created_at) "
                    "VALUES (1, 'rad', '', 'radiologist', true, :at)"
                ),
                {"at": at},
            )
            for sid in (7, 8):
                conn.execute(
                    text(
                        "INSERT INTO studies (id, task, modality, file_sha256, file_size, "
                        "content_type, language, status, urgent, uploaded_by, created_at, "
                        "updated_at) VALUES (:id, 'cxr', 'CR', 'x', 1, 'image/png', 'tr', "
                        "'signed', false, 1, :at, :at)"
                    ),
                    {"id": sid, "at": at},
                )
            conn.execute(
                text(
                    "INSERT INTO conversations (id, study_id, owner_id, created_at) "
                    "VALUES (3, 8, 1, :at)"
                ),
                {"at": at},
            )
            events = [  # (target_type, target_id) -> the study it should name
                ("study", "7"),
                ("report", "7"),
                ("heatmap", "8"),
                ("conversation", "3"),
                ("conversation", "99"),  # a conversation no longer there: none
                ("user", "1"),  # not a study
                ("worklist", None),
                ("route", "/api/v1/studies/7"),  # a path, not an id
            ]
            for target_type, target_id in events:
                conn.execute(
                    text(
                        "INSERT INTO audit_events (at, actor, action, target_type, target_id, "
                        "outcome, detail) VALUES (:at, 'rad', 'view', :tt, :ti, 'ok', '{}')"
                    ),
                    {"at": at, "tt": target_type, "ti": target_id},
                )
        migrate(command.upgrade, "0025")
        with engine.connect() as conn:
            got = conn.execute(
                text("SELECT target_type, target_id, study_id FROM audit_events ORDER BY id")
            ).all()
        assert [r[2] for r in got] == [7, 7, 8, 8, None, None, None, None]
        with engine.begin() as conn, pytest.raises(Exception, match="append-only"):
            conn.execute(text("UPDATE audit_events SET study_id = 1"))
        with engine.connect() as conn:
            idx = {i["name"] for i in inspect(conn).get_indexes("audit_events")}
        assert "ix_audit_events_study_id" in idx
        migrate(command.downgrade, "0024")
        with engine.connect() as conn:
            cols = {c["name"] for c in inspect(conn).get_columns("audit_events")}
            assert "study_id" not in cols
            assert conn.execute(text("SELECT count(*) FROM audit_events")).scalar() == 8
        migrate(command.upgrade, "0025")
        engine.dispose()
