"""The restore drill, on SQLite and PostgreSQL: a site keeps taking studies and signing reports
WHILE ``medai backup`` runs (the writes are made to land between the database snapshot and the
copy of the stored files, the window the ordering protects); the backup is restored into an
empty home and database, and everything the manifest counts is there: every signed report
(its text, read through the platform's own sealed columns), every audit event, every stored
file (decrypted to its name). Restoring with the wrong keys fails naming the missing key id
and leaves the target empty; a target that holds a site is refused; a backup never lands in a
folder that holds something."""

from __future__ import annotations

import json
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, inspect, select, text

from helpers.dicom import make_dicom
from helpers.platform import bearer, clinic, decided, png_bytes, postgres_database, wait_status
from medai.platform.dicom.arrival import Arrival
from medai.platform.ops import backup_files, backup_manifest


def _sign_one(client, rad, n: int, files: Path) -> int:
    """Upload a study (a PNG or a DICOM, by turns), wait for its AI draft, sign it with an
    impression of its own: the study's id."""
    if n % 2:
        path = make_dicom(
            files / f"s{n}.dcm",
            accession=f"DRILL-{n}",
            patient_id=f"P-{n}",
            name=f"DRILL^PATIENT{n}",
            seed=n,
        )
        upload = ("s.dcm", path.read_bytes(), "application/dicom")
    else:
        upload = ("s.png", png_bytes(100 + n), "image/png")
    r = client.post(
        "/api/v1/studies",
        headers=rad,
        files={"file": upload},
        data={"task": "cxr", "patient_ref": f"REF-{n}", "clinical_question": f"öksürük {n}"},
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    wait_status(client, rad, sid, {"ai_drafted"})
    report = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()
    sections = {**report["sections"], "impression": f"drill impression {n}"}
    r = client.post(
        f"/api/v1/studies/{sid}/report/sign",
        headers=rad,
        json={
            "version": report["version"],
            "sections": sections,
            "labels": decided(client, rad, sid),
        },
    )
    assert r.status_code == 200, r.text
    return sid


class Writer(threading.Thread):
    """Signs studies one after another until stopped (the site at work)."""

    def __init__(self, client, rad, files: Path, first: int) -> None:
        super().__init__(daemon=True)
        self.client, self.rad, self.files, self.n = client, rad, files, first
        self.signed = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                _sign_one(self.client, self.rad, self.n, self.files)
                self.n += 1
                self.signed += 1
        except BaseException as exc:  # reported by the test
            self.error = exc

    def wait_for(self, count: int, timeout: float = 300) -> None:
        end = time.monotonic() + timeout
        while self.signed < count:
            assert self.error is None, self.error
            assert time.monotonic() < end, f"the writer signed {self.signed}, not {count}"
            time.sleep(0.05)


@contextmanager
def empty_target(kind: str, home: Path):
    """An empty home and database of ``kind``: its database URL."""
    home.mkdir(parents=True)
    if kind == "sqlite":
        yield f"sqlite:///{home / 'medai.db'}"
    else:
        with postgres_database() as url:
            yield url


def _settings(home: Path, url: str):
    from medai.settings import Settings

    return Settings(home=home, database_url=url)


def _rows(url: str) -> dict:
    """Signed report versions (their sections, decrypted by the platform's own column type),
    audit events and studies' files of a database, by id."""
    from medai.platform.records.tables import AuditEvent, ReportVersion, Study

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            from sqlalchemy.orm import Session

            with Session(conn) as db:
                signed = {
                    r.id: (r.study_id, r.version, r.sections, r.signed_by)
                    for r in db.scalars(
                        select(ReportVersion).where(ReportVersion.signed_by.is_not(None))
                    )
                }
                audit = {
                    e.id: (e.action, e.actor, e.target_id, e.outcome, e.detail)
                    for e in db.scalars(select(AuditEvent))
                }
                studies = {
                    s.id: (s.file_sha256, s.display_sha256, s.clinical_question)
                    for s in db.scalars(select(Study))
                }
    finally:
        engine.dispose()
    return {"signed": signed, "audit": audit, "studies": studies}


@pytest.fixture(params=["sqlite", "postgresql"])
def drill(request, tmp_path, tfidf_model_dir, tiny_imaging_dir):
    kind = request.param
    home = tmp_path / "site"
    with clinic(kind, home, tfidf_model_dir, tiny_imaging_dir) as (app, client):
        if kind == "postgresql":
            from medai.platform.ops.pg_tools import tool

            try:
                tool("pg_dump")
            except RuntimeError as exc:
                pytest.skip(str(exc))
        yield kind, app, client, home, tmp_path


def test_a_backup_taken_while_reports_are_signed_restores_whole(drill):
    from medai.platform.ops import backup as bk
    from medai.platform.ops.restore import restore
    from medai.platform.records.blobs import BlobStore
    from medai.platform.records.crypto import Cipher
    from medai.platform.records.db import migration_heads

    kind, app, client, home, tmp = drill
    url = str(app.state.platform.db.engine.url.render_as_string(hide_password=False))
    files = tmp / "files"
    files.mkdir()
    rad = bearer(client, "rad1")
    for n in range(3):  # the site before the backup
        _sign_one(client, rad, n, files)
    r = client.post(
        "/api/v1/triage",
        headers=bearer(client, "pat1"),
        json={"text": "Kızım nefes alamıyor, dudakları morardı"},
    )
    assert r.status_code == 200, r.text

    writer = Writer(client, rad, files, 100)
    writer.start()
    writer.wait_for(1)
    seen: dict = {}

    def progress(phase: str, done: int, total: int) -> None:
        # right after the database snapshot, before any file is copied: two more reports
        # signed (and their files stored) in that window
        if phase == "database" and done == 1 and "snapshot" not in seen:
            seen["snapshot"] = writer.signed
            writer.wait_for(writer.signed + 2)

    dest = tmp / "backup"
    before = writer.signed  # committed before the backup began: in its snapshot
    manifest = bk.backup(dest, _settings(home, url), progress)
    writer.wait_for(writer.signed + 1)  # and it goes on after the backup
    writer.stop.set()
    writer.join(300)
    assert writer.error is None, writer.error
    assert seen["snapshot"] >= 1

    on_disk = json.loads((dest / "manifest.json").read_text())
    assert on_disk["files"] == manifest["files"]
    assert manifest["database"]["engine"] == kind
    assert manifest["database"]["revision"] == ", ".join(migration_heads())
    counts = manifest["counts"]
    assert counts["signed_reports"] >= 3 + before
    assert manifest["missing"] == {"files": [], "models": []}
    key = (home / "secret.key").read_text().strip()
    assert (
        manifest["keys"]["needed"]
        == [backup_manifest.key_id(key)]
        == manifest["keys"]["configured"]
    )
    assert key not in json.dumps(manifest) and not list(dest.rglob("secret.key"))
    for relative, entry in manifest["files"].items():  # every file hashed, and nothing else
        assert backup_files.sha256_file(dest / relative) == (entry["sha256"], entry["size"])
    assert {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()} == {
        *manifest["files"],
        "manifest.json",
    }
    source = _rows(url)
    assert len(source["signed"]) > counts["signed_reports"]  # the site went on meanwhile

    # the wrong keys: refused naming the key, nothing written
    with empty_target(kind, tmp / "wrong") as wrong_url:
        (tmp / "wrong" / "secret.key").write_text(Fernet.generate_key().decode())
        with pytest.raises(backup_files.BackupError, match=backup_manifest.key_id(key)) as refused:
            restore(dest, _settings(tmp / "wrong", wrong_url))
        assert refused.value.code == "keys_missing"
        assert _tables(wrong_url) == [] and not (tmp / "wrong" / "blobs").exists()

    # the operator's copy of the key: everything the manifest counts is back, and decrypts
    with empty_target(kind, tmp / "restored") as target_url:
        shutil.copy(home / "secret.key", tmp / "restored" / "secret.key")
        out = restore(dest, _settings(tmp / "restored", target_url))
        assert out["checked"]["files_decrypted"] == out["checked"]["files_named"] > 0
        assert out["checked"]["sealed_values"] > 0 and out["migrated_to"] is None
        back = _rows(target_url)
        assert len(back["signed"]) == counts["signed_reports"]
        assert len(back["audit"]) == counts["audit_events"]
        assert len(back["studies"]) == counts["studies"]
        for rid, row in back["signed"].items():  # each as the site had it, text and all
            assert source["signed"][rid] == row
            assert row[2]["impression"].startswith("drill impression")
        for eid, event in back["audit"].items():
            assert source["audit"][eid] == event
        assert {e[0] for e in back["audit"].values()} >= {"upload", "sign"}
        store = BlobStore(tmp / "restored" / "blobs", Cipher([key]).blobs)
        for file_sha, display_sha, question in back["studies"].values():
            assert store.read(file_sha)  # decrypted, and its content is its name
            if display_sha:
                assert store.read(display_sha)
            assert question.startswith("öksürük")
        assert (tmp / "restored" / "restored-config" / "settings.json").is_file()

        # a target that holds a site is refused, and so is a backup over a backup
        with pytest.raises(backup_files.BackupError, match="not empty") as again:
            restore(dest, _settings(tmp / "restored", target_url))
        assert again.value.code == "target_not_empty"
    with pytest.raises(backup_files.BackupError) as over:
        bk.backup(dest, _settings(home, url))
    assert over.value.code == "destination_not_empty"


def _tables(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return inspect(conn).get_table_names()
    finally:
        engine.dispose()


def test_a_restore_refuses_a_damaged_backup_and_a_home_with_files(tmp_path, bare_site):
    """A file altered after the backup is named and nothing is restored; a home whose
    ``blobs`` hold a file is not a place to restore into."""
    from medai.platform.ops import backup as bk
    from medai.platform.ops.restore import restore

    home, url = bare_site
    dest = tmp_path / "b"
    manifest = bk.backup(dest, _settings(home, url))
    blob = next(p for p in manifest["files"] if p.startswith("blobs/"))
    data = bytearray((dest / blob).read_bytes())
    data[-1] ^= 1
    (dest / blob).write_bytes(bytes(data))
    target = tmp_path / "t"
    target.mkdir()
    shutil.copy(home / "secret.key", target / "secret.key")
    with pytest.raises(backup_files.BackupError, match="damaged") as damaged:
        restore(dest, _settings(target, f"sqlite:///{target / 'medai.db'}"))
    assert damaged.value.code == "backup_damaged"
    assert not [p for p in target.rglob("*") if p.is_file() and p.name != "secret.key"]

    (target / "blobs" / "ab").mkdir(parents=True)
    (target / "blobs" / "ab" / "x").write_bytes(b"1")
    with pytest.raises(backup_files.BackupError, match="already holds") as full:
        restore(dest, _settings(target, f"sqlite:///{target / 'medai.db'}"))
    assert full.value.code == "target_not_empty"


def _make_site(home: Path, url: str) -> None:
    """One stored file and a study naming it, made through the platform (home made current)."""
    from helpers.platform import use_home
    from medai.platform.access import accounts
    from medai.platform.boot import open_platform
    from medai.platform.worklist import filing
    from medai.services.model_handles import ModelHandles

    home.mkdir(exist_ok=True)
    use_home(home)
    p = open_platform(url, models=ModelHandles({}), adopt_models=False)
    sha = p.store.put_bytes(png_bytes(1))
    with p.db.session() as db:
        user = accounts.create_user(
            db, "rad", "correct-horse-1", "radiologist", hash_profile=p.settings.auth.password_hash
        )
        filing.create(
            db,
            Arrival(
                sha=sha,
                size=10,
                content_type="image/png",
                task="cxr",
                uploaded_by=user.id,
                question="öksürük 1",
            ),
        )
    p.db.dispose()


@pytest.fixture
def bare_site(tmp_path):
    """A SQLite site with one stored file and a study naming it."""
    home = tmp_path / "home"
    url = f"sqlite:///{home / 'medai.db'}"
    _make_site(home, url)
    return home, url


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_restore_whose_check_fails_leaves_the_target_empty(tmp_path, kind):
    """A value that does not decrypt after loading (here: one the manifest does not expect)
    takes the loaded database and the moved files away again: the target is empty for the
    next try, on both engines."""
    from medai.platform.ops import backup as bk
    from medai.platform.ops.restore import restore

    home = tmp_path / "home"
    with (
        empty_target(kind, tmp_path / "site-db")
        if kind == "postgresql"
        else _nothing(f"sqlite:///{home / 'medai.db'}")
    ) as url:
        _make_site(home, url)
        engine = create_engine(url)
        with engine.begin() as conn:  # sealed under a key nobody has
            conn.execute(
                text("UPDATE studies SET patient_name = :t"),
                {"t": Fernet(Fernet.generate_key()).encrypt(b"LOST^KEY")},
            )
        engine.dispose()
        bk.backup(tmp_path / "b", _settings(home, url))
    manifest_path = tmp_path / "b" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["keys"]["records"].pop("undecryptable")  # the manifest no longer expects it
    key = (home / "secret.key").read_text().strip()  # re-signed: an authentic manifest
    manifest_path.write_text(json.dumps(backup_manifest.sign_manifest(manifest, key)))
    with empty_target(kind, tmp_path / "t") as target_url:
        shutil.copy(home / "secret.key", tmp_path / "t" / "secret.key")
        with pytest.raises(backup_files.BackupError, match="1 of 2 sealed values") as failed:
            restore(tmp_path / "b", _settings(tmp_path / "t", target_url))
        assert failed.value.code == "keys_missing"
        assert "every key the backed-up site had is configured" in str(failed.value)
        if kind == "postgresql":
            assert _tables(target_url) == []
        else:
            assert not (tmp_path / "t" / "medai.db").exists()
        assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["secret.key"]


@contextmanager
def _nothing(value):
    yield value


def test_the_settings_kept_leave_every_secret_out():
    from medai.platform.ops.backup import settings_snapshot

    env = {
        "MEDAI_HOME": "/var/lib/medai",
        "MEDAI_DATABASE_URL": "postgresql://u:pw@db/m",
        "MEDAI_SECRET_KEYS": '["k"]',
        "MEDAI_SECRET_KEYS_FILE": "/run/secrets/keys",
        "MEDAI_LLM_API_KEY": "sk-1",
        "MEDAI_BROKER_URL": "redis://:pw@r/0",
        "MEDAI_ADMIN_PASSWORD_FILE": "/run/secrets/admin",
        "MEDAI_FHIR_TOKEN": "t",
        "MEDAI_DICOM_PORT": "104",
        "PATH": "/bin",
    }
    snap = settings_snapshot(env)
    assert snap["environment"] == {
        "MEDAI_HOME": "/var/lib/medai",
        "MEDAI_SECRET_KEYS_FILE": "/run/secrets/keys",
        "MEDAI_ADMIN_PASSWORD_FILE": "/run/secrets/admin",
        "MEDAI_DICOM_PORT": "104",
    }
    assert sorted(snap["secrets_left_out"]) == sorted(
        [
            "MEDAI_DATABASE_URL",
            "MEDAI_SECRET_KEYS",
            "MEDAI_LLM_API_KEY",
            "MEDAI_BROKER_URL",
            "MEDAI_FHIR_TOKEN",
        ]
    )
    assert "pw" not in json.dumps(snap) and "sk-1" not in json.dumps(snap)


def test_the_cli_backs_up_and_restores_with_stable_json(tmp_path, bare_site):
    """``medai backup DEST --json`` and ``medai restore SRC --json`` as an operator runs them
    (separate processes, the environment naming the home); the keys are named, not kept."""
    import os
    import subprocess
    import sys

    home, _url = bare_site
    env = {**os.environ, "MEDAI_HOME": str(home)}
    env.pop("MEDAI_DATABASE_URL", None)

    def medai(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "medai.cli", *args],
            capture_output=True,
            text=True,
            env={**env, **extra},
            timeout=300,
        )

    done = medai("backup", str(tmp_path / "b"), "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) >= {
        "backup",
        "format",
        "medai_version",
        "created_at",
        "database",
        "counts",
        "keys",
        "config",
        "missing",
        "seconds",
    }
    assert "files" not in out and out["counts"]["studies"] == 1
    key = (home / "secret.key").read_text().strip()
    assert key not in done.stdout + done.stderr
    human = medai("backup", str(tmp_path / "b2"))
    assert "keys are NOT in the backup" in human.stdout
    again = medai("backup", str(tmp_path / "b"), "--json")
    assert again.returncode == 2 and json.loads(again.stdout)["code"] == "destination_not_empty"

    target = tmp_path / "t"
    target.mkdir()
    refused = medai(
        "restore",
        str(tmp_path / "b"),
        "--json",
        MEDAI_HOME=str(target),
        MEDAI_SECRET_KEYS=json.dumps([Fernet.generate_key().decode()]),
    )
    assert refused.returncode == 2, refused.stderr
    assert json.loads(refused.stdout)["code"] == "keys_missing"
    assert out["keys"]["needed"][0] in json.loads(refused.stdout)["error"]
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# the operator's copy\n{key}\n")
    ids = medai("keys", "ids", "--json", MEDAI_HOME=str(target), MEDAI_SECRET_KEYS_FILE=str(keys))
    listed = json.loads(ids.stdout)  # the envelope's key; the empty target needs none yet
    assert listed["configured"] == listed["key_ids"] == out["keys"]["needed"]
    assert ids.returncode == 0 and listed["needed"] == [] and listed["status"] == "ok"
    done = medai(
        "restore",
        str(tmp_path / "b"),
        "--json",
        MEDAI_HOME=str(target),
        MEDAI_SECRET_KEYS_FILE=str(keys),
    )
    assert done.returncode == 0, done.stderr
    restored = json.loads(done.stdout)
    assert restored["counts"]["studies"] == 1 and restored["checked"]["files_decrypted"] == 1
    assert not (target / "secret.key").exists()  # no key made: the file's key was used
    with create_engine(f"sqlite:///{target / 'medai.db'}").connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM studies")).scalar_one() == 1


def test_a_value_already_undecryptable_at_the_site_is_carried_not_refused(tmp_path, bare_site):
    """A sealed value no key of the site opens (a key lost before the backup) is counted in
    the manifest; the restore reports the same count instead of refusing the whole site."""
    from medai.platform.ops import backup as bk
    from medai.platform.ops.restore import restore

    home, url = bare_site
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE studies SET patient_name = :t"),
            {"t": Fernet(Fernet.generate_key()).encrypt(b"LOST^KEY")},
        )
    engine.dispose()
    manifest = bk.backup(tmp_path / "b", _settings(home, url))
    assert manifest["keys"]["records"] == {
        backup_manifest.key_id((home / "secret.key").read_text().strip()): 1,
        "undecryptable": 1,
    }
    target = tmp_path / "t"
    target.mkdir()
    shutil.copy(home / "secret.key", target / "secret.key")
    out = restore(tmp_path / "b", _settings(target, f"sqlite:///{target / 'medai.db'}"))
    assert out["checked"]["undecryptable_at_backup"] == 1
    assert out["checked"]["sealed_values"] == 2
