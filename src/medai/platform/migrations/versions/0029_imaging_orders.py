"""imaging orders: HL7 v2 ORM^O01 / OMI^O23 orders received over MLLP (issue 69 §3)

Revision ID: 0029
Revises: 0028
Create Date: 2026-11-28 22:00:00

One row per accession number (``intake.orders``): the order's question, priority, ordering
physician and patient ID sealed; matched to the study of the same accession whichever
arrives first. ``studies.order_stat``: its order came marked STAT (the worklist ranks it with
a red flag).
"""

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "imaging_orders",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("accession", sa.String(16), nullable=False),
        sa.Column("patient_key", sa.Text()),
        sa.Column("question", sa.Text()),
        sa.Column("priority", sa.Text()),
        sa.Column("ordering_physician", sa.Text()),
        sa.Column("order_control", sa.String(2), nullable=False),
        sa.Column("message_type", sa.String(16), nullable=False),
        sa.Column("control_id", sa.String(64), nullable=False),
        sa.Column("sender", sa.String(96), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id")),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ux_imaging_orders_accession", "imaging_orders", ["accession"], unique=True)
    op.create_index("ix_imaging_orders_study_id", "imaging_orders", ["study_id"])
    with op.batch_alter_table("studies", recreate="never") as batch:
        batch.add_column(
            sa.Column("order_stat", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def _forget_stat() -> None:
    """A STAT order's urgency reason is a code the release before 0029 does not know: taken out
    of ``urgent_because`` (sealed JSON) of the studies that have one."""
    import json

    from medai.platform.records.sealed import open_text, seal_text

    bind = op.get_bind()
    studies = sa.table(
        "studies",
        sa.column("id", sa.Integer()),
        sa.column("urgent_because", sa.JSON()),
        sa.column("order_stat", sa.Boolean()),
    )
    rows = bind.execute(
        sa.select(studies.c.id, studies.c.urgent_because).where(studies.c.order_stat.is_(True))
    ).all()
    for study_id, sealed in rows:
        reasons = json.loads(open_text(sealed)) if isinstance(sealed, str) else sealed or []
        kept = [r for r in reasons if not (isinstance(r, dict) and r.get("code") == "order_stat")]
        value = seal_text(json.dumps(kept, ensure_ascii=False)) if kept else None
        bind.execute(studies.update().where(studies.c.id == study_id).values(urgent_because=value))


def downgrade() -> None:
    _forget_stat()
    with op.batch_alter_table("studies", recreate="never") as batch:
        batch.drop_column("order_stat")
    op.drop_index("ix_imaging_orders_study_id", "imaging_orders")
    op.drop_index("ux_imaging_orders_accession", "imaging_orders")
    op.drop_table("imaging_orders")
