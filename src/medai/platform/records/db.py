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
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

import medai
from medai.core.errors import MedaiError
from medai.core.faults import classify
from medai.platform.records.private_files import private_dir, private_file
from medai.settings import StorageSettings, get_settings

MIGRATIONS = Path(__file__).parents[1] / "migrations"


class Base(DeclarativeBase):
    pass


def utcnow() -> datetime:
    """Naive UTC (both SQLite and PostgreSQL ``timestamp`` columns store it alike)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _storage() -> StorageSettings:
    """This process's storage settings (the database's URL, the home folder, whether to
    migrate): the records layer sits below the ``Platform`` that hands the settings to the
    code above it, so it reads its group here, in one place."""
    return get_settings().storage


def default_url() -> str:
    storage = _storage()
    if storage.database_url:
        return storage.database_url
    private_dir(storage.home)
    return f"sqlite:///{storage.home / 'medai.db'}"


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
    if (
        parsed.get_backend_name() != "sqlite"
        or name in ("", ":memory:")
        or name.startswith("file:")
    ):
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
        db.execute(
            text("SELECT pg_advisory_xact_lock(:space, hashtext(:key))"),
            {"space": COUNTER_LOCK_SPACE, "key": key},
        )


class DatabaseLocationError(MedaiError, ValueError):
    """A SQLite database whose folder does not exist: named at start, not a traceback from
    the driver."""

    code = "invalid"


def check_location(url: str) -> None:
    """Raise ``DatabaseLocationError`` when a SQLite file's folder does not exist (medai makes
    the file, not the folders above it: a typo in the URL should not make a tree)."""
    path = sqlite_path(url)
    if path is not None and not path.parent.is_dir():
        raise DatabaseLocationError(
            f"the folder of the SQLite database {path} does not exist ({path.parent}); create "
            "it, or set MEDAI_DATABASE_URL to a file in an existing folder"
        )


@lru_cache(maxsize=1)
def _scripts():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg)


def migration_heads() -> tuple[str, ...]:
    """This release's newest migration(s): the revision a current database is at."""
    return tuple(sorted(_scripts().get_heads()))


def known_revisions() -> frozenset[str]:
    """Every revision this release's migrations know (a database at another one was made by
    a newer release)."""
    return frozenset(s.revision for s in _scripts().walk_revisions())


@dataclass(frozen=True)
class SchemaState:
    """A database's migration revision(s) beside this release's head(s)."""

    database: str
    current: tuple[str, ...]
    heads: tuple[str, ...]
    known: frozenset[str]

    @property
    def at_head(self) -> bool:
        return set(self.current) == set(self.heads)

    @property
    def empty(self) -> bool:
        return not self.current

    @property
    def newer(self) -> bool:
        """At a revision this code does not know: migrated by a newer release."""
        return any(r not in self.known for r in self.current)

    @property
    def revision(self) -> str:
        return ", ".join(self.current) or "none (no tables yet)"

    @property
    def head(self) -> str:
        return ", ".join(self.heads)


class SchemaMismatch(MedaiError, RuntimeError):
    """The database's schema is not the one this release runs on: ``schema_behind`` (not
    migrated yet, or empty, with ``MEDAI_AUTO_MIGRATE=false``: run ``medai migrate``) or
    ``schema_newer`` (a newer release migrated it: run that release, or restore the backup
    taken before the upgrade). ``code`` is what readiness and ``--json`` report."""

    code = "schema_behind"

    def __init__(self, state: SchemaState) -> None:

        self.state = state
        self.code = "schema_newer" if state.newer else "schema_behind"
        if state.newer:
            message = (
                f"{state.database} is at migration revision {state.revision}, which medai "
                f"{medai.__version__} does not know (its newest is {state.head}): a newer "
                "release has migrated it. Run that release's medai, or restore the backup "
                "taken before the upgrade (docs/deploy/backup.md); an older medai never "
                "writes to a newer schema"
            )
        elif state.empty:
            message = (
                f"{state.database} has no tables yet (a new database); medai "
                f"{medai.__version__} needs schema revision {state.head}. Run `medai migrate` "
                "once to create it, then start serve, the workers and the DICOM node "
                "(MEDAI_AUTO_MIGRATE=false: they do not migrate on their own)"
            )
        else:
            message = (
                f"{state.database} is at migration revision {state.revision}; medai "
                f"{medai.__version__} needs {state.head}. Run `medai migrate` once (after a "
                "backup: `medai backup DEST`), then start serve, the workers and the DICOM "
                "node (MEDAI_AUTO_MIGRATE=false: they do not migrate on their own)"
            )
        super().__init__(message)


class Database:
    """An engine and its session factory. ``session()`` commits on success and rolls back on
    any error, so a route or a job never leaves half a change behind."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        check_location(self.url)
        self.label = describe(self.url)
        self.engine = make_engine(self.url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.readers = sessionmaker(
            self.engine.execution_options(medai_read_only=True), expire_on_commit=False
        )
        self._found: SchemaState | None = None  # what upgrade() found (then at head)
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
        except BaseException:  # broad: rolled back on any exit (cancellation too), re-raised
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

    def schema(self) -> SchemaState:
        """Where this database's schema stands against this release's migrations (read only;
        a database on a read-only disk answers too)."""
        from alembic.runtime.migration import MigrationContext

        with self._read_only().connect() as conn:
            current = tuple(sorted(MigrationContext.configure(conn).get_current_heads()))
        return SchemaState(self.label, current, migration_heads(), known_revisions())

    def upgrade(self, force: bool = False) -> SchemaState:
        """Bring the schema to this release's newest migration (idempotent; serve, the
        workers and the DICOM node call it on every start). A database already at the
        newest is only read, so one on a read-only disk still starts (and readiness says why
        it is not ready).

        With ``MEDAI_AUTO_MIGRATE=false`` only ``force`` (``medai migrate``) migrates: a
        deployment runs the migration once, as a job, after its backup, and the replicas it
        then rolls refuse an unmigrated database (``SchemaMismatch``, exit 2) instead of each
        altering tables under replicas of the previous release still serving. A database
        newer than this code (an older image started after an upgrade) is refused either
        way: this code would read and write a schema it does not know. Returns the state
        found before migrating (``medai migrate`` reports from which revision)."""
        with self._lock:
            if self._found is not None:
                return self._found
            state = self.schema()
            if state.at_head:
                self._found = state
                return state
            if state.newer:
                raise SchemaMismatch(state)
            if not force and not _storage().auto_migrate:
                raise SchemaMismatch(state)
            from alembic import command
            from alembic.config import Config
            from alembic.runtime.migration import MigrationContext

            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            heads = set(migration_heads())
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # serve, its Celery workers and a DICOM node started at once on a fresh
                    # database would each create the tables: one migrates, the others wait here
                    # and find the schema current
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
                if set(MigrationContext.configure(conn).get_current_heads()) != heads:
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
            self._found = state
            return state

    def check_schema(self) -> None:
        """Readiness: raise ``SchemaMismatch`` (code ``schema_behind`` or ``schema_newer``)
        when the schema is not this release's head, e.g. a migration job ran for a newer
        release while this replica still serves, or a backup of an older one was restored
        under it."""
        state = self.schema()
        if not state.at_head:
            raise SchemaMismatch(state)

    def check(self) -> None:
        """Raise when the database cannot answer (readiness)."""
        with self._read_only().connect() as conn:
            conn.execute(text("SELECT 1"))

    def check_writable(self) -> None:
        """Readiness: a real write, committed — the schema's version row rewritten with its
        own value (changes nothing; a read-only or full database raises ``StorageFault``)."""
        with self.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = version_num"))

    def has_admin(self) -> bool:
        """Whether an admin exists: the first admin is created only when none does. Not "any
        user": the DICOM node files its first study under its own inactive account, so a study
        that arrived before the admin was made once stopped the first admin from ever being
        created."""
        with self._read_only().connect() as conn:
            return (
                conn.execute(text("SELECT 1 FROM users WHERE role = 'admin' LIMIT 1")).first()
                is not None
            )

    def dispose(self) -> None:
        self.engine.dispose()
