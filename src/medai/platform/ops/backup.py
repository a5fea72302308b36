"""``medai backup DEST``: a consistent snapshot of a site into a new folder, while it runs.

What the folder holds::

    manifest.json        what is in it: medai's version, the schema's revision, when, counts,
                         the key ids needed, the sha256 and size of every other file, and
                         ``mac`` authenticating all of it (see below)
    database.sqlite      SQLite: the online backup API's copy of the live database
    database.pgdump      PostgreSQL: ``pg_dump --format=custom`` of MEDAI_DATABASE_URL
    blobs/aa/bb/<sha>    every stored file, as stored (sealed under the site's keys)
    registry/<hash>/...  every registered model's copy (the database names them)
    config/              the settings that are not secrets: settings.json (the MEDAI_*
                         variables of this process, secrets left out), the destinations file,
                         the knowledge base and red-flag rules folders when set

Why it is consistent without stopping the site: the database is saved FIRST, as one snapshot
(SQLite's backup API copies every page under one read transaction; ``pg_dump`` reads one
repeatable-read snapshot, exported so that the manifest's counts come from the very same
snapshot). Stored files and model copies are content-addressed and never changed once named:
a row is committed only after its file is in place, and a file is only ever added (a key
rotation re-seals a file atomically, the same content either way; a failed upload's file is
taken away only while no row names it). So every file a row of the snapshot names is already
on disk when the files are copied AFTER it, and is copied; files written later are copied too
and are merely unreferenced in the restored site. The other order (files, then database) would
miss the files of every row committed in between. A file the snapshot names but the disk lacks
is a damaged site, not a race: the backup names it and fails (exit 1) after writing what it
could.

What it does not hold, by design: the keys (``MEDAI_SECRET_KEYS``, ``HOME/secret.key``). A
backup that carried its keys would hand a thief the patient data it seals; the operator keeps
the key file apart (a sealed envelope, the site's secret store). The manifest records only the
key ids (``BlobCipher``'s 8-byte ids, a hash of a derived key, never the key) of the keys
configured and of those the data is sealed under (every stored file's header and every sealed
value are attributed; a value no configured key opens is counted as such), so ``medai
restore`` can say which key is missing before it writes anything. The database URL, broker
URL and API keys are left out of ``settings.json`` too (the names of those left out are
listed).

A folder without ``manifest.json`` is not a backup: the manifest is written last, atomically.

Why the manifest is authenticated: its sha256 list proves a file is the one the backup wrote
only while the list itself cannot be rewritten. Whoever can write the backup folder could
otherwise edit ``database.sqlite`` (a patient account given the radiologist role, a password
hash they know), recompute its hash and have ``medai restore`` load it. So the manifest carries
``mac``: HMAC-SHA256 over its canonical JSON (every field but ``mac``; sorted keys, no spaces)
under a key derived (HKDF, ``MAC_INFO``) from the site's newest configured key, with that key's
id: key material the backup does not hold. Every file is listed with its hash, so the MAC
covers the database, every stored file and model copy and the settings; ``medai restore``
checks it first and also refuses a file in the folder the manifest does not list.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import InvalidToken
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

import medai
from medai.platform.ops import pg_tools
from medai.platform.ops.backup_files import BackupError, copy_file, sha256_file
from medai.platform.ops.backup_manifest import FORMAT, key_id, sign_manifest, write_manifest
from medai.platform.ops.rotation import SEALED, SEALED_SINCE, _raw
from medai.platform.records.crypto import BlobCipher
from medai.platform.records.db import default_url, sqlite_path
from medai.platform.records.private_files import private_dir
from medai.settings import Settings

SQLITE_FILE, PG_FILE = "database.sqlite", "database.pgdump"


CONFIG = "config"


STATE_DIRS = ("blobs", "registry")  # under MEDAI_HOME: what the database names


_SHA = re.compile(r"^[0-9a-f]{64}$")


# the MEDAI_* variables never written into a backup (values that are or hold secrets)
SECRET_NAMES = (
    "SECRET_KEYS",
    "DATABASE_URL",
    "BROKER_URL",
    "LLM_API_KEY",
    "GEMINI_API_KEY",
    "ADMIN_PASSWORD",
)


_SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "API_KEY", "CREDENTIAL")


# rows counted into the manifest (and compared after a restore)
COUNTED = (
    "users",
    "patients",
    "studies",
    "dicom_instances",
    "ai_results",
    "report_versions",
    "audit_events",
    "messages",
    "triage_requests",
    "outbox",
    "registered_models",
)


Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: phases ``database``, ``files``, ``config``, ``verify``,
``check``; ``total`` 0 when unknown."""


def _quiet(_phase: str, _done: int, _total: int) -> None:
    pass


def configured_keys(settings: Settings) -> list[str]:
    """The keys this process would use, newest first, WITHOUT making one: a restore must not
    generate ``HOME/secret.key`` (a new key decrypts nothing of the backup)."""
    if settings.storage.secret_keys:
        return list(settings.storage.secret_keys)
    path = Path(settings.storage.home) / "secret.key"
    return [path.read_text().strip()] if path.is_file() else []


def _opens(token: Any, fernets: list[tuple[str, Any]]) -> str | None:
    """Which key (its id) opens a sealed value; None when none does; "clear" for a value an
    older version kept unsealed (a JSON value that is not a token)."""
    if isinstance(token, memoryview):
        token = bytes(token)
    if isinstance(token, str):
        token = token.encode("ascii", "replace")
    if not isinstance(token, bytes):
        return "clear"
    for kid, fernet in fernets:
        try:
            fernet.decrypt(token)
            return kid
        except InvalidToken:  # the next key
            continue
    return None


def sealed_columns(conn: Connection) -> list[tuple[str, Any, Any, Any]]:
    """Every sealed column (``rotation.SEALED``) this database has: (label, table, id,
    column) with the column under its stored type (the token, not the plaintext). An older
    schema (a backup of a previous release) lacks some, or has them still in clear (a column
    sealed by a later migration: ``rotation.SEALED_SINCE``); they are skipped."""
    tables = inspect(conn).get_table_names()
    present = {t: {c["name"] for c in inspect(conn).get_columns(t)} for t in tables}
    revision = ""
    if "alembic_version" in present:
        revision = max(
            (r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))),
            default="",
        )
    out = []
    for model, attr in SEALED:
        t, ids, column = _raw(model, attr)
        name = model.__tablename__
        since = SEALED_SINCE.get((name, column.name))
        older = bool(since and revision and revision < since)  # no alembic_version: current
        if column.name in present.get(name, ()) and not older:
            out.append((f"{name}.{column.name}", t, ids, column))
    return out


def sealed_values(
    conn: Connection, batch: int = 1000, sample: int | None = None
) -> Iterable[tuple[str, Any]]:
    """(column label, token) of every sealed value, or of the newest ``sample`` of each
    column, read in batches."""
    for label, _t, ids, column in sealed_columns(conn):
        if sample is not None:
            rows = conn.execute(
                select(column).where(column.is_not(None)).order_by(ids.desc()).limit(sample)
            ).all()
            yield from ((label, r[0]) for r in rows)
            continue
        last = 0
        while True:
            rows = conn.execute(
                select(ids, column)
                .where(ids > last, column.is_not(None))
                .order_by(ids)
                .limit(batch)
            ).all()
            if not rows:
                break
            yield from ((label, r[1]) for r in rows)
            last = rows[-1][0]


def file_columns(conn: Connection) -> list[tuple[str, str]]:
    """Every (table, column) naming a stored file: by convention a ``*_sha256`` column holds
    a blob's name (studies.file_sha256, ai_results.heatmap_sha256, ...)."""
    insp = inspect(conn)
    return [
        (t, c["name"])
        for t in sorted(insp.get_table_names())
        for c in insp.get_columns(t)
        if c["name"].endswith("_sha256")
    ]


def survey(conn: Connection, keys: list[str], sample: int | None = None) -> dict[str, Any]:
    """What a database snapshot holds: its revision, row counts and last ids, the stored
    files and model copies it names, and how many of its sealed values each configured key
    opens (all of them, or the newest ``sample`` of each sealed column; "undecryptable": none
    does — a site already damaged, which a restore then expects as it was)."""
    from cryptography.fernet import Fernet

    tables = set(inspect(conn).get_table_names())
    revision = None
    if "alembic_version" in tables:
        revision = ", ".join(
            sorted(r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version")))
        )
    counts, last_ids = {}, {}
    for name in COUNTED:
        if name in tables:
            counts[name] = conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()
            last_ids[name] = conn.execute(text(f"SELECT max(id) FROM {name}")).scalar()
    if "report_versions" in tables:
        counts["signed_reports"] = conn.execute(
            text("SELECT count(*) FROM report_versions WHERE signed_by IS NOT NULL")
        ).scalar_one()
    files: set[str] = set()
    for table, column in file_columns(conn):
        files.update(
            r[0]
            for r in conn.execute(
                text(f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL")
            )
        )
    models = (
        sorted(r[0] for r in conn.execute(text("SELECT path FROM registered_models")))
        if "registered_models" in tables
        else []
    )
    fernets = [(key_id(k), Fernet(k.encode())) for k in keys]
    opened: dict[str, int] = {}
    for _label, token in sealed_values(conn, sample=sample):
        kid = _opens(token, fernets) or "undecryptable"
        opened[kid] = opened.get(kid, 0) + 1
    return {
        "revision": revision,
        "counts": counts,
        "last_ids": last_ids,
        "files": files,
        "models": models,
        "records": opened,
    }


def state_files(home: Path) -> list[tuple[Path, str]]:
    """The files of ``HOME/blobs`` and ``HOME/registry``: (path, path relative to home, in
    posix form). Temporary files (an upload or a model copy under way, a readiness probe, a
    damaged copy set aside) are not state and are left out."""
    out = []
    blobs = home / "blobs"
    if blobs.is_dir():
        for dirpath, _dirs, names in os.walk(blobs):
            out += [
                (Path(dirpath) / n, (Path(dirpath) / n).relative_to(home).as_posix())
                for n in sorted(names)
                if _SHA.match(n)
            ]
    registry = home / "registry"
    if registry.is_dir():
        for dirpath, dirs, names in os.walk(registry):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            out += [
                (Path(dirpath) / n, (Path(dirpath) / n).relative_to(home).as_posix())
                for n in sorted(names)
                if not n.startswith(".")
            ]
    return out


def _private_parent(path: Path, made: set[Path]) -> None:
    parent = path.parent
    if parent not in made:
        private_dir(parent)
        made.add(parent)


def is_secret(name: str) -> bool:
    """Whether the variable ``MEDAI_<name>`` holds (or may hold) a secret; a ``*_FILE`` path
    does not (it names where the secret is, on the host)."""
    name = name.upper()
    if name.endswith("_FILE"):
        return False
    return name in SECRET_NAMES or any(word in name for word in _SECRET_WORDS)


def settings_snapshot(environ: dict[str, str]) -> dict[str, Any]:
    """The MEDAI_* variables of this process, secrets left out (their names listed)."""
    kept, left_out = {}, []
    for name in sorted(environ):
        if not name.upper().startswith("MEDAI_"):
            continue
        if is_secret(name[6:]):
            left_out.append(name)
        else:
            kept[name] = environ[name]
    return {"environment": kept, "secrets_left_out": left_out}


def _copy_config(settings: Settings, dest: Path, files: dict, progress: Progress) -> list[str]:
    """Settings that are not secrets into ``dest/config``; what was copied."""
    out = private_dir(dest / CONFIG)
    snapshot = settings_snapshot(dict(os.environ))
    (out / "settings.json").write_text(json.dumps(snapshot, indent=2, sort_keys=True) + "\n")
    os.chmod(out / "settings.json", 0o600)
    copied = ["settings.json"]
    sources = [
        ("knowledge", settings.llm.knowledge_dir),
        ("red_flag_rules", settings.models.red_flag_rules),
    ]
    if settings.outbox.destinations_file:
        path = Path(settings.outbox.destinations_file)
        sources.insert(0, ("destinations" + (path.suffix or ".yaml"), path))
    for name, source in sources:
        if source is None or not Path(source).exists():
            continue
        source = Path(source)
        if source.is_file():
            shutil.copyfile(source, out / name)
            os.chmod(out / name, 0o600)
        else:
            shutil.copytree(source, out / name)
        copied.append(name)
    progress("config", len(copied), len(copied))
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        sha, size = sha256_file(path)
        files[path.relative_to(dest).as_posix()] = {"sha256": sha, "size": size}
    return copied


def _sqlite_snapshot(source: Path, target: Path, keys: list[str]) -> dict[str, Any]:
    """The SQLite online backup API: every page copied under one read transaction (WAL: the
    site goes on writing meanwhile), then made a self-contained file (no -wal)."""
    src = sqlite3.connect(source, timeout=30)
    try:
        src.execute("PRAGMA busy_timeout=30000")
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        dst = sqlite3.connect(target)
        try:
            src.backup(dst, pages=-1)  # one step: one consistent snapshot
            dst.execute("PRAGMA journal_mode=DELETE")
            dst.commit()
        finally:
            dst.close()
    finally:
        src.close()
    engine = create_engine(f"sqlite:///{target}", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return {"engine": "sqlite", "file": SQLITE_FILE, **survey(conn, keys)}
    finally:
        engine.dispose()


def _pg_snapshot(url: str, target: Path, keys: list[str]) -> dict[str, Any]:
    """``pg_dump`` of one exported snapshot; the survey reads the same snapshot, so the
    manifest counts exactly the rows the dump holds."""
    dump = pg_tools.tool("pg_dump")
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                server = int(conn.execute(text("SHOW server_version_num")).scalar_one())
                dumped_by = pg_tools.check_dump_tool(dump, server)
                conn.execute(text("SET TRANSACTION READ ONLY"))
                snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                info = survey(conn, keys)
                libpq = pg_tools.connection(url)
                pg_tools.run(
                    [
                        dump,
                        "--format=custom",
                        f"--snapshot={snapshot}",
                        f"--file={target}",
                        f"--dbname={libpq.url}",
                    ],
                    libpq,
                    "pg_dump",
                )
                os.chmod(target, 0o600)
    finally:
        engine.dispose()
    return {
        "engine": "postgresql",
        "file": PG_FILE,
        "server_major": server // 10000,
        "pg_dump_major": dumped_by,
        **info,
    }


def database_url(settings: Settings) -> str:
    return settings.storage.database_url or default_url()


def snapshot_database(url: str, dest: Path, keys: list[str]) -> dict[str, Any]:
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is None or not path.is_file():
            raise BackupError(
                f"the SQLite database {path or url} does not exist: nothing to back up",
                "no_database",
            )
        return _sqlite_snapshot(path, dest / SQLITE_FILE, keys)
    if url.startswith("postgresql"):
        return _pg_snapshot(url, dest / PG_FILE, keys)
    raise BackupError(
        f"cannot back up a {url.split(':', 1)[0]} database (SQLite and PostgreSQL only)",
        "unsupported_database",
    )


def _empty_or_new(dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(
            f"{dest} exists and is not an empty folder: a backup goes into a new "
            "(or empty) folder, never over another",
            "destination_not_empty",
        )


def backup(dest: Path, settings: Settings, progress: Progress | None = None) -> dict[str, Any]:
    """Snapshot the site into the new folder ``dest`` (see the module's docstring for why
    database first, then files): returns the manifest. Raises ``BackupError`` when ``dest``
    is not new or empty, and (``code`` ``files_missing``, after the manifest is written)
    when a file the database names is not on disk."""

    progress = progress or _quiet
    dest = Path(dest)
    _empty_or_new(dest)
    keys = configured_keys(settings)
    if not keys:  # nothing to authenticate the manifest with: refused before writing
        raise BackupError(
            "no key is configured (MEDAI_SECRET_KEYS_FILE, MEDAI_SECRET_KEYS or "
            "MEDAI_HOME/secret.key): a backup's manifest is authenticated under the site's "
            "newest key, so there is nothing to back up with; nothing was written",
            "keys_missing",
        )
    started = time.monotonic()
    created_at = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    private_dir(dest)
    home = Path(settings.storage.home)

    # 1. the database, one snapshot
    progress("database", 0, 1)
    db = snapshot_database(database_url(settings), dest, keys)
    progress("database", 1, 1)
    files: dict[str, dict[str, Any]] = {}
    sha, size = sha256_file(dest / db["file"])
    files[db["file"]] = {"sha256": sha, "size": size}

    # 2. then the stored files and model copies (content-addressed: see the docstring)
    todo = state_files(home)
    made: set[Path] = set()
    header = BlobCipher.HEADER
    by_key: dict[str, int] = {}
    copied_blobs: set[str] = set()
    for n, (source, relative) in enumerate(todo, 1):
        target = dest / relative
        _private_parent(target, made)
        try:
            sha, size, head = copy_file(source, target, header)
        except FileNotFoundError:
            continue  # a failed upload's file, taken away while no row named it
        files[relative] = {"sha256": sha, "size": size}
        if relative.startswith("blobs/"):
            copied_blobs.add(source.name)
            kid = (
                head[len(BlobCipher.MAGIC) : len(BlobCipher.MAGIC) + 8].hex()
                if head.startswith(BlobCipher.MAGIC)
                else "clear"
            )
            by_key[kid] = by_key.get(kid, 0) + 1
        progress("files", n, len(todo))

    # 3. the settings that are not secrets
    config = _copy_config(settings, dest, files, progress)

    configured = [key_id(k) for k in keys]
    needed = sorted(
        {k for k in by_key if k != "clear"}
        | {k for k in db["records"] if k not in ("clear", "undecryptable")}
    )
    missing_files = sorted(db["files"] - copied_blobs)
    missing_models = sorted(
        m for m in db["models"] if not any(f.startswith(m.rstrip("/") + "/") for f in files)
    )
    manifest = {
        "format": FORMAT,
        "medai_version": medai.__version__,
        "created_at": created_at,
        "database": {
            k: db[k]
            for k in ("engine", "file", "revision", "server_major", "pg_dump_major")
            if k in db
        },
        "counts": {
            **db["counts"],
            "files_named": len(db["files"]),
            "files": len(files),
            "bytes": sum(f["size"] for f in files.values()),
        },
        "last_ids": db["last_ids"],
        "keys": {
            "configured": configured,
            "needed": needed,
            "files": by_key,
            "records": db["records"],
            "note": "key ids only; the keys are kept apart from the backup",
        },
        "config": config,
        "missing": {"files": missing_files, "models": missing_models},
        "seconds": round(time.monotonic() - started, 3),
        "files": files,
    }
    manifest = sign_manifest(manifest, keys[0])  # the newest key: see the module docstring
    write_manifest(dest, manifest)
    if missing_files or missing_models:
        first = (missing_files or missing_models)[0]
        raise BackupError(
            f"the backup in {dest} is incomplete: {len(missing_files)} stored files and "
            f"{len(missing_models)} model copies the database names are not in {home} (first: "
            f"{first}); they were lost before this backup (manifest.json lists them)",
            "files_missing",
        )
    return manifest


def summary(manifest: dict[str, Any], where: Path) -> dict[str, Any]:
    """The stable ``--json`` answer of ``medai backup`` (the manifest less its file list)."""
    return {"backup": str(where), **{k: v for k, v in manifest.items() if k != "files"}}
