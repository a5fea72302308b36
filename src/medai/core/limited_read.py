"""Reading user-given files with a size limit checked before the bytes are read.

``medai triage predict --file /dev/zero`` once read until the OOM killer stopped it: a path is
read only when it is a regular file within the limit, and streams stop one byte past it.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import BinaryIO

from medai.core.errors import MedaiError


class InputFileError(MedaiError, ValueError):
    """A path or stream that cannot be read as input, with the reason."""

    code = "invalid"


def read_limited(path: str | Path, max_bytes: int) -> bytes:
    """The bytes of a regular file no larger than ``max_bytes``."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputFileError(f"{path}: is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise InputFileError(f"{path}: not a regular file (a device, FIFO or socket)")
    if info.st_size > max_bytes:
        raise InputFileError(f"{path}: too large ({info.st_size:,} bytes; limit {max_bytes:,})")
    try:
        with path.open("rb") as fh:
            return read_stream_limited(fh, max_bytes, str(path))
    except PermissionError:
        raise InputFileError(f"{path}: permission denied") from None


def read_stream_limited(stream: BinaryIO, max_bytes: int, name: str = "input") -> bytes:
    """At most ``max_bytes`` from a stream; one byte more is an error (files can grow)."""
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InputFileError(f"{name}: larger than the limit of {max_bytes:,} bytes")
    return data
