"""instance renditions: the viewer scrolls a study's series

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02 12:00:00

The study page showed one image of a study of 20-200 slices and never which one the AI read
(issue 58). The viewer now scrolls each series; every slice it shows is an 8-bit display
rendition made once, as the study's own is (``studies.display_sha256``): ``instance_renditions``
names the stored PNG of one DICOM instance, or of one frame of a multi-frame instance (1-based,
1 for an instance of one image). A new table only: nothing existing is rewritten, and a
downgrade only forgets renditions that are made again on the next view.
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instance_renditions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("frame", sa.Integer(), nullable=False),
        sa.Column("display_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["instance_id"], ["dicom_instances.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("instance_id", "frame"),
    )


def downgrade() -> None:
    op.drop_table("instance_renditions")
