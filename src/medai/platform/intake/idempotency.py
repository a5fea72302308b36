"""Idempotency keys of uploads: an ``Idempotency-Key`` header on ``POST /api/v1/studies``
(the IETF draft "The Idempotency-Key HTTP Header Field", as Stripe does it) files an upload
once however often it is retried.

Why: an uploader that lost the answer (a node killed after committing, a dropped connection)
cannot know whether its upload was filed; retrying without a key filed the image twice (the
two-node kill test: 101 studies for 100 uploads). With a key, the retry answers the study the
first attempt filed.

How: the key (opaque, chosen by the client, scoped to the signed-in user) and a fingerprint of
the upload are inserted (``claim``) in the transaction that files the study, before the study
itself, under a unique (user, key). Two replicas racing on one key then serialise on that
index: PostgreSQL makes the second insert wait for the first transaction and fail once it
commits; SQLite's write lock (BEGIN IMMEDIATE) makes the second see the committed row. Either
way the loser files nothing and answers the winner's study. The fingerprint is a keyed hash
(HMAC-SHA256 under the server's key, ``crypto.Cipher.pseudonyms``) of the file's sha256 and the
form fields that shape the study: the clinical question and patient reference are sealed at
rest, and a plain hash beside the file's sha256 would let a stolen database test guesses.
Keys are forgotten after a day (``TTL``): an expired row counts as absent, and ``sweep``
deletes such rows, run at most hourly by the upload route itself (``maybe_sweep``), so no
deployment (embedded pool or broker) needs another loop for it.
"""

from __future__ import annotations

import json
import re
import threading
import weakref
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medai.core.errors import MedaiError
from medai.platform.records.crypto import cipher
from medai.platform.records.db import utcnow
from medai.platform.records.tables import UploadKey

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
MAX_LENGTH = 128
# printable ASCII (space to tilde), neither starting nor ending with a space: HTTP trims the
# spaces around a field value, so a key that had them would arrive as another key
PATTERN = r"^[!-~](?:[ -~]{0,126}[!-~])?$"
TTL = timedelta(hours=24)
SWEEP_EVERY = timedelta(hours=1)
_KEY = re.compile(PATTERN)


class InvalidKey(MedaiError, ValueError):
    """A header value that is not 1–128 printable ASCII characters (the API's 400)."""

    status, code = 400, "invalid_idempotency_key"


class KeyTaken(MedaiError, Exception):
    """Another request committed this user's key first (or holds it until it commits):
    this transaction files nothing and answers that request's study."""

    code = "conflict"


class KeyReused(MedaiError, ValueError):
    """The user's key was used for another upload (another file or other fields) within
    ``TTL``: the API's 422, never a replay of that other upload's study."""

    status, code = 422, "idempotency_key_reused"


def checked(value: str | None) -> str | None:
    """The key of a header value (None: no header, the upload is not keyed)."""
    if value is None:
        return None
    if not _KEY.match(value):
        raise InvalidKey(
            f"the {HEADER} header must be 1 to {MAX_LENGTH} printable ASCII "
            "characters (a UUID, say)"
        )
    return value


def fingerprints(sha: str, fields: dict[str, Any]) -> list[str]:
    """The upload's fingerprint under every configured key, newest first (a key rotation
    keeps recognising a row made before it): its file and its form fields."""
    text = json.dumps(
        {"file": sha, **fields}, sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return cipher().pseudonyms(text)


def find(db: Session, user_id: int, key: str, now: datetime | None = None) -> UploadKey | None:
    """The user's committed, unexpired row of ``key``."""
    row = db.scalar(select(UploadKey).where(UploadKey.user_id == user_id, UploadKey.key == key))
    if row is None or row.created_at < (now or utcnow()) - TTL or row.study_id is None:
        return None
    return row


def claim(
    db: Session, user_id: int, key: str, fingerprint: str, now: datetime | None = None
) -> UploadKey:
    """Insert the user's ``key`` in this transaction, first of the upload's writes: raises
    ``KeyTaken`` when another request holds it (its row is committed, or its insert wins
    the unique index once it commits). An expired row of the key is replaced."""
    now = now or utcnow()
    old = db.scalar(select(UploadKey).where(UploadKey.user_id == user_id, UploadKey.key == key))
    if old is not None:
        if old.created_at >= now - TTL:
            raise KeyTaken(key)
        db.execute(delete(UploadKey).where(UploadKey.id == old.id))
    row = UploadKey(user_id=user_id, key=key, fingerprint=fingerprint, created_at=now)
    db.add(row)
    try:
        db.flush()
    except IntegrityError:  # a racing request's row: committed now, or rolled back (retry)
        raise KeyTaken(key) from None
    return row


def sweep(db: Session, now: datetime | None = None) -> int:
    """Delete the keys older than ``TTL``; how many went."""
    cutoff = (now or utcnow()) - TTL
    done = db.execute(delete(UploadKey).where(UploadKey.created_at < cutoff))
    return cast(CursorResult, done).rowcount or 0  # a DELETE's result is a CursorResult


_swept: weakref.WeakKeyDictionary[Any, datetime] = weakref.WeakKeyDictionary()
_sweeping = threading.Lock()


def maybe_sweep(database: Any, now: datetime | None = None) -> int | None:
    """``sweep`` in its own transaction, unless this process swept ``database`` within
    ``SWEEP_EVERY`` (None then). Its own transaction: a keyed upload never waits on another
    replica deleting the same old rows. A failure is left for the next time."""
    now = now or utcnow()
    with _sweeping:
        last = _swept.get(database)
        if last is not None and now - last < SWEEP_EVERY:
            return None
        _swept[database] = now
    with database.session() as db:
        return sweep(db, now)
