"""triage outcomes: the department a triaged patient was actually sent to

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24 10:00:00

A clinician records, against a triage's record number, the department the patient was sent to
and whether staff judged it urgent. Insert-only: the latest row of a triage is its label. The
triage model's labels for export and its agreement numbers in monitoring. A new table only.
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'triage_outcomes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('triage_id', sa.Integer(), nullable=False),
        sa.Column('department', sa.String(length=64), nullable=False),
        sa.Column('urgent', sa.Boolean(), nullable=False),
        sa.Column('recorded_by', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['triage_id'], ['triage_requests.id']),
        sa.ForeignKeyConstraint(['recorded_by'], ['users.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_triage_outcomes_triage', 'triage_outcomes', ['triage_id', 'id'])


def downgrade() -> None:
    op.drop_index('ix_triage_outcomes_triage', table_name='triage_outcomes')
    op.drop_table('triage_outcomes')
