"""Encryption at rest for patient text (chat messages, triage complaints, DICOM names) and
for every stored file (``BlobCipher``: a DICOM's header names the patient).

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) with a key list: the first key
encrypts, every key decrypts (``MultiFernet``), so a key is rotated by putting a new key first
and running ``medai keys rotate``, which re-encrypts every stored message with it; the old key
can then be removed. Without ``MEDAI_SECRET_KEYS`` a key is generated once into
``MEDAI_HOME/secret.key`` (mode 0600, in a 0700 home; a looser mode left by an older version
is tightened when the key is read) — on a new site only: a home whose ``blobs`` hold a stored
file never gets a freshly minted key (``KeysMissing``, naming the key ids the files carry), and
the start of serve, the worker and the DICOM node checks the database too
(``platform.ops.key_check``): a restored site served without its keys would otherwise answer every
old record with 503 ``record_undecryptable`` under a new key that opens none of them.
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from medai.core.errors import MedaiError
from medai.platform.records.private_files import private_dir, private_file, sync_dir
from medai.settings import get_settings

__all__ = ["BlobCipher", "Cipher", "InvalidToken", "KeysMissing", "blob_cipher", "cipher"]


class KeysMissing(MedaiError, RuntimeError):
    """The site holds data sealed under keys this process does not have (none configured, or
    none of those configured opens it): a restored home started without the operator's copy
    of its keys. Named with the key ids the data needs, never a key; the API answers 503, the
    CLI exits 3."""

    status, code = 503, "keys_missing"


class Cipher:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._fernet = MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])
        self.blobs = BlobCipher(keys)
        self._mac_keys = [_derive(k, b"medai pseudonym v1") for k in keys]
        self._mac_key = self._mac_keys[0]

    def encrypt(self, text: str) -> bytes:
        return self._fernet.encrypt(text.encode("utf-8"))

    def decrypt(self, token: bytes) -> str:
        return self._fernet.decrypt(bytes(token)).decode("utf-8")

    def rotate(self, token: bytes) -> bytes:
        """The same plaintext under the newest key."""
        return self._fernet.rotate(bytes(token))

    def pseudonym(self, text: str) -> str:
        """A keyed hash (HMAC-SHA256, 128 bits in hex) of text that is only ever compared,
        never read back: what a stranger typed as a user name (often a password typed into
        the wrong field) is counted and audited under it. Without the key (derived from the
        newest key) a stolen database cannot test guesses against it; a key rotation starts
        new pseudonyms (a throttle window then restarts)."""
        import hashlib
        import hmac

        return hmac.new(self._mac_key, text.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    def pseudonyms(self, text: str) -> list[str]:
        """``text``'s pseudonym under every configured key, newest first: what a lookup by
        pseudonym matches while a rotation (``medai keys rotate``) has not yet re-keyed
        every stored one."""
        import hashlib
        import hmac

        return [
            hmac.new(k, text.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
            for k in self._mac_keys
        ]


def _derive(key: str | bytes, info: bytes) -> bytes:
    """A 256-bit key for one purpose (``info``) from one of the Fernet keys (HKDF-SHA256)."""
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    raw = base64.urlsafe_b64decode(key.encode() if isinstance(key, str) else key)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(raw)


class BlobCipher:
    """Stored files under AES-256-GCM, streamed (an upload is encrypted as it arrives, never
    whole in memory and never in clear on disk): ``MAGIC · key id · nonce · ciphertext · tag``.
    Each blob key is derived (HKDF-SHA256) from one of the same keys as ``Cipher``'s, so one
    key list and one ``medai keys rotate`` serve both; the key id (8 bytes of a hash of the
    derived key, not the key) says which key opens a blob. A file without the magic is one an
    older version stored in clear: it is read as it is, and ``keys rotate`` encrypts it."""

    MAGIC = b"MEDAIB1\n"
    HEADER = len(MAGIC) + 8 + 12
    TAG = 16

    def __init__(self, keys: list[str]) -> None:
        import hashlib

        if not keys:
            raise ValueError("at least one key is needed")
        self._keys: dict[bytes, bytes] = {}
        for i, k in enumerate(keys):
            derived = _derive(k, b"medai blob v1")
            key_id = hashlib.sha256(b"medai blob key id" + derived).digest()[:8]
            self._keys.setdefault(key_id, derived)
            if i == 0:
                self.newest = key_id

    def writer(self, fh: BinaryIO) -> BlobWriter:
        """Seal what is written to ``fh`` under the newest key (the header goes first)."""
        return BlobWriter(fh, self.newest, self._keys[self.newest])

    def key_id(self, head: bytes) -> bytes | None:
        """The key id of a stored blob's first bytes, None for one stored in clear (a
        blob that starts with the magic is sealed, however short: a truncated one is
        refused by ``open``, never read as clear)."""
        if head.startswith(self.MAGIC):
            return bytes(head[len(self.MAGIC) : len(self.MAGIC) + 8])
        return None

    def open(self, blob: bytes) -> bytes:
        """The plaintext of a stored blob (a clear legacy blob is returned as it is); raises
        ``InvalidToken`` for a blob altered on disk or sealed with a key no longer listed."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers import Cipher as _Cipher
        from cryptography.hazmat.primitives.ciphers import algorithms, modes

        key_id = self.key_id(blob)
        if key_id is None:
            return blob
        key = self._keys.get(key_id)
        if key is None or len(blob) < self.HEADER + self.TAG:
            raise InvalidToken
        view = memoryview(blob)
        dec = _Cipher(
            algorithms.AES(key),
            modes.GCM(bytes(view[self.HEADER - 12 : self.HEADER]), bytes(view[-self.TAG :])),
        ).decryptor()
        dec.authenticate_additional_data(bytes(view[: self.HEADER]))
        try:
            return dec.update(view[self.HEADER : -self.TAG]) + dec.finalize()
        except InvalidTag:
            raise InvalidToken from None


class BlobWriter:
    """One blob being sealed into an open file, a chunk at a time (never a second in-memory
    copy of a large file): ``write`` each chunk, then ``close`` writes the tag and syncs the
    file to disk, so it is whole before it is renamed into place."""

    def __init__(self, fh: BinaryIO, key_id: bytes, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers import Cipher as _Cipher
        from cryptography.hazmat.primitives.ciphers import algorithms, modes

        nonce = os.urandom(12)
        header = BlobCipher.MAGIC + key_id + nonce
        self._fh = fh
        self._enc = _Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
        self._enc.authenticate_additional_data(header)
        fh.write(header)

    def write(self, chunk: bytes) -> None:
        self._fh.write(self._enc.update(chunk))

    def close(self) -> None:
        self._fh.write(self._enc.finalize() + self._enc.tag)
        self._fh.flush()
        os.fsync(self._fh.fileno())


def _key_file(home: Path) -> list[str]:
    """The generated key, created once: written whole to a private temporary file, synced and
    linked into place, so concurrent first uses (threads, worker processes, nodes sharing one
    MEDAI_HOME) all read the same, complete key. Nodes with homes of their own would each make
    a different key and could not read each other's files: give them MEDAI_SECRET_KEYS (or its
    _FILE) instead (docs/deploy/several-nodes.md)."""
    path = private_dir(home) / "secret.key"
    if not path.exists():
        sealed = _stored_key_ids(home / "blobs")
        if sealed is not None:  # a site's files, and no key: never mint one over them
            raise KeysMissing(
                f"no key is configured, and {home / 'blobs'} holds stored files sealed under "
                f"key id(s) {', '.join(sorted(sealed))}: "
                "configure the site's keys (MEDAI_SECRET_KEYS_FILE, MEDAI_SECRET_KEYS or "
                "MEDAI_HOME/secret.key, the operator's copy); a new key is made only for a "
                "new site (`medai keys ids` lists what the data needs)"
            )
        fd, tmp = tempfile.mkstemp(dir=home, prefix=".secret-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
                fh.flush()
                os.fsync(fh.fileno())  # whole on disk before it has its name
            try:
                os.link(tmp, path)
                sync_dir(path.parent)
            except FileExistsError:
                pass  # another process, thread or node (a shared home) made it first
        finally:
            os.unlink(tmp)
    private_file(path)
    return [path.read_text().strip()]


def _stored_key_ids(blobs: Path, limit: int = 8) -> set[str] | None:
    """The key ids (hex) of the first few stored files under ``blobs`` (``BlobCipher``'s
    ``aa/bb/<sha256>`` layout), or None when none of them is sealed: a site with data, even
    one whose database is elsewhere, is told apart from a new one by a look that stops at the
    first files (temporary uploads and readiness probes are not stored files; a file an older
    version kept in clear needs no key)."""
    import re

    name = re.compile(r"^[0-9a-f]{64}$")
    found: set[str] = set()
    seen = 0

    def walk(folder: Path, depth: int) -> bool:
        nonlocal seen
        try:
            entries = list(os.scandir(folder))
        except OSError:  # absent (a new home) or unreadable: holds nothing we can see
            return False
        for entry in entries:
            if depth < 2 and entry.is_dir(follow_symlinks=False):
                if walk(Path(entry.path), depth + 1):
                    return True
            elif depth == 2 and name.match(entry.name) and entry.is_file():
                seen += 1
                try:
                    with open(entry.path, "rb") as fh:
                        head = fh.read(BlobCipher.HEADER)
                except OSError:
                    head = b""
                if head.startswith(BlobCipher.MAGIC):
                    found.add(head[len(BlobCipher.MAGIC) : len(BlobCipher.MAGIC) + 8].hex())
                if seen >= limit:
                    return True
        return False

    walk(blobs, 0)
    return found or None


def site_keys() -> list[str]:
    """The keys this process seals with, newest first: ``MEDAI_SECRET_KEYS``, else the site's
    key file (``HOME/secret.key``, made on a new site). The one place below the platform that
    reads them from the settings (it has no ``Platform`` to be handed them by)."""

    settings = get_settings()
    return settings.storage.secret_keys or _key_file(settings.storage.home)


@lru_cache(maxsize=1)
def cipher() -> Cipher:
    return Cipher(site_keys())


def blob_cipher() -> BlobCipher:
    """The stored files' cipher, from the same (cached) key list as ``cipher``."""
    return cipher().blobs
