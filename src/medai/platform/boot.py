"""Opening the platform of this process from its settings: the site's keys checked against its
data (``key_check``: a site that holds data never gets a new key), the database migrated, the
at-rest key made on a new site, the password hasher's dummy hash computed, the blob store
opened and the registry's active models adopted (``lifecycle.serving.adopt``)."""

from __future__ import annotations

import logging
from pathlib import Path

from medai.platform.access.accounts import dummy_hash
from medai.platform.context import Platform
from medai.platform.lifecycle.serving import adopt
from medai.platform.ops.key_check import require_keys
from medai.platform.records.blobs import BlobStore
from medai.platform.records.crypto import cipher
from medai.platform.records.db import Database
from medai.services.model_handles import ModelHandles
from medai.settings import get_settings


def open_platform(
    database_url: str | None = None,
    models: ModelHandles | None = None,
    home: Path | None = None,
    knowledge_dir: str | None = None,
    adopt_models: bool = True,
) -> Platform:
    """The platform of this process; ``adopt_models`` False for a command that loads no
    model handle (an export) and must not register models on a fresh database."""
    settings = get_settings()
    db = Database(database_url)
    home = home or settings.home
    try:  # before the migration (it seals values with the key): KeysMissing names the ids
        require_keys(db.engine, home / "blobs", settings)
    except BaseException:
        db.dispose()
        raise
    db.upgrade()
    cipher()  # the at-rest key exists before the first request needs it
    dummy_hash()  # made now: the first unknown user's sign-in costs what a real one does
    if settings.password_hash == "insecure-fast":
        logging.getLogger("medai.platform.access.accounts").warning(
            "passwords are hashed with the 'insecure-fast' profile (tests only): set "
            "MEDAI_PASSWORD_HASH=rfc9106-low-memory for any real use"
        )
    store = BlobStore(home / "blobs")
    p = Platform(
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
