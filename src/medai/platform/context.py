"""What the API, the CLI and the job workers share in one process: the database, the file
store and the model handles (loaded once, read-only)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from medai.platform.db import Database, utcnow
from medai.platform.storage import BlobStore
from medai.services.models import ModelHandles


@dataclass
class Platform:
    db: Database
    store: BlobStore
    models: ModelHandles
    knowledge_dir: str | None = None
    extra: dict = field(default_factory=dict)
    clock: Callable[[], datetime] = utcnow  # naive UTC; quotas read it (tests move it)

    @classmethod
    def from_settings(cls, database_url: str | None = None, models: ModelHandles | None = None,
                      home: Path | None = None, knowledge_dir: str | None = None) -> Platform:
        from medai.settings import get_settings

        settings = get_settings()
        from medai.platform.crypto import cipher

        db = Database(database_url)
        db.upgrade()
        cipher()  # the at-rest key exists before the first request needs it
        store = BlobStore((home or settings.home) / "blobs")
        return cls(db=db, store=store,
                   models=models or ModelHandles(imaging_runtime=settings.imaging_runtime),
                   knowledge_dir=knowledge_dir or (str(settings.knowledge_dir)
                                                   if settings.knowledge_dir else None))
