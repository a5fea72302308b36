"""Upgrades: a site made by the previous release (``tests/fixtures/previous_release``: its
database, stored files and key, made by that commit's own code) migrates to head with its data
intact, on SQLite and PostgreSQL: its users sign in, the signed and amended report reads back
word for word, the sealed columns and stored files decrypt, its audit events are all there.

And the refusals around an upgrade: with ``MEDAI_AUTO_MIGRATE=false`` ``medai serve`` (and the
worker and the DICOM node) exit 2 on the old database before binding anything, naming its
revision, the head and ``medai migrate``; a database newer than this code is refused whatever
the setting; readiness answers 503 with ``schema_behind``/``schema_newer`` when the schema moves
under a running server. A migration, once released, is frozen: the fixture records the
previous release's migration files and the current ones must be byte-identical (an edited
released migration never runs again on a site already past it)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from helpers.paths import ROOT
from helpers.platform import free_port, listens, postgres_database, use_home
from helpers.upgrade import BUILD, FIXTURE, _old_home

SITE = BUILD["site"]
MIGRATIONS = ROOT / "src/medai/platform/migrations/versions"


def _revision(url: str) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    finally:
        engine.dispose()


def test_the_previous_releases_migrations_are_unchanged():
    assert BUILD["revision"] != _head()  # the fixture is of an older schema
    for name, digest in BUILD["migrations"].items():
        current = MIGRATIONS / name
        assert current.is_file(), f"released migration {name} was removed"
        assert hashlib.sha256(current.read_bytes()).hexdigest() == digest, (
            f"released migration {name} was edited: a site already past it never runs the "
            "change; write a new migration instead"
        )


def _head() -> str:
    from medai.platform.records.db import migration_heads

    return ", ".join(migration_heads())


@pytest.fixture(params=["sqlite", "postgresql"])
def old_site(request, tmp_path):
    """The previous release's site (its home, and its database on SQLite or PostgreSQL)."""
    home = _old_home(tmp_path)
    if request.param == "sqlite":
        yield home, f"sqlite:///{home / 'medai.db'}"
        return
    restore = shutil.which("pg_restore")
    if restore is None:
        pytest.skip("pg_restore is not on PATH (apt-get install postgresql-client)")
    with postgres_database() as url:
        from sqlalchemy.engine import make_url

        libpq = make_url(url).set(drivername="postgresql").render_as_string(False)
        subprocess.run(
            [
                restore,
                "--no-owner",
                "--exit-on-error",
                f"--dbname={libpq}",
                str(FIXTURE / "medai.pgdump"),
            ],
            check=True,
            capture_output=True,
        )
        yield home, url


def test_a_database_of_the_previous_release_migrates_with_its_data(old_site):
    from fastapi.testclient import TestClient

    from medai.platform.app import create_platform_app
    from medai.platform.records.crypto import cipher
    from medai.platform.records.db import Database
    from medai.platform.records.tables import Message, Study, TriageRecord

    home, url = old_site
    use_home(home)
    assert _revision(url) == BUILD["revision"]
    found = Database(url).upgrade()
    assert found.current == (BUILD["revision"],)
    assert _revision(url) == _head()

    app = create_platform_app(database_url=url, preload=False, job_threads=0, outbox_threads=0)
    with TestClient(app, base_url="http://localhost") as client:
        tokens = {}
        for name in SITE["users"]:  # every user signs in with the password they had
            r = client.post(
                "/api/v1/auth/login", json={"username": name, "password": BUILD["password"]}
            )
            assert r.status_code == 200, (name, r.text)
            tokens[name] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        rad = tokens["rad"]
        sid = BUILD["made"]["study_id"]
        study = client.get(f"/api/v1/studies/{sid}", headers=rad).json()
        assert study["clinical_question"] == SITE["question"]
        assert study["patient_ref"] == SITE["patient_ref"]
        report = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()
        assert report["status"] == "amended" and report["signed_by"] == "rad"
        # the text as signed, and the section added since (Measurements) read as empty
        signed = {**SITE["signed"], "impression": SITE["amended"], "measurements": ""}
        assert report["sections"] == signed
        versions = client.get(f"/api/v1/studies/{sid}/report/versions", headers=rad).json()
        items = versions["items"]
        assert len(items) == BUILD["made"]["report_versions"]
        assert items[0]["sections"] == {**SITE["signed"], "measurements": ""}
        assert items[0]["signed_by"] == "rad"
        image = client.get(f"/api/v1/studies/{sid}/image", headers=rad)
        assert image.status_code == 200 and image.content[:4] == b"\x89PNG"
        audit = client.get(
            "/api/v1/audit", headers=tokens["admin"], params={"limit": 500, "order": "asc"}
        ).json()
        old = audit["items"][: BUILD["made"]["audit_events"]]  # oldest first: the old ones
        assert [e["action"] for e in old] == ["admin"] * 3 + ["sign", "sign", "triage"]
        assert audit["total"] >= len(old) + len(SITE["users"])  # then these sign-ins
        assert client.get("/api/v1/health/ready").json()["schema"] == {"ready": True}
    p = app.state.platform
    for sha in BUILD["files"]:
        assert hashlib.sha256(p.store.read(sha)).hexdigest() == sha
    with p.db.session() as db:
        first = db.get(Study, sid)
        assert cipher().decrypt(first.patient_name) == SITE["patient_name"]
        assert first.urgent_because is None  # migration 0017's column, added empty
        assert cipher().decrypt(db.query(Message).one().body) == SITE["message"]
        triage = db.query(TriageRecord).one()
        assert cipher().decrypt(triage.complaint) == SITE["complaint"]
        assert triage.result["department"] == "Çocuk Acil"
    p.db.dispose()


def _medai(args: list[str], env: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "medai.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def _env(home: Path, **extra: str) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MEDAI_DATABASE_URL", "MEDAI_SECRET_KEYS", "MEDAI_BROKER_URL")
    }
    return {**env, "MEDAI_HOME": str(home), **extra}


def test_serve_refuses_an_unmigrated_database_when_auto_migrate_is_off(tmp_path):
    """The deployment's path: replicas with MEDAI_AUTO_MIGRATE=false refuse the previous
    release's database (exit 2 before binding, the revisions and the command named), then one
    `medai migrate` and they start."""
    home = _old_home(tmp_path)
    env = _env(home, MEDAI_AUTO_MIGRATE="false")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "medai.cli", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, out + err
    assert not listens(proc.pid, port)
    for needle in (f"revision {BUILD['revision']}", f"needs {_head()}", "medai migrate"):
        assert needle in err, err
    assert _revision(f"sqlite:///{home / 'medai.db'}") == BUILD["revision"]  # untouched

    for args in (["worker", "--json"], ["dicom", "listen", "--port", "0", "--json"]):
        done = _medai(args, {**env, "MEDAI_BROKER_URL": "redis://127.0.0.1:6379/15"})
        assert done.returncode == 2, done.stdout + done.stderr
        answer = json.loads(done.stdout)
        assert answer["code"] == "schema_behind" and answer["revision"] == [BUILD["revision"]]
        assert answer["head"] == [_head()]

    done = _medai(["migrate", "--json"], env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) | {"database": None} == {
        "database": None,
        "from": [BUILD["revision"]],
        "to": [_head()],
        "upgraded": True,
    }
    again = _medai(["migrate", "--json"], env)
    assert json.loads(again.stdout)["upgraded"] is False
    assert _medai(["users", "list", "--json"], env).returncode == 0  # at head: it runs


def test_a_database_newer_than_this_release_is_refused_either_way(tmp_path):
    home = _old_home(tmp_path)
    url = f"sqlite:///{home / 'medai.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:  # as a newer release's migration job would leave it
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    for auto in ("true", "false"):
        env = _env(home, MEDAI_AUTO_MIGRATE=auto)
        done = _medai(["serve", "--port", str(free_port())], env)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "revision 9999, which medai" in done.stderr and "does not know" in done.stderr, (
            done.stderr
        )
        migrate = _medai(["migrate", "--json"], env)
        assert migrate.returncode == 2
        assert json.loads(migrate.stdout)["code"] == "schema_newer"
    assert _revision(url) == "9999"


def test_readiness_names_a_schema_that_moved_under_a_running_server(tmp_path):
    from fastapi.testclient import TestClient

    from medai.platform.app import create_platform_app

    home = tmp_path / "home"
    home.mkdir()
    use_home(home)
    url = f"sqlite:///{home / 'medai.db'}"
    app = create_platform_app(database_url=url, preload=False, job_threads=0, outbox_threads=0)
    engine = create_engine(url)
    with TestClient(app, base_url="http://localhost") as client:
        for revision, code in ((BUILD["revision"], "schema_behind"), ("9999", "schema_newer")):
            with engine.begin() as conn:
                conn.execute(text(f"UPDATE alembic_version SET version_num = '{revision}'"))
            r = client.get("/api/v1/health/ready")
            assert r.status_code == 503, r.text
            assert r.json()["schema"] == {"ready": False, "error": "SchemaMismatch", "code": code}
            assert r.json()["code"] == code and "schema" in r.json()["detail"]
        with engine.begin() as conn:
            conn.execute(text(f"UPDATE alembic_version SET version_num = '{_head()}'"))
        assert client.get("/api/v1/health/ready").json()["schema"] == {"ready": True}
    engine.dispose()
    app.state.platform.db.dispose()


@pytest.mark.parametrize("migrate", [True, False])
def test_a_backup_of_the_previous_release_restores_and_migrates(tmp_path, migrate):
    """The upgrade procedure's safety net: the backup taken before `medai migrate` (of the old
    schema) restores into an empty site with this release, migrated on the way (or left for
    `medai migrate`, as MEDAI_AUTO_MIGRATE=false deployments want)."""
    from medai.platform.ops import backup as bk
    from medai.platform.ops.restore import restore
    from medai.settings import Settings

    home = _old_home(tmp_path)
    manifest = bk.backup(
        tmp_path / "b", Settings(home=home, database_url=f"sqlite:///{home / 'medai.db'}")
    )
    assert manifest["database"]["revision"] == BUILD["revision"]  # a backup never migrates
    assert manifest["counts"]["signed_reports"] == BUILD["made"]["signed_reports"]
    target = tmp_path / "t"
    target.mkdir()
    shutil.copyfile(FIXTURE / "secret.key", target / "secret.key")
    url = f"sqlite:///{target / 'medai.db'}"
    out = restore(tmp_path / "b", Settings(home=target, database_url=url), migrate=migrate)
    assert out["checked"]["files_decrypted"] == len(BUILD["files"])
    assert out["checked"]["sealed_values"] >= 7
    assert (out["migrated_to"], out["needs_migrate"]) == (
        (_head(), False) if migrate else (None, True)
    )
    assert _revision(url) == (_head() if migrate else BUILD["revision"])
