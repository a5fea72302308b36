"""report templates and macros: a site's versions (issue 69 §2)

Revision ID: 0030
Revises: 0029
Create Date: 2026-11-28 23:00:00

One row per saved version of a template or macro (``reading.report_templates``); never
changed or deleted, the newest of a key is in use.
"""

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_templates",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("lang", sa.String(8), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(120), nullable=False),
        sa.Column("sections", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index(
        "ux_report_templates_version",
        "report_templates",
        ["kind", "task", "name", "lang", "version"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("ux_report_templates_version", "report_templates")
    op.drop_table("report_templates")
