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
    # an older release knows no ``entered_in_error``: it would list such a study as a broken
    # one and sign and send it again. Nothing is un-retracted behind the radiologists' backs:
    # the downgrade refuses while a study is retracted (restore the pre-upgrade backup instead)
    retracted = op.get_bind().execute(
        sa.text("SELECT count(*) FROM studies WHERE status = 'entered_in_error'")
    ).scalar_one()
    if retracted:
        raise RuntimeError(
            f"{retracted} studies are retracted (entered in error), which the release before "
            "0020 cannot show or keep from being signed and sent: not downgraded (restore the "
            "backup taken before the upgrade instead)"
        )
    op.drop_table("study_retractions")
