"""A backup's files, read and copied safely: a member is opened without following a symbolic
link and refused when it is not a regular file (a FIFO, a device, ``/dev/zero`` behind a link:
named, never read), hashed as it is copied."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from medai.core.errors import MedaiError

_CHUNK = 1 << 20


class BackupError(MedaiError, RuntimeError):
    """A backup or restore refused or failed; ``code`` names why (``--json``)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def sha256_file(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def copy_file(src: Path | BinaryIO, dst: Path, head: int = 0) -> tuple[str, int, bytes]:
    """Copy ``src`` (a path, or a file opened by ``open_member``, closed here) to the new file
    ``dst`` (0600, synced), hashing as it goes: (sha256, size, its first ``head`` bytes). An
    existing ``dst`` is never overwritten."""
    h, size, first = hashlib.sha256(), 0, b""
    try:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except BaseException:  # broad: the source is closed on any exit, re-raised
        if not isinstance(src, Path):
            src.close()
        raise
    try:
        with src.open("rb") if isinstance(src, Path) else src as fi, os.fdopen(fd, "wb") as fo:
            while chunk := fi.read(_CHUNK):
                if len(first) < head:
                    first += chunk[: head - len(first)]
                h.update(chunk)
                size += len(chunk)
                fo.write(chunk)
            fo.flush()
            os.fsync(fo.fileno())
    except BaseException:  # broad: the partial copy is removed on any exit (Ctrl-C too), re-raised
        dst.unlink(missing_ok=True)
        raise
    return h.hexdigest(), size, first


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


_OPENAT = bool(_NOFOLLOW and _DIRECTORY) and os.open in os.supports_dir_fd


def _kind(mode: int) -> str | None:
    """What a member is when it is not a regular file or a folder (None when it is one)."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _unsafe(src: Path, relative: str, kind: str) -> BackupError:
    path = src / relative
    if kind == "a symbolic link":
        try:
            kind += f" to {os.readlink(path)[:80]!r}"
        except OSError:
            pass
    return BackupError(
        f"{relative[:120]!r} in {src} is {kind}: a backup holds only the regular files and "
        "folders `medai backup` wrote, so it was not read (a link or a device could point the "
        "restore at any file, or at a stream that never ends); nothing was restored",
        "unsafe_file",
    )


def check_members(src: Path) -> None:
    """Refuse a backup folder holding anything but regular files and folders (a symbolic
    link, a FIFO, a device, a socket), from ``lstat`` alone, before any file of it is opened:
    reading a link to ``/dev/zero`` never ends, a FIFO's open blocks for good, and a link to a
    file outside the backup would be restored as if the backup held it. ``src`` itself may be
    a link (the operator names the folder)."""
    for dirpath, dirs, names in os.walk(src):
        here = Path(dirpath)
        for name in sorted([*dirs, *names]):
            kind = _kind(os.lstat(here / name).st_mode)
            if kind is not None:
                raise _unsafe(src, (here / name).relative_to(src).as_posix(), kind)


def open_member(src: Path, relative: str) -> BinaryIO:
    """Open the backup's file ``relative`` for reading, never through a link and never
    anything but a regular file: each folder on the way and the file itself are opened with
    ``O_NOFOLLOW`` relative to the one before (a link put in place after ``check_members``
    looked is refused too), the file with ``O_NONBLOCK`` (a FIFO's open does not wait for a
    writer) and checked to be a regular file before a byte is read. Raises ``BackupError``
    ``unsafe_file`` naming the member, ``FileNotFoundError`` when it is missing."""
    parts = PurePosixPath(relative).parts
    if not parts or ".." in parts or PurePosixPath(relative).is_absolute():
        raise BackupError(f"manifest names {relative[:80]!r}, outside the backup", "backup_damaged")
    try:
        if _OPENAT:
            folder = os.open(src, os.O_RDONLY | _DIRECTORY)
            try:
                for part in parts[:-1]:
                    inner = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=folder)
                    os.close(folder)
                    folder = inner
                fd = os.open(parts[-1], os.O_RDONLY | _NOFOLLOW | _NONBLOCK, dir_fd=folder)
            finally:
                os.close(folder)
        else:  # no openat here: each step looked at with lstat, then opened
            path = src
            for part in parts:
                path = path / part
                kind = _kind(os.lstat(path).st_mode)
                if kind is not None:
                    raise _unsafe(src, relative, kind)
            fd = os.open(path, os.O_RDONLY | _NONBLOCK)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        raise _unsafe(src, *_first_unsafe(src, parts)) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _unsafe(src, relative, _kind(mode) or "a folder")
    return os.fdopen(fd, "rb")


def _first_unsafe(src: Path, parts: tuple[str, ...]) -> tuple[str, str]:
    """(the member, what it is) of the first step of ``parts`` that is neither a folder nor a
    regular file (a link, a device), for a refusal that names it."""
    path = src
    for part in parts:
        path = path / part
        try:
            kind = _kind(os.lstat(path).st_mode)
        except OSError:
            break
        if kind is not None:
            return path.relative_to(src).as_posix(), kind
    return PurePosixPath(*parts).as_posix(), "not a regular file"
