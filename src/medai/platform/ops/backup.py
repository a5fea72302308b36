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

import errno
import hashlib
import hmac
import json
import os
import re
import shutil
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

import medai
from medai.core.errors import MedaiError
from medai.platform.ops import pg_tools
from medai.platform.ops.rotation import SEALED, SEALED_SINCE, _raw
from medai.platform.records.crypto import BlobCipher, _derive
from medai.platform.records.db import default_url, sqlite_path
from medai.platform.records.private_files import private_dir
from medai.settings import Settings

FORMAT = "medai-backup/1"  # unchanged by the MAC: an older release ignores the new field
MANIFEST = "manifest.json"
MAC_FIELD, MAC_ALG = "mac", "HMAC-SHA256"
MAC_INFO = b"medai backup manifest v1"  # HKDF info: this key serves nothing else
SQLITE_FILE, PG_FILE = "database.sqlite", "database.pgdump"
CONFIG = "config"
STATE_DIRS = ("blobs", "registry")  # under MEDAI_HOME: what the database names
_SHA = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20
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


class BackupError(MedaiError, RuntimeError):
    """A backup or restore refused or failed; ``code`` names why (``--json``)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def _quiet(_phase: str, _done: int, _total: int) -> None:
    pass


# --- keys ---


def key_id(key: str) -> str:
    """A key's id as stored files carry it (``BlobCipher``: 8 bytes of a hash of a key
    derived from it), in hex: safe to print and to keep beside the data."""
    return BlobCipher([key]).newest.hex()


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
        except Exception:  # InvalidToken: try the next key
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


# --- the manifest's authentication ---


def canonical_manifest(manifest: dict[str, Any]) -> bytes:
    """The bytes the MAC covers: every field but ``mac``, as JSON with sorted keys, no
    whitespace and ASCII escapes, so the same manifest gives the same bytes however it was
    indented on disk."""
    body = {k: v for k, v in manifest.items() if k != MAC_FIELD}
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def manifest_mac(manifest: dict[str, Any], key: str) -> str:
    """HMAC-SHA256 (hex) of the canonical manifest under the key derived from ``key`` for
    this purpose alone (never the Fernet key itself, never the blob or pseudonym keys)."""
    return hmac.new(
        _derive(key, MAC_INFO), canonical_manifest(manifest), hashlib.sha256
    ).hexdigest()


def sign_manifest(manifest: dict[str, Any], key: str) -> dict[str, Any]:
    """``manifest`` with its ``mac`` (under ``key``, named by its key id) set."""
    body = {k: v for k, v in manifest.items() if k != MAC_FIELD}
    return {
        **body,
        MAC_FIELD: {"alg": MAC_ALG, "key_id": key_id(key), "value": manifest_mac(body, key)},
    }


# --- what a database holds ---


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


# --- copying ---


def sha256_file(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def copy_file(src: Path | BinaryIO, dst: Path, head: int = 0) -> tuple[str, int, bytes]:
    """Copy ``src`` (a path, or a file opened by ``open_member``, closed here) to the new file
    ``dst`` (0600, synced), hashing as it goes: (sha256, size, its first ``head`` bytes). An
    existing ``dst`` is never overwritten."""
    h, size, first = hashlib.sha256(), 0, b""
    try:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except BaseException:
        if not isinstance(src, Path):
            src.close()
        raise
    try:
        with src.open("rb") if isinstance(src, Path) else src as fi, os.fdopen(fd, "wb") as fo:
            while chunk := fi.read(_CHUNK):
                if len(first) < head:
                    first += chunk[: head - len(first)]
                h.update(chunk)
                size += len(chunk)
                fo.write(chunk)
            fo.flush()
            os.fsync(fo.fileno())
    except BaseException:
        dst.unlink(missing_ok=True)
        raise
    return h.hexdigest(), size, first


# --- a backup's members: regular files and folders only ---

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_OPENAT = bool(_NOFOLLOW and _DIRECTORY) and os.open in os.supports_dir_fd


def _kind(mode: int) -> str | None:
    """What a member is when it is not a regular file or a folder (None when it is one)."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _unsafe(src: Path, relative: str, kind: str) -> BackupError:
    path = src / relative
    if kind == "a symbolic link":
        try:
            kind += f" to {os.readlink(path)[:80]!r}"
        except OSError:
            pass
    return BackupError(
        f"{relative[:120]!r} in {src} is {kind}: a backup holds only the regular files and "
        "folders `medai backup` wrote, so it was not read (a link or a device could point the "
        "restore at any file, or at a stream that never ends); nothing was restored",
        "unsafe_file",
    )


def check_members(src: Path) -> None:
    """Refuse a backup folder holding anything but regular files and folders (a symbolic
    link, a FIFO, a device, a socket), from ``lstat`` alone, before any file of it is opened:
    reading a link to ``/dev/zero`` never ends, a FIFO's open blocks for good, and a link to a
    file outside the backup would be restored as if the backup held it. ``src`` itself may be
    a link (the operator names the folder)."""
    for dirpath, dirs, names in os.walk(src):
        here = Path(dirpath)
        for name in sorted([*dirs, *names]):
            kind = _kind(os.lstat(here / name).st_mode)
            if kind is not None:
                raise _unsafe(src, (here / name).relative_to(src).as_posix(), kind)


def open_member(src: Path, relative: str) -> BinaryIO:
    """Open the backup's file ``relative`` for reading, never through a link and never
    anything but a regular file: each folder on the way and the file itself are opened with
    ``O_NOFOLLOW`` relative to the one before (a link put in place after ``check_members``
    looked is refused too), the file with ``O_NONBLOCK`` (a FIFO's open does not wait for a
    writer) and checked to be a regular file before a byte is read. Raises ``BackupError``
    ``unsafe_file`` naming the member, ``FileNotFoundError`` when it is missing."""
    parts = PurePosixPath(relative).parts
    if not parts or ".." in parts or PurePosixPath(relative).is_absolute():
        raise BackupError(f"manifest names {relative[:80]!r}, outside the backup", "backup_damaged")
    try:
        if _OPENAT:
            folder = os.open(src, os.O_RDONLY | _DIRECTORY)
            try:
                for part in parts[:-1]:
                    inner = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=folder)
                    os.close(folder)
                    folder = inner
                fd = os.open(parts[-1], os.O_RDONLY | _NOFOLLOW | _NONBLOCK, dir_fd=folder)
            finally:
                os.close(folder)
        else:  # no openat here: each step looked at with lstat, then opened
            path = src
            for part in parts:
                path = path / part
                kind = _kind(os.lstat(path).st_mode)
                if kind is not None:
                    raise _unsafe(src, relative, kind)
            fd = os.open(path, os.O_RDONLY | _NONBLOCK)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        raise _unsafe(src, *_first_unsafe(src, parts)) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _unsafe(src, relative, _kind(mode) or "a folder")
    return os.fdopen(fd, "rb")


def _first_unsafe(src: Path, parts: tuple[str, ...]) -> tuple[str, str]:
    """(the member, what it is) of the first step of ``parts`` that is neither a folder nor a
    regular file (a link, a device), for a refusal that names it."""
    path = src
    for part in parts:
        path = path / part
        try:
            kind = _kind(os.lstat(path).st_mode)
        except OSError:
            break
        if kind is not None:
            return path.relative_to(src).as_posix(), kind
    return PurePosixPath(*parts).as_posix(), "not a regular file"


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


# --- settings ---


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


# --- the database ---


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


# --- the backup ---


def _empty_or_new(dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(
            f"{dest} exists and is not an empty folder: a backup goes into a new "
            "(or empty) folder, never over another",
            "destination_not_empty",
        )


def write_manifest(dest: Path, manifest: dict[str, Any]) -> None:
    tmp = dest / f".{MANIFEST}.tmp"
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, dest / MANIFEST)


def read_manifest(src: Path) -> dict[str, Any]:
    path = src / MANIFEST
    try:
        with open_member(src, MANIFEST) as fh:
            manifest = json.loads(fh.read())
    except FileNotFoundError:
        raise BackupError(
            f"{src} has no {MANIFEST}: not a medai backup, or one that did not finish",
            "not_a_backup",
        ) from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path} cannot be read ({type(exc).__name__})", "not_a_backup") from None
    if not isinstance(manifest, dict):
        raise BackupError(f"{path} is not a JSON object: not a medai backup", "not_a_backup")
    if manifest.get("format") != FORMAT:
        raise BackupError(
            f"{path}: format {manifest.get('format')!r} is not {FORMAT!r} (a "
            "backup of another medai)",
            "unknown_format",
        )
    return manifest


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
