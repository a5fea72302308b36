"""Blob holding: a stored image file named by its content hash stays while a study or instance names it;
a file no row names any more is discarded (never one another study still holds)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from medai.core.faults import StorageMissing
from medai.platform.records.db import lock_key
from medai.platform.records.tables import (
    DicomInstance,
    IdentityConflict,
    Study,
)


def _blob_key(sha: str) -> str:
    return f"blob:{sha}"


def hold_blob(db: Session, store: Any, sha: str) -> None:
    """Before a row names the stored file ``sha``: take the file's lock for this transaction
    and check the file is there. A failed upload of the same content on another host or
    thread discards it only under the same lock (``discard_unnamed``), so either that
    discard sees this row and keeps the file, or this check sees it gone and the caller is
    told (``StorageMissing``: the API's 503, the DICOM node's Out of Resources, both retried
    by the sender) instead of filing a study without its file."""

    lock_key(db, _blob_key(sha))
    db.connection()  # SQLite: the write lock (BEGIN IMMEDIATE) is taken before the check
    if not store.exists(sha):
        raise StorageMissing(str(store.path(sha)))


def _named(db: Session, sha: str) -> bool:
    return (
        db.scalar(select(Study.id).where(Study.file_sha256 == sha).limit(1))
        or db.scalar(select(DicomInstance.id).where(DicomInstance.file_sha256 == sha).limit(1))
        or db.scalar(
            select(IdentityConflict.id)
            .where(IdentityConflict.file_sha256 == sha, IdentityConflict.state == "open")
            .limit(1)
        )
    ) is not None


def discard_unnamed(p: Any, sha: str, what: str) -> None:
    """Take away the stored file ``sha`` of an upload or instance that got no row, unless a
    study or a DICOM instance names it (the same file arrived meanwhile). The check and the
    removal hold the file's lock (``hold_blob``): a study of the same content filed at the
    same moment on another node either commits first (its row is seen, the file stays) or
    finds the file gone and is refused. A database that takes no write (read-only, full)
    files no row either, so a read decides there; when the database cannot be read the file
    stays: an orphan file is safer than a study without its file."""
    import logging

    try:
        with p.db.session() as db:
            lock_key(db, _blob_key(sha))
            if not _named(db, sha):
                p.store.discard(sha)  # inside the lock: no row can name it meanwhile
        return
    except Exception as exc:  # broad: a cleanup never masks its cause; a read decides (logged)
        logging.getLogger("medai.platform").warning(
            "blob of %s: locked discard failed (%s); a read decides", what, type(exc).__name__
        )
    try:
        with p.db.reader() as db:
            named = _named(db, sha)
    except Exception as exc:  # broad: a cleanup never masks its cause; the file stays (logged)
        logging.getLogger("medai.platform").warning(
            "blob of %s kept: the database cannot be read (%s)", what, type(exc).__name__
        )
        return
    if not named:
        p.store.discard(sha)
