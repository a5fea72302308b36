"""What several nodes on one PostgreSQL database need beyond one process (docs/deploy/
several-nodes.md): the first start of many processes at once registers each bundled model once
and none of them dies of the race; a study's display rendition made on two nodes at once is
one; the generated key and registered model copies are synced before they get their names.
The two-node kill test itself is `make two-node-check` (deploy/two-node/run.py)."""

from __future__ import annotations

import os
import stat
import threading
import time
from types import SimpleNamespace

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from helpers.platform import png_bytes, postgres_database
from medai.platform.dicom.arrival import Arrival


def _waiting_for_a_lock(engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar())


def _poll(check, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError("condition never met")


def test_a_sibling_registering_the_same_model_at_the_same_moment_is_read_not_fatal(
    tmp_path, monkeypatch
):
    """serve, worker and DICOM node of two nodes start at once on a fresh PostgreSQL: each
    finds no registered model and inserts the bundled one; all but one insert fail on the
    unique (task, content hash). That failure must make the process read the winner's row,
    not crash at start (a failed PostgreSQL transaction cannot be committed)."""
    from medai.core import model_dir as model_dirs
    from medai.platform.boot import open_platform
    from medai.platform.lifecycle import model_registry, serving
    from medai.settings import get_settings

    monkeypatch.setenv("MEDAI_HOME", str(tmp_path))
    get_settings.cache_clear()
    with postgres_database() as url:
        p = open_platform(url, home=tmp_path, adopt_models=False)
        configured = model_dirs.bundled_models_dir() / "triage-default"
        real_store = model_registry.model_store.store
        raced = []

        def store(*args, **kwargs):  # after the look-ups, before the insert: the sibling wins
            if not raced:
                raced.append(True)
                with p.db.session() as other:
                    model_registry.register(
                        other,
                        p.home,
                        configured,
                        serving.SYSTEM,
                        task="triage",
                        source="bundled",
                        state="active",
                        reason="sibling",
                    )
            return real_store(*args, **kwargs)

        monkeypatch.setattr(model_registry.model_store, "store", store)
        try:
            row = serving._adopt_task(p, "triage", configured)
            assert raced and row is not None and row.state == "active"
            with p.db.session() as db:
                assert len(model_registry.listing(db, task="triage")) == 1
        finally:
            p.db.dispose()


def test_two_nodes_making_a_display_rendition_at_once_agree_on_one(tmp_path):
    """Node A is storing its rendition of a study (its row locked, not yet committed) when
    node B makes one too: B waits for A's and returns it, instead of overwriting it."""
    from medai.platform.access import accounts
    from medai.platform.reading import analysis
    from medai.platform.records.blobs import BlobStore
    from medai.platform.records.crypto import BlobCipher
    from medai.platform.records.db import Database
    from medai.platform.records.tables import Study
    from medai.platform.worklist import filing
    from medai.settings import get_settings

    with postgres_database() as url:
        db = Database(url)
        db.upgrade()
        p = SimpleNamespace(
            db=db, store=BlobStore(tmp_path / "blobs", BlobCipher([Fernet.generate_key().decode()]))
        )
        try:
            with db.session() as s:
                user = accounts.create_user(
                    s,
                    "uploader",
                    "correct-horse-1",
                    "radiologist",
                    hash_profile=get_settings().auth.password_hash,
                )
                sha = p.store.put_bytes(png_bytes(1))
                study, _ = filing.create(
                    s,
                    Arrival(
                        sha=sha, size=1, content_type="image/png", task="cxr", uploaded_by=user.id
                    ),
                )
                sid = study.id
            first = p.store.put_bytes(png_bytes(2))
            got: list[str] = []
            with db.session() as node_a:
                row = node_a.get(Study, sid, with_for_update=True)
                row.display_sha256 = first
                node_a.flush()
                node_b = threading.Thread(
                    target=lambda: got.append(analysis.keep_display(p, sid, png_bytes(3)))
                )
                node_b.start()
                _poll(lambda: _waiting_for_a_lock(db.engine))
            node_b.join(60)
            assert got == [first]
            with db.session() as s:
                assert s.get(Study, sid).display_sha256 == first
        finally:
            db.dispose()


def test_the_generated_key_is_synced_before_it_gets_its_name(tmp_path, monkeypatch):
    from medai.platform.records import crypto

    calls: list[str] = []
    real_fsync, real_link = os.fsync, os.link

    def fsync(fd: int) -> None:
        calls.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        real_fsync(fd)

    def link(src, dst, **kw) -> None:
        calls.append("link")
        real_link(src, dst, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "link", link)
    keys = crypto._key_file(tmp_path)
    assert calls == ["fsync-file", "link", "fsync-dir"]
    assert crypto._key_file(tmp_path) == keys  # made once, then read
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".secret-")]


def test_a_registered_model_copy_is_synced_before_it_is_renamed_into_place(tmp_path, monkeypatch):
    from medai.core import model_dir as model_dirs
    from medai.core.results import directory_hash
    from medai.platform.lifecycle import model_store

    source = model_dirs.bundled_models_dir() / "triage-extended"
    files = sum(1 for p in source.rglob("*") if p.is_file())
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        real_fsync(fd)

    def replace(src, dst, **kw) -> None:
        calls.append("replace")
        real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    content_hash = directory_hash(source)
    relative = model_store.store(tmp_path, source, content_hash, "triage-extended")
    assert directory_hash(tmp_path / relative) == content_hash
    placed = calls.index("replace")
    assert calls[:placed].count("fsync-file") == files and "fsync-dir" in calls[:placed]
    assert calls[placed + 1 :] == ["fsync-dir"]


@pytest.fixture(autouse=True)
def _fresh_settings():
    yield
    from medai.platform.records.crypto import cipher
    from medai.settings import get_settings

    get_settings.cache_clear()
    cipher.cache_clear()


def test_workers_on_two_nodes_checking_a_model_at_once_raise_one_alert(monkeypatch):
    """Two workers finish studies of one model at the same moment and both find a drift
    threshold crossed: one alert is raised (and one webhook), not one per worker. The second
    keeps its study's sample first (``monitoring.observe``), then checks."""
    from medai.platform.lifecycle import monitoring
    from medai.platform.records.db import Database
    from medai.platform.records.tables import MonitorAlert, MonitorSample
    from medai.settings import get_settings

    with postgres_database() as url:
        db = Database(url)
        db.upgrade()
        p = SimpleNamespace(db=db, settings=get_settings())
        inside, go = threading.Event(), threading.Event()
        real_record = monitoring.audit.record

        def conditions(_db, task, model_hash, _thresholds):
            return (
                {("psi", "mean_intensity"): {"value": 0.9, "threshold": 0.25}},
                {"window_n": 50},
            )

        def record(*args, **kwargs):  # the first checker holds here: its alert inserted,
            if not inside.is_set():  # not committed, while the second checker runs
                inside.set()
                go.wait(60)
            return real_record(*args, **kwargs)

        monkeypatch.setattr(monitoring, "conditions", conditions)
        monkeypatch.setattr(monitoring.audit, "record", record)
        try:
            first = threading.Thread(target=monitoring.check, args=(p, "cxr", "sha256:x"))
            first.start()
            assert inside.wait(60)
            # a worker finishing a study: its sample kept, then the same check
            second = threading.Thread(
                target=monitoring.observe,
                args=(p, None, "cxr", "sha256:x", {"findings": [], "decision": {}}),
            )
            second.start()
            try:  # the second checker waits for the first's lock (none before the fix)
                _poll(lambda: _waiting_for_a_lock(db.engine), timeout=5)
            except AssertionError:
                pass
            go.set()
            first.join(60)
            second.join(60)
            with db.session() as s:
                assert s.query(MonitorAlert).count() == 1
                assert s.query(MonitorSample).count() == 1
        finally:
            db.dispose()


def test_the_sweeper_republishes_a_dead_workers_job_ahead_of_the_backlog(tmp_path, monkeypatch):
    """A node dies while its worker holds a job: after the lease, any serve replica's sweeper
    publishes it again as urgent (measured before: a plain republish waited behind the whole
    backlog, 90 s in the two-node run, instead of about a lease); jobs under a live lease are
    left alone, queued ones republished as they were."""
    from datetime import timedelta

    from medai.platform.access import accounts
    from medai.platform.app import sweep_once
    from medai.platform.jobs import queue
    from medai.platform.records.db import Database, utcnow
    from medai.platform.records.tables import Job
    from medai.platform.worklist import filing
    from medai.settings import get_settings

    db = Database(f"sqlite:///{tmp_path / 'medai.db'}")
    db.upgrade()
    p = SimpleNamespace(db=db)
    with db.session() as s:
        user = accounts.create_user(
            s,
            "uploader",
            "correct-horse-1",
            "radiologist",
            hash_profile=get_settings().auth.password_hash,
        )
        jobs = [
            filing.create(
                s,
                Arrival(
                    sha=f"{i:064x}",
                    size=1,
                    content_type="image/png",
                    task="cxr",
                    uploaded_by=user.id,
                ),
            )[1].id
            for i in range(3)
        ]
        dead, alive, queued = (s.get(Job, j) for j in jobs)
        dead.status, dead.lease_until = "running", utcnow() - timedelta(seconds=1)
        alive.status, alive.lease_until = "running", utcnow() + timedelta(seconds=60)
    sent: list[tuple[int, bool]] = []
    monkeypatch.setattr(
        queue,
        "publish",
        lambda broker, study_id, job_id, urgent, queue="cpu": sent.append((job_id, urgent)),
    )
    try:
        assert sorted(sweep_once(p, "redis://unused")) == sorted([dead.id, queued.id])
        assert sorted(sent) == sorted([(dead.id, True), (queued.id, False)])
    finally:
        db.dispose()
