"""Whether this process holds the keys its site's data is sealed under, checked before anything
starts: ``medai serve``, ``medai worker``, the DICOM node and every ``open_platform`` call
``require_keys``; readiness calls ``check_ready``; ``medai keys ids`` prints ``inspect_site``.

Why: a restored home started without the operator's copy of its keys (no
``MEDAI_SECRET_KEYS``/``_FILE``, no ``HOME/secret.key``) used to get a freshly generated key and
report ready, and then every old study answered 503 ``record_undecryptable``; worse, new data
went in under a key the old data does not share. A key is now generated only for a new site:
a database that holds no sealed value and names no stored file, and a ``blobs`` folder that
holds no sealed file (``crypto._key_file`` keeps that last rule for every caller).

What it reads, so that a database of millions of rows is never scanned at a start: of each
sealed column (``rotation.SEALED``, as ``backup.sealed_columns`` finds it in this schema) the
non-empty values among its newest ``WINDOW`` rows, at most ``SAMPLE`` of them, and of each
column naming a stored file (``*_sha256``) the newest ``FILES`` files' headers. A Fernet token
carries no key id, so which key a sealed value needs is only known by trying the configured
keys; a stored file's header names its key id (``BlobCipher``): those are the ids reported as
needed. The site passes when it holds no sealed data, or when a configured key opens some of
what was sampled; a key id the files need that is not configured is logged (a rotation left
half-done) but does not stop the start: those records answer ``record_undecryptable`` alone.

Two processes starting on a new site: the key file is linked into place atomically
(``crypto._key_file``), so both read the same key; after making it the check runs again, so a
process whose home is not shared (a second node without ``MEDAI_SECRET_KEYS``) and that lost
the race to another node writing under another key is refused, not served. Log lines and
messages name key ids (8 bytes of a hash of a derived key), never a key or a value.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Integer, column, create_engine, inspect, select, table
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from medai.core.faults import StorageFault
from medai.platform.ops.backup import configured_keys, file_columns, sealed_columns
from medai.platform.ops.backup_manifest import key_id
from medai.platform.records.crypto import BlobCipher, KeysMissing, _stored_key_ids, cipher
from medai.platform.records.db import sqlite_path
from medai.settings import Settings

if TYPE_CHECKING:
    from medai.platform.context import Platform

__all__ = ["KeyState", "KeysMissing", "check_ready", "inspect_site", "require_keys"]

log = logging.getLogger("medai.platform")

SAMPLE = 20  # sealed values tried per column
WINDOW = 500  # newest rows of a column looked at for them (bounded, whatever the table's size)
FILES = 8  # stored files' headers read per file column
READY_TTL_S = 60.0  # a passing readiness verdict is reused this long
WHERE_KEYS = "MEDAI_SECRET_KEYS_FILE, MEDAI_SECRET_KEYS or MEDAI_HOME/secret.key"
_FERNET_PREFIX = b"gAAAAA"  # a Fernet token: version 0x80 and a timestamp, in URL-safe base64


@dataclass
class KeyState:
    """What the sample showed: the configured key ids, the key ids the stored files need, and
    how much of the sample the configured keys open."""

    configured: list[str]
    needed: list[str] = field(default_factory=list)
    sealed: int = 0  # sealed values sampled
    opened: int = 0  # of them, opened by a configured key
    files: int = 0  # sealed stored files sampled
    files_opened: int = 0  # of them, under a configured key id
    files_on_disk: bool = False  # the blobs folder holds sealed files the database names not

    @property
    def holds_data(self) -> bool:
        return self.sealed > 0 or self.files > 0

    @property
    def new_site(self) -> bool:
        """Nothing sealed anywhere: the only site a key may be generated for."""
        return not self.holds_data and not self.files_on_disk

    @property
    def missing(self) -> list[str]:
        return [k for k in self.needed if k not in self.configured]

    @property
    def usable(self) -> bool:
        """A configured key opens some of the sampled data (or there is none to open)."""
        if not self.holds_data:
            return bool(self.configured) or self.new_site
        return bool(self.configured) and (self.opened > 0 or self.files_opened > 0)

    @property
    def status(self) -> str:
        if not self.usable:
            return "keys_missing"
        if not self.configured:
            return "new_site"
        return "some_keys_missing" if self.missing else "ok"

    def as_dict(self) -> dict[str, Any]:
        """``medai keys ids --json``: stable keys (``key_ids`` is ``configured``, as before)."""
        return {
            "status": self.status,
            "configured": self.configured,
            "needed": self.needed,
            "missing": self.missing,
            "sampled": {
                "sealed_values": self.sealed,
                "sealed_values_opened": self.opened,
                "files": self.files,
                "files_opened": self.files_opened,
            },
            "key_ids": self.configured,
        }

    def problem(self) -> str:
        """Why the site cannot start with these keys (key ids and counts only)."""
        needs = (
            f"key id(s) {', '.join(self.needed)}"
            if self.needed
            else "a key whose id no sampled stored file names"
        )
        held = f"{self.sealed} sealed values and {self.files} stored files sampled" + (
            "; MEDAI_HOME/blobs holds sealed files" if self.files_on_disk else ""
        )
        if not self.configured:
            return (
                f"the site holds data sealed under {needs} ({held}), and no key is "
                f"configured ({WHERE_KEYS}): configure the operator's copy of the site's keys; "
                "a new key is made only for a new site, and it would open none of this data "
                "(`medai keys ids` lists what the data needs)"
            )
        return (
            f"the configured key(s) ({', '.join(self.configured)}) open none of the "
            f"{held}; the data needs {needs}: configure the operator's copy of the site's keys "
            f"({WHERE_KEYS}; `medai keys ids` lists what the data needs)"
        )


def _token(value: Any) -> bytes | None:
    """A stored value as a Fernet token, or None for a value that is not one (an older
    release's value in clear, a JSON object a migration has not sealed yet)."""
    if isinstance(value, memoryview):
        value = bytes(value)
    if isinstance(value, str):
        if value.startswith('"'):  # a JSON column read raw: the token is a JSON string
            try:
                value = json.loads(value)
            except ValueError:
                return None
            if not isinstance(value, str):
                return None
        value = value.encode("ascii", "replace")
    if isinstance(value, bytes) and value.startswith(_FERNET_PREFIX):
        return value
    return None


def _newest(conn: Connection, name: str, col: str, limit: int) -> list[Any]:
    """The non-empty values of ``name.col`` among its newest ``WINDOW`` rows (by id), raw
    (no column type between), at most ``limit``: a bounded read on the primary key."""
    t = table(name, column("id", Integer()), column(col))
    recent = select(t.c[col].label("v")).order_by(t.c.id.desc()).limit(WINDOW).subquery()
    return [
        r[0] for r in conn.execute(select(recent.c.v).where(recent.c.v.is_not(None)).limit(limit))
    ]


def survey(conn: Connection, blobs: Path, keys: list[str]) -> KeyState:
    """The sample of one database (any schema this release or an older one made) and of its
    stored files under ``blobs``, against ``keys``."""
    configured = [key_id(k) for k in keys]
    state = KeyState(configured=configured)
    fernets = [Fernet(k.encode()) for k in keys]
    for label, _t, _ids, col in sealed_columns(conn):
        for value in _newest(conn, label.split(".", 1)[0], col.name, SAMPLE):
            token = _token(value)
            if token is None:
                continue
            state.sealed += 1
            for f in fernets:
                try:
                    f.decrypt(token)
                except InvalidToken:  # the next key
                    continue
                state.opened += 1
                break
    tables = set(inspect(conn).get_table_names())
    needed: set[str] = set()
    named = 0
    for name, col in file_columns(conn):
        if name not in tables or "id" not in {c["name"] for c in inspect(conn).get_columns(name)}:
            continue
        for sha in _newest(conn, name, col, FILES):
            if not isinstance(sha, str) or len(sha) != 64:
                continue
            named += 1
            kid = _file_key_id(blobs / sha[:2] / sha[2:4] / sha)
            if kid is None:
                continue
            needed.add(kid)
            state.files += 1
            state.files_opened += kid in configured
    if not named:  # the database names no file: is the folder a site's all the same?
        on_disk = _stored_key_ids(blobs)
        if on_disk:
            state.files_on_disk = True
            needed |= on_disk
    state.needed = sorted(needed)
    return state


def _file_key_id(path: Path) -> str | None:
    """A stored file's key id from its header; None for one in clear or unreadable (missing
    from the disk: ``storage_missing`` is another check's to name)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(BlobCipher.HEADER)
    except OSError:
        return None
    if not head.startswith(BlobCipher.MAGIC):
        return None
    return head[len(BlobCipher.MAGIC) : len(BlobCipher.MAGIC) + 8].hex()


def inspect_site(url: str, blobs: Path, keys: list[str]) -> KeyState:
    """``survey`` of the database at ``url`` WITHOUT creating it (a SQLite file that does not
    exist holds nothing) and without making a key: what ``medai keys ids`` prints."""
    path = sqlite_path(url)
    if url.startswith("sqlite") and (path is None or not path.is_file()):
        state = KeyState(configured=[key_id(k) for k in keys])
        on_disk = _stored_key_ids(blobs)
        if on_disk:
            state.files_on_disk, state.needed = True, sorted(on_disk)
        return state
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return survey(conn, blobs, keys)
    finally:
        engine.dispose()


def _survey_engine(engine: Engine, blobs: Path, keys: list[str]) -> KeyState:
    with engine.execution_options(medai_read_only=True).connect() as conn:
        try:
            return survey(conn, blobs, keys)
        finally:
            conn.rollback()


def require_keys(engine: Engine, blobs: Path, settings: Settings) -> KeyState:
    """The start gate: raise ``KeysMissing`` (naming the key ids the data needs) when the
    site holds sealed data that no configured key opens, or holds any and no key is
    configured; make the site's key (``HOME/secret.key``) only when it holds none. Runs
    before the database is migrated (a migration seals values with the key)."""
    keys = configured_keys(settings)
    state = _survey_engine(engine, blobs, keys)
    if not state.usable:
        log.error(
            "keys: refusing to start: the data needs key id(s) %s; configured: %s",
            ", ".join(state.needed) or "(not named by a stored file)",
            ", ".join(state.configured) or "none",
        )
        raise KeysMissing(state.problem())
    if not keys:  # a new site: its key, made once (atomically: every process reads the same)
        cipher()
        keys = configured_keys(settings)
        state = _survey_engine(engine, blobs, keys)  # another node may have written meanwhile
        if not state.usable:
            log.error(
                "keys: the key just made (%s) opens none of the data written meanwhile",
                ", ".join(state.configured),
            )
            raise KeysMissing(state.problem())
        log.info("keys: a new site: made its key (key id %s)", ", ".join(state.configured))
    elif state.missing:
        log.warning(
            "keys: stored files need key id(s) %s, not configured (configured: %s): their "
            "records answer 503 until the key is configured again",
            ", ".join(state.missing),
            ", ".join(state.configured),
        )
    return state


_ready: dict[tuple[str, str, tuple[str, ...]], float] = {}
_ready_lock = threading.Lock()


def check_ready(p: Platform, now: Callable[[], float] = time.monotonic) -> None:
    """Readiness: raise ``KeysMissing`` when the keys this process has open none of the
    site's sealed data (the keys changed under a running process, or a second node made a
    key of its own). A passing verdict is reused for ``READY_TTL_S`` per key list, so a
    probe every few seconds reads the sample about once a minute; a failing one is read
    again at every probe. A database that cannot be read is the database check's to name."""
    keys = configured_keys(p.settings)
    ids = tuple(key_id(k) for k in keys)
    blobs = Path(p.store.root)
    cache = (str(p.db.url), str(blobs), ids)
    with _ready_lock:
        if now() - _ready.get(cache, float("-inf")) < READY_TTL_S:
            return
    try:
        state = _survey_engine(p.db.engine, blobs, keys)
    except (SQLAlchemyError, StorageFault, OSError):
        return  # named by the database check
    if not state.usable:
        raise KeysMissing(state.problem())
    with _ready_lock:
        _ready[cache] = now()
