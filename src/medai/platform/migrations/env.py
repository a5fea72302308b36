"""Alembic environment: runs on the connection ``platform.db.Database.upgrade`` passes in
(or on ``sqlalchemy.url`` when Alembic's own CLI is used)."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from medai.platform.records.db import Base

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
