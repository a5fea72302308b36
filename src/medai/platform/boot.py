"""Opening the platform of this process from its settings: the site's keys checked against its
data (``key_check``: a site that holds data never gets a new key), the database migrated, the
at-rest key made on a new site, the password hasher's dummy hash computed, the blob store
opened and the registry's active models adopted (``lifecycle.serving.adopt``)."""

from __future__ import annotations

import logging
from pathlib import Path

from medai.platform.access.credentials import dummy_hash
from medai.platform.context import Platform
from medai.platform.lifecycle.serving import adopt
from medai.platform.ops.key_check import require_keys
from medai.platform.records.blobs import BlobStore
from medai.platform.records.crypto import cipher
from medai.platform.records.db import Database
from medai.services.model_handles import ModelHandles
from medai.settings import Settings, get_settings


def open_platform(
    database_url: str | None = None,
    models: ModelHandles | None = None,
    home: Path | None = None,
    knowledge_dir: str | None = None,
    adopt_models: bool = True,
    settings: Settings | None = None,
    model_threads: int | None = None,
) -> Platform:
    """The platform of this process; ``adopt_models`` False for a command that loads no
    model handle (an export) and must not register models on a fresh database. ``settings``:
    the process's (``get_settings``) unless the caller already holds them; the platform
    keeps them for the code it is handed to. ``model_threads``: intra-op threads of each
    model call when ``models`` is not given (None: the runtimes' own pools)."""
    settings = settings or get_settings()
    db = Database(database_url)
    home = home or settings.storage.home
    try:  # before the migration (it seals values with the key): KeysMissing names the ids
        require_keys(db.engine, home / "blobs", settings)
    except BaseException:  # broad: the engine is disposed on any exit, re-raised
        db.dispose()
        raise
    db.upgrade()
    cipher()  # the at-rest key exists before the first request needs it
    # made now: the first unknown user's sign-in costs what a real one does
    dummy_hash(settings.auth.password_hash)
    if settings.auth.password_hash == "insecure-fast":
        logging.getLogger("medai.platform.access.accounts").warning(
            "passwords are hashed with the 'insecure-fast' profile (tests only): set "
            "MEDAI_PASSWORD_HASH=rfc9106-low-memory for any real use"
        )
    store = BlobStore(home / "blobs")
    p = Platform(
        db=db,
        store=store,
        models=models
        or ModelHandles(threads=model_threads, imaging_runtime=settings.serving.imaging_runtime),
        settings=settings,
        knowledge_dir=knowledge_dir
        or (str(settings.llm.knowledge_dir) if settings.llm.knowledge_dir else None),
        home=home,
    )
    if adopt_models:
        adopt(p)  # the registry's active model of each task is the one served
    return p
