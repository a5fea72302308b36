"""urgent because: a study says why it is urgent

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-28 09:00:00

The worklist put a study first (``studies.urgent``) without saying why, and the study page
could only guess. ``studies.urgent_because`` (JSON, nullable: a list of reasons,
``studies.URGENT_REASONS``) is written where the urgency is decided: the clinical question
raised a red flag at upload, or the AI found an urgent label present or among its undecided
candidates. Codes and label names only, never patient text. One nullable column (the downgrade
drops it in place: SQLite 3.35 or newer).
"""
import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('studies', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('urgent_because', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('studies', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('urgent_because')
