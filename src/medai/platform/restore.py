"""``medai restore SRC``: a backup (``platform.backup``) into an EMPTY home and database.

The target is the one this process is configured for (``MEDAI_HOME``, ``MEDAI_DATABASE_URL``):
a restore never merges into a site that holds data (two histories of the same ids would
mix), so a database with any table, or a home whose ``blobs``/``registry`` hold a file, is
refused before anything is written. The order, each step before any write it protects:

1. the manifest is read; a backup of a newer schema than this release is refused;
2. the keys: every key id the backup's data is sealed under must be among the configured
   keys (``MEDAI_SECRET_KEYS``/``_FILE`` or ``HOME/secret.key``, the operator's copy): a
   missing one is named, nothing written; no key is ever generated here;
3. every file is copied into a staging folder under the home while its sha256 is checked
   against the manifest (a damaged backup is named by file, nothing restored), each stored
   file's key id checked as it passes;
4. the database is loaded (SQLite: the online backup API into the target file; PostgreSQL:
   ``pg_restore --single-transaction``), the files moved into place;
5. the restored site is checked: its row counts are the manifest's, every sealed value
   decrypts with the configured keys, and (unless ``quick``) every stored file the database
   names decrypts to its name. On any failure the database and files just restored are taken
   away again, so the target is empty for the next try, and the error names the key ids the
   backup was made with that are not configured now;
6. the non-secret settings go to ``HOME/restored-config`` for the operator to apply (the
   deployment owns its environment: a restore does not rewrite it);
7. a backup of an older release is migrated to this release's schema when
   ``MEDAI_AUTO_MIGRATE`` is true (or ``migrate=True``), else ``medai migrate`` is left to run.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

from medai.platform import backup as bk
from medai.platform import pg_tools
from medai.platform.backup import BackupError, Progress
from medai.platform.blobs import BlobStore
from medai.platform.crypto import BlobCipher, Cipher
from medai.platform.db import (
    Database,
    check_location,
    describe,
    known_revisions,
    migration_heads,
    sqlite_path,
)
from medai.platform.private_files import private_dir

RESTORED_CONFIG = "restored-config"


def _target_files(home: Path) -> list[str]:
    """What in the home would be mixed with the backup's: any file under blobs/ or
    registry/, or a restored-config folder."""
    found = [
        p.relative_to(home).as_posix()
        for d in bk.STATE_DIRS
        if (home / d).is_dir()
        for p in (home / d).rglob("*")
        if p.is_file()
    ][:3]
    if (home / RESTORED_CONFIG).exists():
        found.append(RESTORED_CONFIG)
    return found


def _tables(url: str) -> list[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return sorted(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def check_target(url: str, home: Path) -> None:
    """Refuse a database with any table or a home holding stored files."""
    path = sqlite_path(url)
    tables = [] if path is not None and not path.exists() else _tables(url)
    if tables:
        raise BackupError(
            f"{describe(url)} is not empty ({len(tables)} tables, e.g. "
            f"{', '.join(tables[:3])}): restore only into an empty database "
            "(a new one, or drop and re-create it first)",
            "target_not_empty",
        )
    found = _target_files(home)
    if found:
        raise BackupError(
            f"MEDAI_HOME {home} already holds a site's files (e.g. "
            f"{', '.join(found)}): restore only into an empty home",
            "target_not_empty",
        )


def _check_keys(manifest: dict[str, Any], current: list[str]) -> None:
    keys = manifest.get("keys", {})
    have = {bk.key_id(k) for k in current}
    missing = [k for k in keys.get("needed", []) if k not in have]
    if not current:
        raise BackupError(
            "no key is configured: set MEDAI_SECRET_KEYS_FILE (or "
            "MEDAI_SECRET_KEYS) to the operator's copy of the keys, or put the "
            "key file at MEDAI_HOME/secret.key; the backup needs key id(s) "
            f"{', '.join(keys.get('needed', [])) or '(none)'}",
            "keys_missing",
        )
    if missing:
        raise BackupError(
            f"the backup's data is sealed under key id(s) {', '.join(missing)}, not among the "
            f"configured keys ({', '.join(sorted(have))}): configure the operator's copy of "
            "the keys of the backed-up site (MEDAI_SECRET_KEYS_FILE or HOME/secret.key); "
            "nothing was restored",
            "keys_missing",
        )


def _missing_key_hint(manifest: dict[str, Any], current: list[str]) -> str:
    have = {bk.key_id(k) for k in current}
    absent = [k for k in manifest.get("keys", {}).get("configured", []) if k not in have]
    return (
        f"the backed-up site also had key id(s) {', '.join(absent)}, not configured now: "
        "configure them too"
        if absent
        else "every key the backed-up site had is configured: the data is damaged"
    )


def _stage(
    src: Path, staging: Path, manifest: dict[str, Any], current: list[str], progress: Progress
) -> None:
    """Copy every file of the manifest into ``staging``, checking its sha256 (and each
    stored file's key id) as it goes."""
    have = {bk.key_id(k) for k in current}
    entries = sorted(manifest["files"].items())
    made: set[Path] = set()
    for n, (relative, want) in enumerate(entries, 1):
        source, target = src / relative, staging / relative
        if ".." in Path(relative).parts or Path(relative).is_absolute():
            raise BackupError(f"manifest names {relative!r}, outside the backup", "backup_damaged")
        bk._private_parent(target, made)
        try:
            sha, size, head = bk.copy_file(source, target, BlobCipher.HEADER)
        except FileNotFoundError:
            raise BackupError(f"{source} is missing from the backup", "backup_damaged") from None
        if sha != want["sha256"] or size != want["size"]:
            raise BackupError(
                f"{source} is damaged (sha256 {sha[:12]}…, the manifest says "
                f"{want['sha256'][:12]}…): nothing was restored",
                "backup_damaged",
            )
        if relative.startswith("blobs/") and head.startswith(BlobCipher.MAGIC):
            kid = head[len(BlobCipher.MAGIC) : len(BlobCipher.MAGIC) + 8].hex()
            if kid not in have:
                raise BackupError(
                    f"stored file {Path(relative).name[:12]}… is sealed under "
                    f"key id {kid}, not among the configured keys "
                    f"({', '.join(sorted(have))}): nothing was restored",
                    "keys_missing",
                )
        progress("verify", n, len(entries))


def _load_database(manifest: dict[str, Any], staged: Path, url: str) -> None:
    if manifest["database"]["engine"] == "sqlite":
        path = sqlite_path(url)
        Database(url).dispose()  # makes the file 0600 (and its folder checked)
        src, dst = sqlite3.connect(staged), sqlite3.connect(path)
        try:
            src.backup(dst)
            dst.commit()
        finally:
            src.close()
            dst.close()
        return
    restore = pg_tools.tool("pg_restore")
    pg_tools.check_restore_tool(restore, manifest["database"].get("pg_dump_major"))
    libpq = pg_tools.connection(url)
    pg_tools.run(
        [
            restore,
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            f"--dbname={libpq.url}",
            str(staged),
        ],
        libpq,
        "pg_restore",
    )


def _pg_objects(url: str) -> set[tuple[str, str]]:
    """Functions and types of the current schema (what a rollback may drop: only those the
    restore made)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            funcs = conn.execute(
                text(
                    "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON "
                    "n.oid = p.pronamespace WHERE n.nspname = current_schema()"
                )
            ).scalars()
            types = conn.execute(
                text(
                    "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                    "WHERE n.nspname = current_schema() AND t.typtype = 'e'"
                )
            ).scalars()
            return {("FUNCTION", f) for f in funcs} | {("TYPE", t) for t in types}
    finally:
        engine.dispose()


def _unload_database(url: str, before: set[tuple[str, str]]) -> None:
    """Take away what the restore loaded: the target was empty before it."""
    path = sqlite_path(url)
    if path is not None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        return
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for table in inspect(conn).get_table_names():
                conn.execute(text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
            for kind, name in sorted(_pg_objects(url) - before):
                conn.execute(text(f"DROP {kind} IF EXISTS {name} CASCADE"))
    finally:
        engine.dispose()


def _check_restored(
    url: str,
    home: Path,
    manifest: dict[str, Any],
    current: list[str],
    quick: bool,
    progress: Progress,
) -> dict[str, int]:
    """Counts as the manifest's; every sealed value decrypts; every named file decrypts."""
    from cryptography.fernet import Fernet

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            found = bk.survey(conn, current, sample=0)
            fernets = [(bk.key_id(k), Fernet(k.encode())) for k in current]
            values = bad = 0
            first_bad = None
            for label, token in bk.sealed_values(conn):
                values += 1
                if bk._opens(token, fernets) is None:
                    bad += 1
                    first_bad = first_bad or label
                if values % 1000 == 0:
                    progress("check", values, 0)
    finally:
        engine.dispose()
    want = {
        k: v for k, v in manifest["counts"].items() if k not in ("files", "bytes", "files_named")
    }
    got = {k: found["counts"].get(k) for k in want}
    if got != want:
        differ = {k: (want[k], got[k]) for k in want if got[k] != want[k]}
        raise BackupError(
            f"the restored database's counts differ from the manifest's "
            f"(name: (manifest, restored)): {differ}",
            "restore_mismatch",
        )
    damaged = manifest["keys"].get("records", {}).get("undecryptable", 0)
    if bad > damaged:
        raise BackupError(
            f"{bad} of {values} sealed values (first in {first_bad}) do not "
            "decrypt with the configured keys"
            + (f" ({damaged} did not at the backed-up site either)" if damaged else "")
            + f"; {_missing_key_hint(manifest, current)}",
            "keys_missing",
        )
    checked_files = 0
    if not quick:
        store = BlobStore(home / "blobs", Cipher(current).blobs)
        for n, sha in enumerate(sorted(found["files"]), 1):
            try:
                store.read(sha)
            except FileNotFoundError:
                raise BackupError(
                    f"stored file {sha[:12]}… named by the database is not in the backup",
                    "files_missing",
                ) from None
            except Exception:
                raise BackupError(
                    f"stored file {sha[:12]}… does not decrypt with the "
                    f"configured keys; {_missing_key_hint(manifest, current)}",
                    "keys_missing",
                ) from None
            checked_files = n
            progress("check", n, len(found["files"]))
    return {
        "sealed_values": values,
        "undecryptable_at_backup": bad,
        "files_decrypted": checked_files,
        "files_named": len(found["files"]),
    }


def _move_into_home(staging: Path, home: Path) -> list[Path]:
    """Move the staged state folders into the home (the same filesystem: renames)."""
    moved = []
    for name in bk.STATE_DIRS:
        staged = staging / name
        if not staged.is_dir():
            continue
        target = home / name
        if target.is_dir():
            shutil.rmtree(target)  # empty (check_target): folders only
        os.replace(staged, target)
        moved.append(target)
    return moved


def restore(
    src: Path,
    settings: Any = None,
    progress: Progress | None = None,
    quick: bool = False,
    migrate: bool | None = None,
) -> dict[str, Any]:
    """Restore the backup in ``src`` into this process's empty home and database (the
    steps and why: the module's docstring). Raises ``BackupError`` with a ``code``."""
    from medai.settings import get_settings

    settings = settings or get_settings()
    progress = progress or bk._quiet
    started = time.monotonic()
    src = Path(src)
    manifest = bk.read_manifest(src)
    db_info = manifest["database"]
    revision = db_info.get("revision")
    if revision and any(r not in known_revisions() for r in revision.split(", ")):
        raise BackupError(
            f"the backup's database is at migration revision {revision}, which "
            "this medai does not know (a newer release made it): restore it "
            f"with medai {manifest.get('medai_version')} or newer",
            "schema_newer",
        )
    home = Path(settings.home)
    url = bk.database_url(settings)
    engine = "sqlite" if url.startswith("sqlite") else "postgresql"
    if engine != db_info["engine"]:
        raise BackupError(
            f"the backup holds a {db_info['engine']} database and "
            f"MEDAI_DATABASE_URL is {engine}: restore into the same kind "
            "(then move data with the database's own tools)",
            "engine_mismatch",
        )
    try:
        check_location(url)
    except ValueError as exc:  # DatabaseLocationError: the SQLite file's folder is missing
        raise BackupError(str(exc), "target_missing") from None
    current = bk.configured_keys(settings)
    _check_keys(manifest, current)
    check_target(url, home)

    private_dir(home)
    staging = home / f".restore-{uuid.uuid4().hex}"
    private_dir(staging)
    before = _pg_objects(url) if engine == "postgresql" else set()
    loaded, moved = False, []
    try:
        _stage(src, staging, manifest, current, progress)
        progress("database", 0, 1)
        _load_database(manifest, staging / db_info["file"], url)
        loaded = True
        progress("database", 1, 1)
        moved = _move_into_home(staging, home)
        checked = _check_restored(url, home, manifest, current, quick, progress)
    except BaseException:
        if loaded:
            _unload_database(url, before)
        for path in moved:
            shutil.rmtree(path, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    config = src / bk.CONFIG
    if config.is_dir():
        shutil.copytree(config, home / RESTORED_CONFIG)
    heads = ", ".join(migration_heads())
    if migrate is None:
        migrate = settings.auto_migrate
    migrated_to = None
    if revision != heads and migrate:
        database = Database(url)
        try:
            database.upgrade(force=True)
        finally:
            database.dispose()
        migrated_to = heads
    return {
        "restored": str(src),
        "database": describe(url),
        "home": str(home),
        "created_at": manifest.get("created_at"),
        "medai_version": manifest.get("medai_version"),
        "revision": revision,
        "migrated_to": migrated_to,
        "needs_migrate": revision != heads and not migrated_to,
        "counts": manifest["counts"],
        "checked": checked,
        "config": str(home / RESTORED_CONFIG) if config.is_dir() else None,
        "seconds": round(time.monotonic() - started, 3),
    }
