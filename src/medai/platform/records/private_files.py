"""Everything medai keeps on disk is private to its account: folders 0700, files 0600, made so at
creation and tightened at start for what an older version left (``private_dir``,
``private_file``); ``sync_dir`` makes a new name in a folder durable. No ``medai`` imports: the
key file (``crypto``), the database's SQLite file (``db``), the blob store, backups and the model
store all use these."""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("medai.platform")
DIR_MODE, FILE_MODE = 0o700, 0o600


def set_mode(path: Path, mode: int) -> None:
    """Set ``mode`` unless it is already so; a read-only disk or a file someone else owns is
    logged, not fatal (readiness reports an unwritable disk)."""
    try:
        if stat.S_IMODE(path.stat().st_mode) != mode:
            os.chmod(path, mode)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning(
            "cannot make %s private (mode %o): %s",
            path,
            mode,
            errno.errorcode.get(exc.errno or 0, type(exc).__name__),
        )


def sync_dir(path: Path) -> None:
    """Make a rename or a new name in ``path`` durable (POSIX: a file's fsync does not cover
    its directory entry). A file system that cannot sync a folder (EINVAL) is left as is."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def private_dir(path: str | Path) -> Path:
    """Create ``path`` (and missing parents) 0700, or tighten it. A shared folder (sticky or
    world-writable, such as /tmp) or the user's own home is never changed."""
    path = Path(path)
    missing = []
    for p in (path, *path.parents):
        if p.exists():
            break
        missing.append(p)
    for p in reversed(missing):
        try:
            p.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass
    try:
        st = path.stat()
    except FileNotFoundError:
        return path
    shared = st.st_mode & (stat.S_ISVTX | stat.S_IWOTH)
    if not shared and path.resolve() not in (Path("/"), Path.home().resolve()):
        set_mode(path, DIR_MODE)
    return path


def private_file(path: str | Path) -> None:
    set_mode(Path(path), FILE_MODE)
