"""Alembic environment: runs on the connection ``platform.records.db.Database.upgrade`` passes in
(or on ``sqlalchemy.url`` when Alembic's own CLI is used)."""

import sys

from alembic import context
from sqlalchemy import engine_from_config, pool

from medai.platform.records import crypto
from medai.platform.records.db import Base

# A released migration is frozen byte for byte (tests/system/test_upgrade_from_previous_release.py)
# and imports from the paths of its release: 0016 takes its cipher from ``medai.platform.crypto``,
# which is ``medai.platform.records.crypto`` since platform/ was laid out as folders.
RELEASED_PATHS = {"medai.platform.crypto": crypto}
for _old, _module in RELEASED_PATHS.items():
    sys.modules.setdefault(_old, _module)

config = context.config
target = Base.metadata


def run() -> None:
    conn = config.attributes.get("connection")
    if conn is not None:
        context.configure(connection=conn, target_metadata=target, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
