"""Content-addressed model storage under MEDAI_HOME: a registered directory is copied to
``registry/<hash>/<name>`` and checked against its card there, so the files a registry row
names can never change under it (editing the original after registration changes nothing).

Everything is copied, the bundled models too (an upgrade of medai then changes its bundled
directories but not the registered copies, which go on loading), into folders 0700 and files
0600 like the rest of MEDAI_HOME.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

from medai.core import model_dir
from medai.core.results import directory_hash
from medai.platform.records.private_files import private_dir, private_file, sync_dir

STORE = "registry"


def _private_copy(src: str, dst: str) -> None:
    shutil.copyfile(src, dst)
    private_file(dst)
    fd = os.open(dst, os.O_RDONLY)
    try:
        os.fsync(fd)  # on disk before the copy is renamed into place (a shared volume)
    finally:
        os.close(fd)


def _tighten(root: Path) -> None:
    """Folders 0700, and each folder's entries synced (the copy is whole on disk before it is
    renamed into place)."""
    for dirpath, dirnames, _ in os.walk(root):
        for d in dirnames:
            private_dir(Path(dirpath) / d)
        sync_dir(Path(dirpath))
    private_dir(root)


def store(home: Path, directory: Path, content_hash: str, name: str) -> str:
    """Copy ``directory`` into the store (once: a copy already there is reused) and return its
    path relative to ``home``. The copy is written under a temporary name, checked against
    ``content_hash``, then renamed into place, so a crash leaves no half copy behind a name."""
    hexdigest = content_hash.split(":", 1)[-1]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")[:64] or "model"
    relative = f"{STORE}/{hexdigest}/{safe}"
    final = Path(home) / relative
    if final.is_dir() and directory_hash(final) == content_hash:
        return relative
    private_dir(final.parent)
    staging = final.parent / f".incoming-{uuid.uuid4().hex}"
    shutil.copytree(directory, staging, copy_function=_private_copy)
    _tighten(staging)
    try:
        got = directory_hash(staging)
        if got != content_hash:
            raise model_dir.ModelLoadError(
                f"{directory}: files changed while they were copied ({got[:19]}… vs "
                f"{content_hash[:19]}…); register it again"
            )
        if final.exists():
            if directory_hash(final) == content_hash:
                return relative  # a sibling process stored it meanwhile: theirs is kept
            broken = final.parent / f".broken-{uuid.uuid4().hex}"  # a damaged earlier copy
            os.replace(final, broken)
            shutil.rmtree(broken, ignore_errors=True)
        try:
            os.replace(staging, final)
            sync_dir(final.parent)
        except OSError:  # renamed into place by a sibling between the check and here
            if not (final.is_dir() and directory_hash(final) == content_hash):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return relative
