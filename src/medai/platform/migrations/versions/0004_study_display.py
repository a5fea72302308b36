"""study display rendition

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 01:30:00

Viewing a study's image decoded the stored original on every request (a 300 KB PNG declaring
6000×6600 16-bit RGBA cost ~300 MB per view, outside the inference lane). A study now keeps a
display rendition, an 8-bit grayscale PNG of at most 2048 pixels a side made once by its
analysis (or by the first view of a study analysed before this version), as a content-addressed
blob named by ``studies.display_sha256``. Existing studies keep working (the column is empty
until the first view fills it). Batch mode, so that SQLite and PostgreSQL both run it.
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('display_sha256', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_column('display_sha256')
