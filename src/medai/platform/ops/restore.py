"""``medai restore SRC``: a backup (``platform.ops.backup``) into an EMPTY home and database.

The target is the one this process is configured for (``MEDAI_HOME``, ``MEDAI_DATABASE_URL``):
a restore never merges into a site that holds data (two histories of the same ids would
mix), so a database with any table, or a home whose ``blobs``/``registry`` hold a file, is
refused before anything is written. The order, each step before any write it protects:

0. the folder holds only regular files and folders (``backup_files.check_members``, from ``lstat``
   alone): a symbolic link, a FIFO or a device is refused, ``unsafe_file`` naming it, before
   any file is read (a link to ``/dev/zero`` would be read for ever, a FIFO's open would wait
   for ever), and every file is later opened without following a link (``open_member``).
   Then the manifest is authenticated FIRST, before any of its fields is believed (``authenticate``):
   its ``mac`` (HMAC-SHA256 under a key derived from the backed-up site's newest key,
   ``backup_manifest.sign_manifest``) must verify under the configured key of its key id. A manifest
   whose MAC does not verify is ``manifest_forged`` (altered since ``medai backup`` wrote it);
   one whose key id no configured key has is ``keys_missing`` naming the id (the operator's
   copy of that key is not configured, or another site or someone else made it); one with no
   MAC (the previous release's, or one whose MAC was removed) is ``manifest_unauthenticated``
   unless the operator types ``--accept-unauthenticated-backup CREATED_AT`` naming that very
   backup, and then every other check still runs. The folder must hold exactly the files the
   manifest lists (``unlisted_files``: the MAC authenticates only what is listed);
1. a backup of a newer schema than this release is refused;
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
6. the non-secret settings (the staged, hash-checked copies) go to ``HOME/restored-config``
   for the operator to apply (the deployment owns its environment: a restore does not rewrite
   it);
7. a backup of an older release is migrated to this release's schema when
   ``MEDAI_AUTO_MIGRATE`` is true (or ``migrate=True``), else ``medai migrate`` is left to run.
"""

from __future__ import annotations

import hmac
import logging
import os
import shutil
import sqlite3
import time
import uuid
from pathlib import Path, PurePosixPath
from typing import Any, cast

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

from medai.core.faults import StorageFault
from medai.platform.ops import backup as bk
from medai.platform.ops import backup_files, backup_manifest, pg_tools
from medai.platform.ops.backup import Progress
from medai.platform.ops.backup_files import BackupError
from medai.platform.records.blobs import BlobStore
from medai.platform.records.crypto import BlobCipher, Cipher
from medai.platform.records.db import (
    Database,
    check_location,
    describe,
    known_revisions,
    migration_heads,
    sqlite_path,
)
from medai.platform.records.private_files import private_dir
from medai.settings import Settings

RESTORED_CONFIG = "restored-config"
OVERRIDE_OPTION = "--accept-unauthenticated-backup"
# the first schema revision of a release that authenticates its manifests: a backup of it (or
# later) without a MAC had its MAC removed, and no override restores it
FIRST_SIGNED_REVISION = 19
log = logging.getLogger(__name__)


def _forged(src: Path, why: str) -> BackupError:
    return BackupError(
        f"the manifest of {src} {why}: it was altered after `medai backup` wrote it (or made "
        "by another site with a key of the same id); do not use this backup; nothing was "
        "restored",
        "manifest_forged",
    )


def _signed_release(manifest: dict[str, Any]) -> bool:
    """Whether the manifest names a schema revision that only a release authenticating its
    manifests writes (the loaded database's own revision is checked against the manifest's
    after loading: ``_check_restored``)."""
    revision = str((manifest.get("database") or {}).get("revision") or "")
    return any(r.isdigit() and int(r) >= FIRST_SIGNED_REVISION for r in revision.split(", "))


def authenticate(
    src: Path,
    manifest: dict[str, Any],
    current: list[str],
    accept_unauthenticated: str | None = None,
) -> dict[str, Any]:
    """Check the manifest's MAC (``backup_manifest.sign_manifest``) under the configured key its key id
    names, before any other field of it is believed: what the restore reports about it
    (``{"authenticated": True, "key_id"}``, or ``{"authenticated": False,
    "accepted_unauthenticated": created_at}`` for a manifest without a MAC that the operator
    accepted by typing its ``created_at``). Raises ``BackupError``: ``manifest_unauthenticated``
    (no MAC, no or another override), ``manifest_forged`` (a MAC that does not verify or is
    malformed), ``keys_missing`` (no configured key has the MAC's key id: named)."""
    mac = manifest.get(backup_manifest.MAC_FIELD)
    if mac is None:
        created_at = manifest.get("created_at")
        if not isinstance(created_at, str) or not created_at:
            raise BackupError(
                f"the manifest of {src} has no MAC and no created_at: not a backup medai "
                "wrote; nothing was restored",
                "manifest_unauthenticated",
            )
        if _signed_release(manifest):
            raise BackupError(
                f"the manifest of {src} has no MAC, but its database is at schema revision "
                f"{manifest.get('database', {}).get('revision')}, which only a medai that "
                "authenticates its manifests writes: the MAC was removed. Do not use this "
                "backup; nothing was restored (no override restores it)",
                "manifest_forged",
            )
        if accept_unauthenticated is None:
            raise BackupError(
                f"the manifest of {src} has no MAC: a backup made before medai authenticated "
                "its manifests, or one whose MAC was removed. Its files' hashes prove nothing "
                "(whoever can write the folder can rewrite them), so it is not restored by "
                "default; nothing was restored. If you know where this backup has been and "
                f"trust it, see docs/deploy/backup.md, 'Backups without a MAC' ({OVERRIDE_OPTION} "
                "with the created_at you read in its manifest.json yourself)",
                "manifest_unauthenticated",
            )
        if not hmac.compare_digest(accept_unauthenticated.encode(), created_at.encode()):
            raise BackupError(
                f"{OVERRIDE_OPTION} must name this backup's created_at ({created_at}) to "
                f"accept its unauthenticated manifest, not {accept_unauthenticated[:40]!r}; "
                "nothing was restored",
                "manifest_unauthenticated",
            )
        log.warning(
            "restoring a backup whose manifest has no MAC (created_at %s), accepted by the "
            "operator's %s",
            created_at,
            OVERRIDE_OPTION,
        )
        return {"authenticated": False, "accepted_unauthenticated": created_at}
    if (
        not isinstance(mac, dict)
        or mac.get("alg") != backup_manifest.MAC_ALG
        or not isinstance(mac.get("key_id"), str)
        or not isinstance(mac.get("value"), str)
    ):
        raise _forged(
            src, f"has a malformed MAC (not {backup_manifest.MAC_ALG} with a key id and a value)"
        )
    kid = mac["key_id"]
    have = sorted({backup_manifest.key_id(k) for k in current})
    if not current:
        raise BackupError(
            "no key is configured: set MEDAI_SECRET_KEYS_FILE (or MEDAI_SECRET_KEYS) to the "
            "operator's copy of the keys, or put the key file at MEDAI_HOME/secret.key; the "
            f"backup's manifest is authenticated under key id {kid[:32]}; nothing was restored",
            "keys_missing",
        )
    candidates = [k for k in current if backup_manifest.key_id(k) == kid]
    if not candidates:
        raise BackupError(
            f"the backup's manifest is authenticated under key id {kid[:32]}, not among the "
            f"configured keys ({', '.join(have)}): configure the operator's copy of the "
            "backed-up site's keys (the key that was newest when the backup was made); a "
            "backup made by another site, or a manifest re-signed by someone else, names a "
            "key id this site never had; nothing was restored",
            "keys_missing",
        )
    value = mac["value"].encode("ascii", "replace")
    try:
        ok = any(
            hmac.compare_digest(backup_manifest.manifest_mac(manifest, k).encode(), value)
            for k in candidates
        )
    except ValueError:  # a value JSON cannot canonicalise (NaN): not what backup wrote
        ok = False
    if not ok:
        raise _forged(src, f"does not verify under key id {kid}")
    return {"authenticated": True, "key_id": kid}


def check_listing(src: Path, manifest: dict[str, Any]) -> None:
    """The folder holds exactly what the manifest lists, each where a backup writes it (the
    database file of its engine, ``blobs/``, ``registry/``, ``config/``): the MAC covers only
    what is listed, so a file added (a second database, a stored file, a destinations file
    that would land in ``restored-config``) is refused, not ignored."""
    files = manifest.get("files")
    database = manifest.get("database")
    db_file = database.get("file") if isinstance(database, dict) else None
    engine_file = {"sqlite": bk.SQLITE_FILE, "postgresql": bk.PG_FILE}
    if (
        not isinstance(files, dict)
        or not isinstance(database, dict)
        # a manifest's engine may be any JSON value: an unknown one names no file
        or engine_file.get(database.get("engine")) != db_file  # type: ignore[arg-type]
        or db_file not in files
    ):
        raise BackupError(
            f"the manifest of {src} does not list its database file as medai writes it; "
            "nothing was restored",
            "backup_damaged",
        )
    roots = (*bk.STATE_DIRS, bk.CONFIG)
    for relative in files:
        parts = PurePosixPath(relative).parts
        if relative != db_file and (
            len(parts) < 2 or parts[0] not in roots or ".." in parts or relative.startswith("/")
        ):
            raise BackupError(
                f"manifest names {relative[:80]!r}, not a place a backup writes; nothing was "
                "restored",
                "backup_damaged",
            )
    present: set[str] = set()
    for dirpath, dirs, names in os.walk(src):
        here = Path(dirpath)
        entries = list(names) + [d for d in dirs if (here / d).is_symlink()]
        present.update((here / n).relative_to(src).as_posix() for n in entries)
    present.discard(backup_manifest.MANIFEST)
    extra = sorted(present - set(files))
    if extra:
        raise BackupError(
            f"{src} holds {len(extra)} file(s) its manifest does not list (e.g. "
            f"{', '.join(repr(e[:80]) for e in extra[:3])}): a backup holds exactly what its "
            "manifest lists, so something was added after `medai backup` wrote it; nothing "
            "was restored",
            "unlisted_files",
        )


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
    have = {backup_manifest.key_id(k) for k in current}
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
    have = {backup_manifest.key_id(k) for k in current}
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
    have = {backup_manifest.key_id(k) for k in current}
    entries = sorted(manifest["files"].items())
    made: set[Path] = set()
    for n, (relative, want) in enumerate(entries, 1):
        source, target = src / relative, staging / relative
        if ".." in Path(relative).parts or Path(relative).is_absolute():
            raise BackupError(f"manifest names {relative!r}, outside the backup", "backup_damaged")
        bk._private_parent(target, made)
        try:  # never through a link, never a FIFO or a device (``check_members``)
            sha, size, head = backup_files.copy_file(
                backup_files.open_member(src, relative), target, BlobCipher.HEADER
            )
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
        # a restore's SQLite target is a file (never in-memory): its path is known
        src, dst = sqlite3.connect(staged), sqlite3.connect(cast(Path, path))
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
            fernets = [(backup_manifest.key_id(k), Fernet(k.encode())) for k in current]
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
    if found["revision"] != manifest["database"].get("revision"):
        raise BackupError(
            f"the restored database is at schema revision {found['revision']}, the manifest "
            f"says {manifest['database'].get('revision')}: the backup was altered",
            "restore_mismatch",
        )
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
            except StorageFault:  # storage_undecryptable: altered, or under a key not configured
                raise BackupError(
                    f"stored file {sha[:12]}… does not decrypt with the "
                    f"configured keys; {_missing_key_hint(manifest, current)}",
                    "keys_missing",
                ) from None
            except ValueError:  # the database names a file by no sha256 (edited by hand)
                raise BackupError(
                    "the restored database names a stored file by a malformed name",
                    "restore_mismatch",
                ) from None
            except OSError as exc:  # a permission or disk error: named, never a key's fault
                raise BackupError(
                    f"stored file {sha[:12]}… cannot be read ({type(exc).__name__}: "
                    f"{exc.strerror or 'I/O error'})",
                    "files_unreadable",
                ) from None
            checked_files = n
            progress("check", n, len(found["files"]))
    return {
        "sealed_values": values,
        "undecryptable_at_backup": bad,
        "files_decrypted": checked_files,
        "files_named": len(found["files"]),
    }


def _move_config(staging: Path, home: Path) -> Path | None:
    """The staged (hash-checked) settings into ``HOME/restored-config``: never the backup
    folder's own ``config`` (a file added there is not what the manifest vouches for)."""
    staged = staging / bk.CONFIG
    if not staged.is_dir():
        return None
    target = home / RESTORED_CONFIG
    os.replace(staged, target)
    return target


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
    settings: Settings,
    progress: Progress | None = None,
    quick: bool = False,
    migrate: bool | None = None,
    accept_unauthenticated: str | None = None,
) -> dict[str, Any]:
    """Restore the backup in ``src`` into this process's empty home and database (the
    steps and why: the module's docstring). ``accept_unauthenticated``: the ``created_at`` of
    a backup whose manifest has no MAC, typed by the operator who accepts it (the previous
    release's backups). Raises ``BackupError`` with a ``code``."""
    progress = progress or bk._quiet
    started = time.monotonic()
    src = Path(src)
    backup_files.check_members(src)  # a link, a FIFO or a device: refused before anything is read
    manifest = backup_manifest.read_manifest(src)
    current = bk.configured_keys(settings)
    authenticated = authenticate(src, manifest, current, accept_unauthenticated)
    check_listing(src, manifest)
    db_info = manifest["database"]
    revision = db_info.get("revision")
    if revision and any(r not in known_revisions() for r in revision.split(", ")):
        raise BackupError(
            f"the backup's database is at migration revision {revision}, which "
            "this medai does not know (a newer release made it): restore it "
            f"with medai {manifest.get('medai_version')} or newer",
            "schema_newer",
        )
    home = Path(settings.storage.home)
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
    _check_keys(manifest, current)
    check_target(url, home)

    private_dir(home)
    staging = home / f".restore-{uuid.uuid4().hex}"
    private_dir(staging)
    before = _pg_objects(url) if engine == "postgresql" else set()
    loaded, moved, config = False, [], None
    try:
        _stage(src, staging, manifest, current, progress)
        progress("database", 0, 1)
        _load_database(manifest, staging / db_info["file"], url)
        loaded = True
        progress("database", 1, 1)
        moved = _move_into_home(staging, home)
        checked = _check_restored(url, home, manifest, current, quick, progress)
        config = _move_config(staging, home)
    except BaseException:  # broad: undone on any exit, re-raised
        if loaded:
            _unload_database(url, before)
        for path in moved:
            shutil.rmtree(path, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    heads = ", ".join(migration_heads())
    if migrate is None:
        migrate = settings.storage.auto_migrate
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
        "manifest": authenticated,
        "revision": revision,
        "migrated_to": migrated_to,
        "needs_migrate": revision != heads and not migrated_to,
        "counts": manifest["counts"],
        "checked": checked,
        "config": str(config) if config else None,
        "seconds": round(time.monotonic() - started, 3),
    }
