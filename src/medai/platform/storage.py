"""Uploaded files, content-addressed under ``MEDAI_HOME/blobs``: a file is named by its sha256
(never by a name a user chose), written while its size is checked, and stored once however
often it is uploaded."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

_SHA = re.compile(r"^[0-9a-f]{64}$")


class TooLarge(ValueError):
    pass


class BlobStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha: str) -> Path:
        if not _SHA.match(sha):
            raise ValueError("not a sha256")
        return self.root / sha[:2] / sha[2:4] / sha

    def _commit(self, tmp: Path, sha: str) -> None:
        final = self.path(sha)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            tmp.unlink()
        else:
            os.replace(tmp, final)

    def put_bytes(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        if not self.path(sha).exists():
            fd, name = tempfile.mkstemp(dir=self.root, prefix=".upload-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            self._commit(Path(name), sha)
        return sha

    async def put_stream(self, chunks: AsyncIterator[bytes], limit: int) -> tuple[str, int]:
        """Store a stream, refusing it (``TooLarge``) as soon as it passes ``limit`` bytes."""
        h, size = hashlib.sha256(), 0
        fd, name = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as fh:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(f"file is larger than {limit:,} bytes")
                    h.update(chunk)
                    fh.write(chunk)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        sha = h.hexdigest()
        self._commit(tmp, sha)
        return sha, size

    def read(self, sha: str) -> bytes:
        return self.path(sha).read_bytes()
