"""reading the whole study: a DICOM study is analysed once its instances have settled, and a
late instance re-opens it

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02 09:00:00

A study sent by a modality arrives as a burst of instances (a 20-200 slice MRI series, a PA and
a lateral film). Its analysis job waited for nothing and read whichever instance came first.

* ``jobs.not_before`` holds the job back until the study has been quiet for
  ``MEDAI_STUDY_STABLE_S`` (each arriving instance moves it on); claimers skip a job whose time
  has not come. ``jobs.again``: an instance filed while the job ran; it runs once more after.
  Every existing job (and every upload's) is claimable as before (NULL, false).
* ``ai_results.reading`` names the instances an analysis read: an instance arriving after the
  analysis re-opens the study, and the new reading is a new row beside the old one (kept as
  history). The unique key becomes (study, kind, model hash, reading); existing rows read ''.
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

# the 0001 key, unnamed there: PostgreSQL named it itself; SQLite has no name for it and no
# way to drop a table constraint but to rebuild the table (``_rebuild_sqlite``)
OLD_KEY = "ai_results_study_id_kind_model_hash_key"
NEW_KEY = "uq_ai_results_reading"
OLD_UNIQUE = "UNIQUE (study_id, kind, model_hash)"
NEW_UNIQUE = f"CONSTRAINT {NEW_KEY} UNIQUE (study_id, kind, model_hash, reading)"
READING = "reading VARCHAR(40) DEFAULT '' NOT NULL"


def _rebuild_sqlite(to_reading: bool) -> None:
    """``ai_results`` rebuilt with the other key, in this transaction: its rows copied aside,
    the table dropped and made again from its own stored definition (the key and the
    ``reading`` column swapped), the rows put back. Report versions and outbox rows refer to
    it: with their checks deferred, dropping the table counts their rows as violations and
    putting each referred row back resolves them, so the transaction commits only if every
    reference holds again (``PRAGMA foreign_keys`` itself cannot change inside a
    transaction; ``defer_foreign_keys`` can, and ends with it)."""
    bind = op.get_bind()
    ddl = bind.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'ai_results'")
    ).scalar_one()
    columns = [r[1] for r in bind.execute(sa.text("PRAGMA table_info(ai_results)"))]
    # a column is defined before the table's constraints, which begin with the primary key
    if to_reading:
        new = ddl.replace(OLD_UNIQUE, NEW_UNIQUE).replace("PRIMARY KEY", f"{READING}, PRIMARY KEY")
        kept = [c for c in columns if c != "reading"]
    else:
        new = ddl.replace(NEW_UNIQUE, OLD_UNIQUE).replace(f"{READING}, PRIMARY KEY", "PRIMARY KEY")
        kept = [c for c in columns if c != "reading"]
    done = (READING in new and NEW_UNIQUE in new) if to_reading else "reading" not in new
    if new == ddl or not done:
        raise RuntimeError("ai_results is not as revision 0020 (or 0021) made it: not migrated")
    names = ", ".join(kept)
    op.execute("PRAGMA defer_foreign_keys = ON")
    op.execute(f"CREATE TABLE _ai_results_0021 AS SELECT {names} FROM ai_results")
    op.execute("DROP TABLE ai_results")
    op.execute(new)
    op.execute(f"INSERT INTO ai_results ({names}) SELECT {names} FROM _ai_results_0021")
    op.execute("DROP TABLE _ai_results_0021")
    op.execute("CREATE INDEX ix_ai_results_study_id ON ai_results (study_id)")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("not_before", sa.DateTime(), nullable=True))
        batch.add_column(
            sa.Column("again", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(to_reading=True)
        return
    op.add_column(
        "ai_results",
        sa.Column("reading", sa.String(length=40), nullable=False, server_default=""),
    )
    op.drop_constraint(OLD_KEY, "ai_results", type_="unique")
    op.create_unique_constraint(
        NEW_KEY, "ai_results", ["study_id", "kind", "model_hash", "reading"]
    )


def downgrade() -> None:
    # the release before keeps one result per (study, kind, model): a study re-read after a late
    # instance has two. The downgrade refuses rather than choose which reading to drop (restore
    # the backup taken before the upgrade instead)
    twice = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT count(*) FROM (SELECT study_id FROM ai_results "
                "GROUP BY study_id, kind, model_hash HAVING count(*) > 1) AS t"
            )
        )
        .scalar_one()
    )
    if twice:
        raise RuntimeError(
            f"{twice} AI results were re-read after a late instance, which the release before "
            "0021 cannot keep side by side: not downgraded (restore the backup taken before "
            "the upgrade instead)"
        )
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(to_reading=False)
    else:
        op.drop_constraint(NEW_KEY, "ai_results", type_="unique")
        op.create_unique_constraint(OLD_KEY, "ai_results", ["study_id", "kind", "model_hash"])
        op.drop_column("ai_results", "reading")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("again")
        batch.drop_column("not_before")
