"""The file store shared by several writers (nodes on one ReadWriteMany volume): a blob is
synced before it is renamed into place and its folder after; processes storing the same
content at once leave one readable blob and no temporary file; a failed upload's discard and a
twin upload filing the same content hold one database lock, so a filed study never loses its
file (SQLite and the real local PostgreSQL)."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import stat
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from helpers.platform import database_url, png_bytes
from medai.platform.dicom.arrival import Arrival

KEY = Fernet.generate_key().decode()
CONTENTS = [f"study {i} ".encode() * (200 + 37 * i) for i in range(24)]


def _writer(root: str, key: str, start, out) -> None:
    """One process (a node): wait for the start, then store every content."""
    from medai.platform.records.blobs import BlobStore
    from medai.platform.records.crypto import BlobCipher

    store = BlobStore(root, BlobCipher([key]))
    start.wait(60)
    created = []
    for data in CONTENTS:
        sha = hashlib.sha256(data).hexdigest()
        created.append(store._commit(store._write_temp(data), sha))
    out.put(created)


def test_processes_storing_the_same_content_at_once_leave_one_readable_blob(tmp_path):
    from medai.platform.records.blobs import BlobStore
    from medai.platform.records.crypto import BlobCipher

    root = tmp_path / "blobs"
    BlobStore(root, BlobCipher([KEY]))
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(root), KEY, start, out)) for _ in range(3)]
    for proc in procs:
        proc.start()
    start.set()
    results = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    # each content was created by exactly one writer; the others kept its copy
    assert [sum(r[i] for r in results) for i in range(len(CONTENTS))] == [1] * len(CONTENTS)
    store = BlobStore(root, BlobCipher([KEY]))
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert [p.name for p in files] == sorted(hashlib.sha256(d).hexdigest() for d in CONTENTS)
    for data in CONTENTS:
        assert store.read(hashlib.sha256(data).hexdigest()) == data
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)


def test_a_blob_is_synced_before_its_rename_and_its_folder_after(tmp_path, monkeypatch):
    from medai.platform.records import blobs
    from medai.platform.records.crypto import BlobCipher

    store = blobs.BlobStore(tmp_path / "blobs", BlobCipher([KEY]))
    calls: list[tuple[str, str]] = []
    real_fsync, real_link, real_replace = os.fsync, os.link, os.replace

    def fsync(fd: int) -> None:
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        where = os.readlink(f"/proc/self/fd/{fd}")
        calls.append((f"fsync-{kind}", where))
        real_fsync(fd)

    def link(src, dst, **kw) -> None:
        calls.append(("link", str(dst)))
        real_link(src, dst, **kw)

    def replace(src, dst, **kw) -> None:
        calls.append(("replace", str(dst)))
        real_replace(src, dst, **kw)

    monkeypatch.setattr(blobs.os, "fsync", fsync)
    monkeypatch.setattr(blobs.os, "link", link)
    monkeypatch.setattr(blobs.os, "replace", replace)  # os itself: crypto's fsync too
    sha = store.put_bytes(b"a radiograph")
    final = store.path(sha)
    kinds = [c[0] for c in calls]
    placed = kinds.index("link")
    assert calls[placed] == ("link", str(final))
    assert "fsync-file" in kinds[:placed]  # the whole file is on disk before it has a name
    assert ("fsync-dir", str(final.parent)) in calls[placed:]  # and so is its name after
    assert not [p for p in store.root.iterdir() if p.name.startswith(".upload-")]
    # a damaged copy is replaced the same way: synced, renamed, folder synced
    final.write_bytes(b"damaged")
    calls.clear()
    assert store.put_bytes(b"a radiograph") == sha and store.read(sha) == b"a radiograph"
    kinds = [c[0] for c in calls]
    assert kinds.index("fsync-file") < kinds.index("replace") < len(kinds) - 1
    assert calls[-1] == ("fsync-dir", str(final.parent))


def _platform(url: str, home: Path):
    from medai.platform.records.blobs import BlobStore
    from medai.platform.records.crypto import BlobCipher
    from medai.platform.records.db import Database

    db = Database(url)
    db.upgrade()
    return SimpleNamespace(db=db, store=BlobStore(home / "blobs", BlobCipher([KEY])))


def _user(p):
    from sqlalchemy import select

    from medai.platform.access import accounts
    from medai.platform.records.tables import User
    from medai.settings import get_settings

    with p.db.session() as db:
        if (user := db.scalar(select(User))) is None:
            user = accounts.create_user(
                db,
                "uploader",
                "correct-horse-1",
                "radiologist",
                hash_profile=get_settings().auth.password_hash,
            )
        return user.id


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_discard_waits_for_a_twin_upload_filing_the_same_file(kind, tmp_path):
    """Host A stored a file and its upload failed; host B, uploading the same bytes, found the
    file there and is filing its study. A's discard must not remove the file under B's row:
    it waits for B's transaction and then sees the row."""
    from medai.platform.records.tables import Study, User
    from medai.platform.worklist import filing, held_blobs

    with database_url(kind, tmp_path) as url:
        p = _platform(url, tmp_path)
        try:
            uid = _user(p)
            data = png_bytes(7)
            sha = p.store.put_bytes(data)
            held, filed = threading.Event(), threading.Event()
            errors: list[BaseException] = []

            def file_twin() -> None:
                try:
                    with p.db.session() as db:
                        held_blobs.hold_blob(db, p.store, sha)
                        filing.create(
                            db,
                            Arrival(
                                sha=sha,
                                size=len(data),
                                content_type="image/png",
                                task="cxr",
                                uploaded_by=db.get(User, uid).id,
                            ),
                        )
                        held.set()
                        assert filed.wait(60)  # commits only once the discard has started
                except BaseException as exc:
                    errors.append(exc)
                    held.set()

            twin = threading.Thread(target=file_twin)
            twin.start()
            assert held.wait(60) and not errors
            discard = threading.Thread(
                target=held_blobs.discard_unnamed, args=(p, sha, "a failed upload")
            )
            discard.start()
            if kind == "postgresql":  # the discard is waiting on the file's lock
                _wait_for_advisory_lock_wait(p)
            else:  # SQLite: it waits for the write lock (busy_timeout); give it its chance
                discard.join(1.0)
            filed.set()
            twin.join(60)
            discard.join(60)
            assert not errors and not discard.is_alive()
            assert p.store.read(sha) == data
            with p.db.session() as db:
                assert db.scalar(select(Study.id).where(Study.file_sha256 == sha))
        finally:
            p.db.dispose()


def _wait_for_advisory_lock_wait(p) -> None:
    import time

    from sqlalchemy import text

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with p.db.engine.connect() as conn:
            if conn.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            ).scalar():
                return
        time.sleep(0.02)
    raise AssertionError("the discard never waited for the file's lock")


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_study_is_not_filed_when_its_file_was_discarded_first(kind, tmp_path):
    """The other order: the failed upload's discard ran first, so the twin finds the file
    gone under the lock and is refused (a 503 / Out of Resources the sender retries) instead
    of filing a study whose file is missing."""
    from medai.core.faults import StorageMissing
    from medai.platform.records.tables import Study, User
    from medai.platform.worklist import filing, held_blobs

    with database_url(kind, tmp_path) as url:
        p = _platform(url, tmp_path)
        try:
            uid = _user(p)
            sha = p.store.put_bytes(png_bytes(8))
            held_blobs.discard_unnamed(p, sha, "a failed upload")
            assert not p.store.exists(sha)
            with pytest.raises(StorageMissing), p.db.session() as db:
                held_blobs.hold_blob(db, p.store, sha)
                filing.create(
                    db,
                    Arrival(
                        sha=sha,
                        size=1,
                        content_type="image/png",
                        task="cxr",
                        uploaded_by=db.get(User, uid).id,
                    ),
                )
            with p.db.session() as db:
                assert db.scalar(select(Study.id)) is None
        finally:
            p.db.dispose()


def test_a_discard_keeps_a_file_a_row_names(tmp_path):
    from medai.platform.records.tables import User
    from medai.platform.worklist import filing, held_blobs

    with database_url("sqlite", tmp_path) as url:
        p = _platform(url, tmp_path)
        uid = _user(p)
        sha = p.store.put_bytes(b"named")
        with p.db.session() as db:
            held_blobs.hold_blob(db, p.store, sha)
            filing.create(
                db,
                Arrival(
                    sha=sha,
                    size=5,
                    content_type="image/png",
                    task="cxr",
                    uploaded_by=db.get(User, uid).id,
                ),
            )
        held_blobs.discard_unnamed(p, sha, "a failed upload")
        assert p.store.read(sha) == b"named"
        p.db.dispose()
