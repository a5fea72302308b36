"""A backup's manifest: what the folder holds (versions, counts, key ids, every file's sha256
and size), written canonically and authenticated with a MAC under a key derived from the
site's keys (HKDF, ``MAC_INFO``), read back and checked."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

from medai.platform.ops.backup_files import BackupError, open_member
from medai.platform.records.crypto import BlobCipher, _derive

FORMAT = "medai-backup/1"  # unchanged by the MAC: an older release ignores the new field


MANIFEST = "manifest.json"


MAC_FIELD, MAC_ALG = "mac", "HMAC-SHA256"


MAC_INFO = b"medai backup manifest v1"  # HKDF info: this key serves nothing else


def key_id(key: str) -> str:
    """A key's id as stored files carry it (``BlobCipher``: 8 bytes of a hash of a key
    derived from it), in hex: safe to print and to keep beside the data."""
    return BlobCipher([key]).newest.hex()


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
