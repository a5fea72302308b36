"""The C heap under the model code: glibc keeps freed pages, so a process that decoded a large
image or ran a burst of model calls hands them back here. In core because the imaging reader
(which decodes) and the services' inference lane (which bounds a burst) both give memory back,
and neither may import the other."""

from __future__ import annotations

import ctypes

_LIBC = None


def libc():
    """glibc, loaded once (``OSError`` where there is none)."""
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL("libc.so.6")
    return _LIBC


def release_memory() -> None:
    """Give freed heap pages back to the OS after a large image or a burst of model calls
    (glibc keeps them otherwise, so resident memory ratcheted up)."""
    try:
        libc().malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass
