"""measurements: a radiologist's viewer measurements (TID 1500 SR over STOW-RS)

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-05 09:00:00

One row per numeric item of a measurement SR that a radiologist saved in the viewer
(``reading.measurements``); the SR itself is in the blob store. Superseded rows are flagged,
never deleted.
"""

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "measurements",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id"), nullable=False),
        sa.Column("author_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("sr_sop_uid", sa.String(64), nullable=False),
        sa.Column("sr_series_uid", sa.String(64), nullable=False),
        sa.Column("sr_sop_class", sa.String(64), nullable=False),
        sa.Column("file_sha", sa.String(64), nullable=False),
        sa.Column("group_no", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("unit", sa.String(8), nullable=False),
        sa.Column("ref_sop_uid", sa.String(64)),
        sa.Column("ref_frame", sa.Integer()),
        sa.Column("instance_number", sa.Integer()),
        sa.Column("spacing", sa.String(24)),
        sa.Column("superseded", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_measurements_study_id", "measurements", ["study_id"])
    op.create_index("ix_measurements_sr_sop_uid", "measurements", ["sr_sop_uid"])


def downgrade() -> None:
    op.drop_index("ix_measurements_sr_sop_uid", "measurements")
    op.drop_index("ix_measurements_study_id", "measurements")
    op.drop_table("measurements")
