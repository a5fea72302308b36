"""audit study: the study an audit event concerns, so the log can be read per study

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03 12:00:00

``audit_events.study_id`` (indexed, no foreign key: the log outlives whatever it names) is
written by ``audit.record`` from now on. Existing events are filled in here from their target:
a study or one of its parts named by the study's id (study, study_image, heatmap, report,
report_versions, series, labels: ``audit.STUDY_TARGETS``), and a conversation, an identity
conflict or an outbox item by the study its row belongs to. Other events keep none.

The audit log is append-only (its UPDATE trigger refuses every change): the trigger is lifted
for this transaction only, the new column alone is written, and the trigger is put back.
The downgrade drops the column (and its index) again.
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

INDEX = "ix_audit_events_study_id"
STUDY_TARGETS = ("study", "study_image", "heatmap", "report", "report_versions", "series", "labels")
ROW_TARGETS = {  # target type -> the table whose row names the study
    "conversation": "conversations",
    "identity_conflict": "identity_conflicts",
    "outbox": "outbox",
}
TRIGGER = "audit_events_no_update"


def _trigger(lift: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER}" if lift else
                   f"CREATE TRIGGER {TRIGGER} BEFORE UPDATE ON audit_events "
                   "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END")
    elif bind.dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON audit_events" if lift else
                   f"CREATE TRIGGER {TRIGGER} BEFORE UPDATE ON audit_events "
                   f"FOR EACH ROW EXECUTE FUNCTION {TRIGGER}()")


def _numeric() -> str:
    """A WHERE clause: ``target_id`` is a row id (digits only, at most 18 of them)."""
    if op.get_bind().dialect.name == "postgresql":
        return "target_id ~ '^[0-9]{1,18}$'"
    return "target_id <> '' AND target_id NOT GLOB '*[^0-9]*' AND length(target_id) <= 18"


def _backfill() -> None:
    numeric = _numeric()
    types = ", ".join(f"'{t}'" for t in STUDY_TARGETS)
    op.execute(
        "UPDATE audit_events SET study_id = CAST(target_id AS BIGINT) "
        f"WHERE target_type IN ({types}) AND {numeric}"
    )
    for target, table in ROW_TARGETS.items():
        op.execute(
            f"UPDATE audit_events SET study_id = (SELECT r.study_id FROM {table} r "
            "WHERE r.id = CAST(audit_events.target_id AS BIGINT)) "
            f"WHERE target_type = '{target}' AND {numeric}"
        )


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("study_id", sa.Integer(), nullable=True))
        batch_op.create_index(INDEX, ["study_id"], unique=False)
    _trigger(lift=True)
    _backfill()
    _trigger(lift=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None, recreate="never") as batch_op:
        batch_op.drop_index(INDEX)
        batch_op.drop_column("study_id")
