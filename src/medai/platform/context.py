"""What the API, the CLI and the job workers share in one process: the database, the file
store, the model handles (loaded once, read-only) and the settings. A plain record:
``boot.open_platform`` makes it from the settings, ``lifecycle.serving.watch`` starts its model
watcher. Platform code reads its settings group here (``p.settings.outbox``), not from the
process-wide ``get_settings``: what a function depends on is what it is handed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from medai.platform.records.blobs import BlobStore
from medai.platform.records.db import Database, utcnow
from medai.services.model_handles import ModelHandles
from medai.settings import Settings


@dataclass
class Platform:
    db: Database
    store: BlobStore
    models: ModelHandles
    settings: Settings  # the settings it was opened with, by group (``settings.dicom``, …)
    knowledge_dir: str | None = None
    extra: dict = field(default_factory=dict)
    clock: Callable[[], datetime] = utcnow  # naive UTC; quotas read it (tests move it)
    home: Path = field(default_factory=Path.cwd)  # MEDAI_HOME: the model registry's store
    watcher: Any | None = None  # lifecycle.serving.ModelWatcher, started by serving.watch

    def stop_watching(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
