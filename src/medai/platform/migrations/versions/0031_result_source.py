"""an AI result names the stored file it was read from (``ai_results.source_sha256``)

Revision ID: 0031
Revises: 0030
Create Date: 2026-11-29 14:00:00

A series study's image became its key slice's instance (the file a result was read from), so
the study's file can change with a re-read. The AI's DICOM objects for a PACS take their
source (and so their UIDs) from the result they carry, never from the study's file of the
moment: an earlier reading's objects are rebuilt with the UIDs the PACS received, and its
rejection note names them. Results stored before this revision were sent built from the
study's file as it is now: it is what they are filled with.
"""

import sqlalchemy as sa
from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ai_results", recreate="never") as batch:
        batch.add_column(sa.Column("source_sha256", sa.String(64)))
    studies = sa.table("studies", sa.column("id"), sa.column("file_sha256"))
    results = sa.table("ai_results", sa.column("study_id"), sa.column("source_sha256"))
    op.execute(
        results.update().values(
            source_sha256=sa.select(studies.c.file_sha256)
            .where(studies.c.id == results.c.study_id)
            .scalar_subquery()
        )
    )


def downgrade() -> None:
    # in place (SQLite's ALTER TABLE DROP COLUMN): report versions and outbox rows refer to the
    # table, which a rebuild would drop, and 0021's downgrade reads its definition as it made it
    with op.batch_alter_table("ai_results", recreate="never") as batch:
        batch.drop_column("source_sha256")
