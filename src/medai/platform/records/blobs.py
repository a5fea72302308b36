"""Uploaded files, content-addressed under ``MEDAI_HOME/blobs``: a file is named by its sha256
(never by a name a user chose), written while its size is checked, and stored once however
often it is uploaded. Every blob is encrypted at rest (``crypto.BlobCipher``, AES-GCM under the
platform's key list) as it is written, so a DICOM header's patient name is never on disk in
clear; ``read`` returns the plaintext, ``rotate`` re-encrypts under the newest key.

Everything medai keeps on disk is private to its account: folders 0700, files 0600, made so at
creation and tightened at start for what an older version left (``private_dir``,
``private_file``). A write the disk refuses (read-only, full) is raised as the ``OSError`` it is
and named by the error layer (``core.faults``); a half-written upload never stays behind.

Several hosts may share the folder (a ReadWriteMany volume, NFS): a blob is written to a
private temporary file, synced, linked into place (the first writer of a content wins; an equal
later copy is dropped) and its folder synced, so a row never names a file a crash or a power
cut could lose or leave half-written. A failed upload takes its file away only under the
database lock of that file (``held_blobs.discard_unnamed``), and a row naming a file is written
under the same lock after checking the file is there (``held_blobs.hold_blob``), so one host's
discard never removes a file another host's study has just filed."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from medai.core.errors import MedaiError
from medai.core.faults import StorageFault, StorageMissing
from medai.platform.records.crypto import InvalidToken
from medai.platform.records.crypto import blob_cipher as platform_cipher
from medai.platform.records.private_files import (
    DIR_MODE,
    FILE_MODE,
    private_dir,
    set_mode,
    sync_dir,
)

if TYPE_CHECKING:
    from medai.platform.records.crypto import BlobCipher

log = logging.getLogger("medai.platform")
_SHA = re.compile(r"^[0-9a-f]{64}$")
STALE_TEMP_S = 3600  # a temporary file this old is a crash's leftover, not an upload under way


class TooLarge(MedaiError, ValueError):
    status, code = 413, "too_large"


def _name(exc: BaseException, path: str | Path) -> None:
    """A write error (ENOSPC from ``write``) carries no path: give it the file's, so the log
    says which disk failed."""
    if isinstance(exc, OSError) and exc.filename is None:
        exc.filename = str(path)


class BlobStore:
    def __init__(self, root: str | Path, blob_cipher: BlobCipher | None = None) -> None:
        if blob_cipher is None:
            blob_cipher = platform_cipher()
        self.cipher = blob_cipher
        self.root = private_dir(root)
        self._tighten()

    def _tighten(self) -> None:
        """Folders and blobs an older version made with the default mode become private;
        half-written uploads a crash left behind are removed."""
        now = time.time()
        for dirpath, dirnames, filenames in os.walk(self.root):
            for d in dirnames:
                set_mode(Path(dirpath) / d, DIR_MODE)
            for f in filenames:
                path = Path(dirpath) / f
                if f.startswith((".upload-", ".ready-")):
                    try:
                        if now - path.stat().st_mtime > STALE_TEMP_S:
                            path.unlink()
                            continue
                    except OSError:
                        pass
                set_mode(path, FILE_MODE)

    def path(self, sha: str) -> Path:
        if not _SHA.match(sha):
            raise ValueError("not a sha256")
        return self.root / sha[:2] / sha[2:4] / sha

    def _commit(self, tmp: Path, sha: str) -> bool:
        """Move ``tmp`` (whole and synced: ``BlobWriter.close``) into place and sync the
        folder, so a blob a row names survives a power cut; True when this call created the
        blob. Several writers on different hosts may store the same content at once (a shared
        volume): the first link wins and the others keep its copy, so a file a reader on
        another host has open is never replaced by an equal one."""
        final = self.path(sha)
        try:
            for d in (final.parent.parent, final.parent):
                try:
                    d.mkdir(mode=DIR_MODE)
                    sync_dir(d.parent)  # the new folder's name is durable too
                except FileExistsError:
                    pass
            if final.exists():
                try:
                    self.read(sha)
                except FileNotFoundError:  # discarded meanwhile: this copy takes its place
                    self._place(tmp, final, replace=True)
                    return True
                except StorageFault:  # the same content, but the stored copy is damaged
                    log.warning("blob %s… was unreadable: replaced by the new copy", sha[:12])
                    self._place(tmp, final, replace=True)
                    return False
                tmp.unlink()
                return False
            return self._place(tmp, final, replace=False)
        except BaseException:  # broad: the temporary file is removed on any exit, re-raised
            tmp.unlink(missing_ok=True)
            raise

    @staticmethod
    def _place(tmp: Path, final: Path, replace: bool) -> bool:
        """Rename ``tmp`` to ``final`` (``replace``), or link it there unless another writer
        made ``final`` first (then theirs stays: the same content); then sync the folder.
        True when this copy is the one in place."""
        placed = True
        if replace:
            os.replace(tmp, final)
        else:
            try:
                os.link(tmp, final)
            except FileExistsError:
                placed = False  # a writer on this or another host was first
            except OSError as exc:
                if exc.errno not in (
                    errno.EPERM,
                    errno.ENOTSUP,
                    errno.EOPNOTSUPP,
                    errno.EXDEV,
                    errno.EMLINK,
                ):
                    raise
                os.replace(tmp, final)  # a file system without hard links: last rename wins
            tmp.unlink(missing_ok=True)
        sync_dir(final.parent)
        return placed

    def _write_temp(self, data: bytes) -> Path:
        fd, name = tempfile.mkstemp(dir=self.root, prefix=".upload-")  # created 0600
        try:
            with os.fdopen(fd, "wb") as fh:
                sealed = self.cipher.writer(fh)
                sealed.write(data)
                sealed.close()
        except BaseException as exc:  # broad: the temp file removed on any exit, re-raised
            Path(name).unlink(missing_ok=True)
            _name(exc, name)
            raise
        return Path(name)

    def exists(self, sha: str) -> bool:
        return self.path(sha).exists()

    def put_bytes(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        self._commit(self._write_temp(data), sha)  # a damaged stored copy is replaced
        return sha

    async def receive(self, chunks: AsyncIterator[bytes], limit: int) -> tuple[str, int, bool]:
        """Store a stream, refusing it (``TooLarge``) as soon as it passes ``limit`` bytes:
        (sha256, size, whether this call created the blob — only then may a failed upload
        take it away again, ``discard``)."""
        h, size = hashlib.sha256(), 0
        fd, name = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as fh:
                sealed = self.cipher.writer(fh)
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(f"file is larger than {limit:,} bytes")
                    h.update(chunk)
                    sealed.write(chunk)
                sealed.close()
        except BaseException as exc:  # broad: the temp file removed on any exit, re-raised
            tmp.unlink(missing_ok=True)
            _name(exc, tmp)
            raise
        sha = h.hexdigest()
        return sha, size, self._commit(tmp, sha)

    async def put_stream(self, chunks: AsyncIterator[bytes], limit: int) -> tuple[str, int]:
        sha, size, _created = await self.receive(chunks, limit)
        return sha, size

    def discard(self, sha: str) -> None:
        """Remove a blob whose row was never committed (the upload failed after storing it).
        Only the caller that created it, and when no row names it, may call this."""
        try:
            self.path(sha).unlink(missing_ok=True)
        except OSError as exc:  # the disk that failed the row may refuse this too
            log.warning(
                "blob %s… of a failed upload stays (%s); it names no study",
                sha[:12],
                errno.errorcode.get(exc.errno or 0, type(exc).__name__),
            )

    def read(self, sha: str) -> bytes:
        """The stored file's plaintext, checked against its name. A blob altered on disk,
        truncated, swapped with another or sealed under a key no longer configured (and a
        clear legacy file whose content is not its name's) is a ``StorageFault``
        (``storage_undecryptable``, naming the file): the API answers 503 with that code,
        never other bytes. A blob gone from the disk is ``StorageMissing`` (a
        ``storage_missing`` fault that is also a ``FileNotFoundError``): every route that reads
        one answers the same 503, not a 500."""
        path = self.path(sha)
        try:
            data = self.cipher.open(path.read_bytes())
        except FileNotFoundError:
            raise StorageMissing(str(path)) from None
        except InvalidToken:
            raise StorageFault("storage_undecryptable", str(path), "InvalidToken") from None
        if hashlib.sha256(data).hexdigest() != sha:
            raise StorageFault("storage_undecryptable", str(path), "content is not its name's")
        return data

    def rotate(self) -> dict[str, int]:
        """Re-encrypt under the newest key every blob sealed with an older one, and encrypt
        those an older version stored in clear; each is replaced atomically, so a reader
        meanwhile sees the old or the new file, both readable while the old key is listed.
        A blob that cannot be read (altered, or under a key not listed) is left as it is,
        logged by name and counted: keep the old key until ``unreadable`` is 0. Returns
        ``{"rotated": …, "unreadable": …}``."""
        counts = {"rotated": 0, "unreadable": 0}
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for f in filenames:
                if not _SHA.match(f):
                    continue  # a temporary file under way
                path = Path(dirpath) / f
                try:
                    with path.open("rb") as fh:
                        head = fh.read(self.cipher.HEADER)
                    if self.cipher.key_id(head) == self.cipher.newest:
                        continue
                    tmp = self._write_temp(self.read(f))
                except FileNotFoundError:
                    continue  # discarded meanwhile (a failed upload)
                except StorageFault as exc:
                    log.error("blob %s… not re-encrypted: %s", f[:12], exc.reason)
                    counts["unreadable"] += 1
                    continue
                if not path.exists():  # discarded while it was re-encrypted: stays gone
                    tmp.unlink(missing_ok=True)
                    continue
                os.replace(tmp, path)
                sync_dir(path.parent)
                counts["rotated"] += 1
        return counts

    def check_writable(self) -> None:
        """Readiness: a small real file is written, synced and removed (raises the OSError
        a read-only or full disk gives)."""
        fd, name = tempfile.mkstemp(dir=self.root, prefix=".ready-")
        try:
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        except OSError as exc:
            _name(exc, name)
            raise
        finally:
            os.close(fd)
            os.unlink(name)
