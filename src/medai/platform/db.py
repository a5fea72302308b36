"""The database: one engine per URL, sessions, and migrations run on start.

SQLite (a file under ``MEDAI_HOME``) is the embedded default so that ``make run`` needs
nothing else; PostgreSQL by ``MEDAI_DATABASE_URL``. The schema is owned by Alembic migrations
(``platform/migrations``), never by ``create_all``, so an upgrade of medai upgrades a hospital's
database the same way on both.

A database that cannot write (read-only or full disk, a read-only PostgreSQL) raises
``core.faults.StorageFault`` naming the database, whatever statement hit it, so the API answers
503 with a code and the log says which database and why. The SQLite file (and so its -wal and
-shm, which SQLite creates with the database's mode) is 0600.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from medai.core.faults import classify
from medai.platform.storage import private_dir, private_file

MIGRATIONS = Path(__file__).parent / "migrations"


class Base(DeclarativeBase):
    pass


def utcnow() -> datetime:
    """Naive UTC (both SQLite and PostgreSQL ``timestamp`` columns store it alike)."""
    return datetime.now(UTC).replace(tzinfo=None)


def default_url() -> str:
    from medai.settings import get_settings

    settings = get_settings()
    if settings.database_url:
        return settings.database_url
    private_dir(settings.home)
    return f"sqlite:///{settings.home / 'medai.db'}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    dbapi_conn.isolation_level = None  # transactions begin in _sqlite_begin, not in the driver
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    # WAL + NORMAL: a crash of medai never corrupts or loses a committed transaction; a power
    # cut may lose the last few (SQLite's documented trade-off; use PostgreSQL for more)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn) -> None:
    """Take the write lock when a transaction starts: a read-then-write transaction (sign a
    version) then waits for another writer instead of failing with "database is locked".
    Read-only sessions (``Database.reader``) begin deferred and never wait for writers."""
    read_only = conn.get_execution_options().get("medai_read_only")
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory ones)."""
    parsed = make_url(url)
    name = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or name in ("", ":memory:") \
            or name.startswith("file:"):
        return None
    return Path(name)


def _private_sqlite(path: Path) -> None:
    """Create the database file 0600 before SQLite does (it would make it 0644, and its
    -wal/-shm after it), and tighten what an older version left."""
    if not path.exists():
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            pass
        except OSError:
            return  # SQLite will report it, named, on first use
    for suffix in ("", "-wal", "-shm", "-journal"):
        private_file(path.with_name(path.name + suffix))


def _name_faults(where: str):
    def handle_error(context) -> None:
        fault = classify(context.original_exception, where)
        if fault is not None:
            raise fault from context.original_exception
    return handle_error


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is not None:
            _private_sqlite(path)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    event.listen(engine, "handle_error", _name_faults(describe(url)))
    return engine


def describe(url: str) -> str:
    """What a log line may say about a database: its file, or its address without password."""
    path = sqlite_path(url)
    if path is not None:
        return f"database {path}"
    return "database " + make_url(url).render_as_string(hide_password=True)


MIGRATION_LOCK_KEY = 0x6D65646169  # "medai": the PostgreSQL advisory lock migrations take
COUNTER_LOCK_SPACE = 0x6D6564  # "med": first key of the advisory locks ``lock_key`` takes


def lock_key(db: Session, key: str) -> None:
    """Serialise, until this transaction ends, every transaction that locks the same ``key``:
    a check-then-count (a throttle, a quota) is then atomic. PostgreSQL: a transaction-scoped
    advisory lock on the key's hash (a collision only makes two keys wait for each other);
    SQLite: nothing to do, a write session already holds the database's write lock from its
    first statement (``_sqlite_begin``: BEGIN IMMEDIATE)."""
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SELECT pg_advisory_xact_lock(:space, hashtext(:key))"),
                   {"space": COUNTER_LOCK_SPACE, "key": key})


class DatabaseLocationError(ValueError):
    """A SQLite database whose folder does not exist: named at start, not a traceback from
    the driver."""


def check_location(url: str) -> None:
    """Raise ``DatabaseLocationError`` when a SQLite file's folder does not exist (medai makes
    the file, not the folders above it: a typo in the URL should not make a tree)."""
    path = sqlite_path(url)
    if path is not None and not path.parent.is_dir():
        raise DatabaseLocationError(
            f"the folder of the SQLite database {path} does not exist ({path.parent}); create "
            "it, or set MEDAI_DATABASE_URL to a file in an existing folder")


class Database:
    """An engine and its session factory. ``session()`` commits on success and rolls back on
    any error, so a route or a job never leaves half a change behind."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        check_location(self.url)
        self.label = describe(self.url)
        self.engine = make_engine(self.url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.readers = sessionmaker(self.engine.execution_options(medai_read_only=True),
                                    expire_on_commit=False)
        self._migrated = False
        self._lock = threading.Lock()

    def _read_only(self) -> Engine:
        """The engine for reading only (on SQLite: no write lock, works on a read-only file)."""
        return self.engine.execution_options(medai_read_only=True)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        db = self.sessions()
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise
        finally:
            db.close()

    @contextmanager
    def reader(self) -> Iterator[Session]:
        """A read-only session (on SQLite it does not take the write lock)."""
        db = self.readers()
        try:
            yield db
        finally:
            db.close()  # ends the transaction; loaded objects stay readable (detached)

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (idempotent; run on every start). A
        database already at the newest is only read, so one on a read-only disk still starts
        (and readiness says why it is not ready)."""
        with self._lock:
            if self._migrated:
                return
            from alembic import command
            from alembic.config import Config
            from alembic.runtime.migration import MigrationContext
            from alembic.script import ScriptDirectory

            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            heads = set(ScriptDirectory.from_config(cfg).get_heads())
            with self._read_only().connect() as conn:
                current = set(MigrationContext.configure(conn).get_current_heads())
            if current == heads:
                self._migrated = True
                return
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # serve, its Celery workers and a DICOM node started at once on a fresh
                    # database would each create the tables: one migrates, the others wait here
                    # and find the schema current
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                 {"key": MIGRATION_LOCK_KEY})
                if set(MigrationContext.configure(conn).get_current_heads()) != heads:
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
            self._migrated = True

    def check(self) -> None:
        """Raise when the database cannot answer (readiness)."""
        with self._read_only().connect() as conn:
            conn.execute(text("SELECT 1"))

    def check_writable(self) -> None:
        """Readiness: a real write, committed — the schema's version row rewritten with its
        own value (changes nothing; a read-only or full database raises ``StorageFault``)."""
        with self.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = version_num"))

    def has_users(self) -> bool:
        with self._read_only().connect() as conn:
            return conn.execute(text("SELECT 1 FROM users LIMIT 1")).first() is not None

    def dispose(self) -> None:
        self.engine.dispose()
