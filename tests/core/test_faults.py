"""A read-only or full disk is named, not a bare 500 (issue 24 item 7): readiness takes a real
write to the database and the file storage and answers 503 with a code; every route answers a
storage fault with 503 and that code; the log says which path and why; nothing is half-written
(no study row without its file, no file left by an upload that got no row).

The faults are real where this machine can make them without root mounts: SQLite's own
read-only and full errors (``PRAGMA query_only``, ``PRAGMA max_page_count``), the kernel's
ENOSPC from /dev/full, a read-only PostgreSQL database, a 0500 folder (skipped as root, where
it stops nothing); a read-only file system is an EROFS injected where the store opens files."""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import event, func, select, text

from helpers.platform import bearer, clinic, png_bytes, wait_status

STORAGE = "medai.platform.records.blobs"


@pytest.fixture(params=["sqlite", "postgres"])
def env(request, tmp_path, tfidf_model_dir, tiny_imaging_dir):
    with clinic(
        request.param, tmp_path / "home", tfidf_model_dir, tiny_imaging_dir, job_threads=0
    ) as (app, client):
        yield app, client, bearer(client, "rad1")


@pytest.fixture
def sqlite_env(tmp_path, tfidf_model_dir, tiny_imaging_dir):
    with clinic("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir, job_threads=0) as (
        app,
        client,
    ):
        yield app, client, bearer(client, "rad1")


def _files(app) -> set[str]:
    root = app.state.platform.store.root
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _studies(app) -> int:
    from medai.platform.records.tables import Study

    with app.state.platform.db.reader() as db:
        return db.scalar(select(func.count()).select_from(Study))


def _upload(client, headers, seed: int):
    return client.post(
        "/api/v1/studies",
        headers=headers,
        data={"task": "cxr"},
        files={"file": ("x.png", png_bytes(seed), "image/png")},
    )


def _fault_logged(caplog, *needles: str) -> str:
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    hits = [line for line in lines if all(n in line for n in needles)]
    assert hits, lines
    return hits[0]


@contextmanager
def _on_every_connection(app, pragma_for):
    """Every new database connection runs ``pragma_for(dbapi_conn)``: SQLite's own read-only
    or full errors, raised by SQLite for every write that follows."""
    engine = app.state.platform.db.engine

    def connect(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute(pragma_for(dbapi_conn))
        cur.close()

    engine.dispose()
    event.listen(engine, "connect", connect)
    try:
        yield
    finally:
        event.remove(engine, "connect", connect)
        engine.dispose()


@contextmanager
def read_only_database(app):
    db = app.state.platform.db
    if db.is_sqlite:
        with _on_every_connection(app, lambda _c: "PRAGMA query_only=ON"):
            yield
        return
    name = db.engine.url.database
    admin = db.engine.execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
    db.engine.dispose()
    try:
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(text("SET default_transaction_read_only = off"))
            conn.execute(text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only'))
        db.engine.dispose()


def _page_count(dbapi_conn) -> str:
    cur = dbapi_conn.cursor()
    pages = cur.execute("PRAGMA page_count").fetchone()[0]
    cur.close()
    return f"PRAGMA max_page_count={pages}"


def test_a_writable_platform_is_ready(env):
    _app, client, _ = env
    r = client.get("/api/v1/health/ready")
    assert r.status_code == 200, r.text
    assert r.json()["database"] == {"ready": True} and r.json()["storage"] == {"ready": True}


def test_a_read_only_database_is_named_and_leaves_no_file(env, caplog):
    app, client, rad = env
    assert _upload(client, rad, 0).status_code == 201
    files, studies = _files(app), _studies(app)
    where = app.state.platform.db.label
    with caplog.at_level(logging.ERROR, logger="medai"), read_only_database(app):
        r = client.get("/api/v1/health/ready")
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["code"] == "storage_read_only" and body["detail"]
        assert body["database"] == {
            "ready": False,
            "error": "StorageFault",
            "code": "storage_read_only",
        }
        assert body["storage"] == {"ready": True}
        line = _fault_logged(caplog, "readiness", where, "read-only")

        r = _upload(client, rad, 1)  # a new file: stored, then its row refused
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "storage_read_only"
        assert r.headers["retry-after"]
        assert "x-request-id" in r.headers
        line = _fault_logged(caplog, "storage fault", where, "read-only", "POST /api/v1/studies")
    assert "x.png" not in line
    assert _studies(app) == studies
    assert _files(app) == files  # the file of the refused row went with it
    assert client.get("/api/v1/health/ready").status_code == 200  # and back when writable


def test_a_full_sqlite_database_is_named_and_leaves_no_file(sqlite_env, caplog):
    """The database file may not grow (``max_page_count``) and its free pages are filled:
    SQLite's own "database or disk is full" — uploads go on until theirs is the write that
    needs a new page, and that one is refused whole."""
    from medai.core.faults import StorageFault

    app, client, rad = sqlite_env
    engine = app.state.platform.db.engine
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE filler (x BLOB)"))
    with caplog.at_level(logging.ERROR, logger="medai"), _on_every_connection(app, _page_count):
        for size in (4096, 512):
            with pytest.raises(StorageFault, match="no space"):
                while True:
                    with engine.begin() as conn:
                        conn.execute(text(f"INSERT INTO filler VALUES (randomblob({size}))"))
        for seed in range(10, 60):
            files, studies = _files(app), _studies(app)
            r = _upload(client, rad, seed)
            if r.status_code != 201:
                break
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "storage_full"
        _fault_logged(caplog, "storage fault", app.state.platform.db.label, "no space")
    assert _studies(app) == studies and _files(app) == files


def _read_only_fs(monkeypatch, app) -> None:
    """The blob folder's file system turned read-only: every file the store opens fails
    with EROFS, as the kernel answers on a read-only mount."""
    real = tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        fd, name = real(*args, **kwargs)
        os.close(fd)
        os.unlink(name)
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), name)

    monkeypatch.setattr(f"{STORAGE}.tempfile.mkstemp", mkstemp)


def _chmod_0500(monkeypatch, app) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into a 0500 folder: the injected EROFS case covers it")
    app.state.platform.store.root.chmod(0o500)  # the test makes it 0700 again


@pytest.mark.parametrize(
    "fault,code,reason",
    [(_read_only_fs, "storage_read_only", "read-only"), (_chmod_0500, "storage_denied", "denied")],
)
def test_an_unwritable_blob_folder_is_named_and_leaves_no_row(
    sqlite_env, monkeypatch, caplog, fault, code, reason
):
    app, client, rad = sqlite_env
    root = app.state.platform.store.root
    studies, files = _studies(app), _files(app)
    with caplog.at_level(logging.ERROR, logger="medai"):
        fault(monkeypatch, app)
        try:
            r = client.get("/api/v1/health/ready")
            assert r.status_code == 503, r.text
            assert r.json()["code"] == code
            assert r.json()["storage"]["code"] == code
            assert r.json()["database"] == {"ready": True}
            _fault_logged(caplog, "readiness", str(root), reason)

            r = _upload(client, rad, 3)
            assert r.status_code == 503, r.text
            assert r.json()["code"] == code
            _fault_logged(caplog, "storage fault", str(root), reason, "POST /api/v1/studies")
        finally:
            root.chmod(0o700)
    assert _studies(app) == studies and _files(app) == files


def test_a_full_disk_is_named_and_leaves_nothing(sqlite_env, monkeypatch, caplog):
    """Every file the store writes is /dev/full: the kernel's own ENOSPC, mid-write."""
    app, client, rad = sqlite_env
    root: Path = app.state.platform.store.root
    _dev_full(monkeypatch)
    studies, files = _studies(app), _files(app)
    with caplog.at_level(logging.ERROR, logger="medai"):
        r = client.get("/api/v1/health/ready")
        assert r.status_code == 503 and r.json()["code"] == "storage_full", r.text
        _fault_logged(caplog, "readiness", str(root), "no space", "ENOSPC")
        r = _upload(client, rad, 4)
        assert r.status_code == 503 and r.json()["code"] == "storage_full", r.text
        _fault_logged(caplog, "storage fault", str(root), "no space", "ENOSPC")
    assert _studies(app) == studies
    assert _files(app) == files  # no half-written temporary file either


def _dev_full(monkeypatch) -> None:
    real = tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        fd, name = real(*args, **kwargs)
        os.dup2(full := os.open("/dev/full", os.O_WRONLY), fd)
        os.close(full)
        return fd, name

    monkeypatch.setattr(f"{STORAGE}.tempfile.mkstemp", mkstemp)


def test_a_background_analysis_on_a_full_disk_logs_which_path_and_why(
    sqlite_env, monkeypatch, caplog
):
    """The upload is stored; then the disk fills: the analysis cannot store its rendition or
    heatmap, and its failure is logged with the path and the reason, not only a type."""
    from medai.platform.jobs.jobs import MAX_ATTEMPTS, JobPool

    app, client, rad = sqlite_env
    sid = _upload(client, rad, 5).json()["id"]
    _dev_full(monkeypatch)
    pool = JobPool(app.state.platform, 1, lease_s=30, poll_s=0.05)
    with caplog.at_level(logging.ERROR, logger="medai"):
        pool.start()
        try:
            wait_status(client, rad, sid, {"failed", "ai_drafted"})
        finally:
            pool.stop()
    root = str(app.state.platform.store.root)
    lines = [r.getMessage() for r in caplog.records if "job" in r.getMessage()]
    assert len(lines) == MAX_ATTEMPTS, lines
    assert all(root in line and "no space left (ENOSPC)" in line for line in lines), lines


def test_a_database_already_migrated_starts_read_only_and_reports_it(tmp_path):
    from medai.core.faults import StorageFault
    from medai.platform.records.db import Database

    url = f"sqlite:///{tmp_path / 'medai.db'}"
    Database(url).upgrade()
    db = Database(url)

    def read_only(dbapi_conn, _record):
        dbapi_conn.execute("PRAGMA query_only=ON")

    event.listen(db.engine, "connect", read_only)
    db.upgrade()  # at the newest migration: only read
    db.check()
    with pytest.raises(StorageFault) as info:
        db.check_writable()
    assert info.value.code == "storage_read_only" and str(tmp_path) in info.value.where
    db.dispose()


class _PgError(Exception):
    """What psycopg raises, as far as ``classify`` looks: a SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__("could not extend file: No space left on device")
        self.sqlstate = sqlstate


class _Wrapped(Exception):
    def __init__(self, orig: BaseException) -> None:
        super().__init__("wrapped")
        self.orig = orig


@pytest.mark.parametrize(
    "exc,code",
    [
        (OSError(errno.EROFS, "Read-only file system", "/srv/medai/blobs/x"), "storage_read_only"),
        (OSError(errno.ENOSPC, "No space left on device"), "storage_full"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "storage_full"),
        (PermissionError(errno.EACCES, "Permission denied", "/srv"), "storage_denied"),
        (OSError(errno.EIO, "Input/output error"), "storage_io_error"),
        (_Wrapped(_PgError("53100")), "storage_full"),
        (_Wrapped(_PgError("25006")), "storage_read_only"),
        (_Wrapped(_PgError("08006")), "database_unavailable"),
        (_Wrapped(_PgError("23505")), None),  # a unique violation is no storage fault
        (ConnectionResetError(errno.ECONNRESET, "reset"), None),
        (FileNotFoundError(errno.ENOENT, "missing", "/srv/x"), None),
        (ValueError("ZZMARKER"), None),
    ],
)
def test_faults_are_classified_by_errno_sqlite_code_and_sqlstate(exc, code):
    from medai.core.faults import classify

    fault = classify(exc, "database postgresql://db/medai")
    assert (fault.code if fault else None) == code
    if fault is not None and isinstance(exc, OSError) and exc.filename:
        assert fault.where == exc.filename


def test_a_missing_blob_is_named_on_every_route_that_reads_it(
    tmp_path, tfidf_model_dir, tiny_imaging_dir, caplog
):
    """Issue 45 (7): a study's file deleted from MEDAI_HOME/blobs (by hand, or a backup restored
    without its files) answers 503 ``storage_missing`` on the image, the heatmap and the PDF
    alike (it was a bare 500), logs which file and which study (never the patient's text), and
    leaves readiness as it was: the disk itself is fine."""
    from medai.platform.records.tables import Study

    with clinic("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as (app, client):
        rad = bearer(client, "rad1")
        sid = client.post(
            "/api/v1/studies",
            headers=rad,
            data={"task": "cxr", "clinical_question": "ZZPATIENT göğüs ağrısı"},
            files={"file": ("x.png", png_bytes(3), "image/png")},
        ).json()["id"]
        wait_status(client, rad, sid, {"ai_drafted"})
        with app.state.platform.db.reader() as db:
            display = db.get(Study, sid).display_sha256
        for path in app.state.platform.store.root.rglob("*"):
            if path.is_file():
                path.unlink()
        caplog.set_level(logging.ERROR, logger="medai.server")
        for route in ("image", "heatmap", "report/pdf"):
            r = client.get(f"/api/v1/studies/{sid}/{route}", headers=rad)
            assert r.status_code == 503, (route, r.status_code, r.text)
            assert r.json()["code"] == "storage_missing" and "missing" in r.json()["detail"]
            assert r.headers["retry-after"]
        line = _fault_logged(caplog, "missing", f"study_id={sid}")
        assert display[:12] in line and "ZZPATIENT" not in caplog.text
        ready = client.get("/api/v1/health/ready")
        assert ready.status_code == 200 and ready.json()["storage"] == {"ready": True}


def test_a_missing_blob_is_still_a_file_not_found_for_its_callers(tmp_path):
    """The store's callers that expect ``FileNotFoundError`` (a delivery that cannot be built,
    a blob discarded while it is read) still get one."""
    from cryptography.fernet import Fernet

    from medai.core.faults import StorageFault, classify
    from medai.platform.records.blobs import BlobStore
    from medai.platform.records.crypto import BlobCipher

    store = BlobStore(tmp_path / "blobs", BlobCipher([Fernet.generate_key().decode()]))
    sha = store.put_bytes(b"image")
    store.path(sha).unlink()
    with pytest.raises(FileNotFoundError) as caught:
        store.read(sha)
    assert isinstance(caught.value, StorageFault) and caught.value.code == "storage_missing"
    assert classify(caught.value) is caught.value and sha in caught.value.where
    assert store.put_bytes(b"image") == sha and store.read(sha) == b"image"
