"""What the API, the CLI and the job workers share in one process: the database, the file
store and the model handles (loaded once, read-only)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from medai.platform.blobs import BlobStore
from medai.platform.db import Database, utcnow
from medai.platform.lifecycle.serving import ModelWatcher, adopt
from medai.services.model_handles import ModelHandles


@dataclass
class Platform:
    db: Database
    store: BlobStore
    models: ModelHandles
    knowledge_dir: str | None = None
    extra: dict = field(default_factory=dict)
    clock: Callable[[], datetime] = utcnow  # naive UTC; quotas read it (tests move it)
    home: Path = field(default_factory=Path.cwd)  # MEDAI_HOME: the model registry's store
    watcher: ModelWatcher | None = None

    def watch_models(self, every_s: float | None = None) -> ModelWatcher:
        """Follow the registry's active models in this process (promotion and rollback
        without a restart); started once by each long-running process."""
        from medai.settings import get_settings

        if self.watcher is None:
            self.watcher = ModelWatcher(self, every_s or get_settings().model_watch_s).start()
        return self.watcher

    def stop_watching(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None

    @classmethod
    def from_settings(
        cls,
        database_url: str | None = None,
        models: ModelHandles | None = None,
        home: Path | None = None,
        knowledge_dir: str | None = None,
        adopt_models: bool = True,
    ) -> Platform:
        """The platform of this process; ``adopt_models`` False for a command that loads no
        model handle (an export) and must not register models on a fresh database."""
        from medai.settings import get_settings

        settings = get_settings()
        from medai.platform.crypto import cipher

        db = Database(database_url)
        db.upgrade()
        cipher()  # the at-rest key exists before the first request needs it
        from medai.platform.accounts import dummy_hash

        dummy_hash()  # made now: the first unknown user's sign-in costs what a real one does
        if settings.password_hash == "insecure-fast":
            logging.getLogger("medai.platform.accounts").warning(
                "passwords are hashed with the 'insecure-fast' profile (tests only): set "
                "MEDAI_PASSWORD_HASH=rfc9106-low-memory for any real use"
            )
        home = home or settings.home
        store = BlobStore(home / "blobs")
        p = cls(
            db=db,
            store=store,
            models=models or ModelHandles(imaging_runtime=settings.imaging_runtime),
            knowledge_dir=knowledge_dir
            or (str(settings.knowledge_dir) if settings.knowledge_dir else None),
            home=home,
        )
        if adopt_models:
            adopt(p)  # the registry's active model of each task is the one served
        return p
