"""retraction: a study retracted as entered in error (IHE Imaging Object Change Management)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01 09:00:00

When the wrong patient's instance arrived first, a radiologist could only reassign or reject
the *incoming* one. ``study_retractions`` records a retraction of the study itself (one per
study: who, when, why as a code, the radiologist's note sealed, the status it had); the study's
status becomes ``entered_in_error`` (a value, no column change). A new table only: nothing
existing is rewritten.
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "study_retractions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("retracted_by", sa.Integer(), nullable=False),
        sa.Column("previous_status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["retracted_by"], ["users.id"]),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study_id"),
    )


def downgrade() -> None:
    op.drop_table("study_retractions")
