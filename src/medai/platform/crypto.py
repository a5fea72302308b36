"""Encryption at rest for patient text (chat messages, triage complaints).

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) with a key list: the first key
encrypts, every key decrypts (``MultiFernet``), so a key is rotated by putting a new key first
and running ``medai keys rotate``, which re-encrypts every stored message with it; the old key
can then be removed. Without ``MEDAI_SECRET_KEYS`` a key is generated once into
``MEDAI_HOME/secret.key`` (mode 0600, in a 0700 home; a looser mode left by an older version
is tightened when the key is read).
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

__all__ = ["Cipher", "InvalidToken", "cipher"]


class Cipher:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._fernet = MultiFernet([Fernet(k.encode() if isinstance(k, str) else k)
                                    for k in keys])

    def encrypt(self, text: str) -> bytes:
        return self._fernet.encrypt(text.encode("utf-8"))

    def decrypt(self, token: bytes) -> str:
        return self._fernet.decrypt(bytes(token)).decode("utf-8")

    def rotate(self, token: bytes) -> bytes:
        """The same plaintext under the newest key."""
        return self._fernet.rotate(bytes(token))


def _key_file(home: Path) -> list[str]:
    """The generated key, created once: written whole to a private temporary file and linked
    into place, so concurrent first uses (threads, worker processes) all read the same,
    complete key."""
    from medai.platform.storage import private_dir, private_file

    path = private_dir(home) / "secret.key"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=home, prefix=".secret-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process or thread made it first: use theirs
        finally:
            os.unlink(tmp)
    private_file(path)
    return [path.read_text().strip()]


@lru_cache(maxsize=1)
def cipher() -> Cipher:
    from medai.settings import get_settings

    settings = get_settings()
    return Cipher(settings.secret_keys or _key_file(settings.home))
