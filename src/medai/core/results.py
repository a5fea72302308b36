"""What every stored AI result shares: its schema version, its status and the exact model.

The platform stores these results and the audit names the model that made each one, so the
model is identified by name, version and the content hash of its directory (computed once, at
load), not by a name alone that a retrained model would reuse.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1"
# files that describe a model but do not change its answers (the card carries the hash itself)
_NOT_HASHED_DIRS = {"evaluation", "__pycache__", "checkpoints"}
_NOT_HASHED_FILES = {"model_card.json"}
_HASHES: dict[tuple, str] = {}


class ModelRef(BaseModel):
    """The exact model behind a result."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    name: str
    version: str = Field(..., description="the card's version, else its creation time")
    content_hash: str = Field(..., description="sha256 over the model directory's files")
    task: str
    model_type: str


class AIResult(BaseModel):
    """Base of every predictor's typed result."""

    model_config = ConfigDict(protected_namespaces=())

    schema_version: str = SCHEMA_VERSION
    status: str = Field(..., description="ai_suggestion | draft | refused: never a diagnosis")
    model: ModelRef


def directory_hash(directory: str | Path) -> str:
    """sha256 over every file's relative path and bytes (the directory's own card, evaluation
    plots and training checkpoints excluded; a nested model's card is a file like any other),
    in a fixed order: two copies of a model directory hash alike wherever they live.
    Remembered per (path, sizes, mtimes): a second call is a stat."""
    directory = Path(directory).resolve()
    files = sorted(
        p
        for p in directory.rglob("*")
        if p.is_file()
        and not (p.parent == directory and p.name in _NOT_HASHED_FILES)
        and not _NOT_HASHED_DIRS & set(p.relative_to(directory).parts[:-1])
    )
    key = (str(directory), *((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))
    if key in _HASHES:
        return _HASHES[key]
    h = hashlib.sha256()
    for path in files:
        h.update(path.relative_to(directory).as_posix().encode() + b"\0")
        with path.open("rb") as fh:
            for chunk in iter(functools.partial(fh.read, 1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    _HASHES[key] = "sha256:" + h.hexdigest()
    return _HASHES[key]
