"""outbox: deliveries to PACS, FHIR and HL7 destinations

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 04:00:00

Everything medai sends out of the hospital's database (AI findings and heatmaps as DICOM, a
report to FHIR, an HL7 ORU^R01) is first a row here, written in the same transaction as the
event it reports (the analysis finishing, a version being signed): one row per event and
destination (unique), with its delivery state, attempts, the time of the next attempt and a
lease for the sender working on it. A new table only: nothing existing is rewritten.
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'outbox',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('event', sa.String(length=16), nullable=False),
        sa.Column('event_key', sa.String(length=96), nullable=False),
        sa.Column('destination', sa.String(length=32), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('study_id', sa.Integer(), nullable=False),
        sa.Column('report_version', sa.Integer(), nullable=True),
        sa.Column('ai_result_id', sa.Integer(), nullable=True),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_at', sa.DateTime(), nullable=True),
        sa.Column('lease_until', sa.DateTime(), nullable=True),
        sa.Column('worker', sa.String(length=128), nullable=True),
        sa.Column('code', sa.String(length=32), nullable=True),
        sa.Column('reason', sa.String(length=200), nullable=True),
        sa.Column('sent', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('delivered_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['ai_result_id'], ['ai_results.id']),
        sa.ForeignKeyConstraint(['study_id'], ['studies.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('event_key', 'destination'),
    )
    op.create_index('ix_outbox_due', 'outbox', ['state', 'next_at'])
    op.create_index('ix_outbox_order', 'outbox', ['destination', 'study_id', 'id'])


def downgrade() -> None:
    op.drop_index('ix_outbox_order', table_name='outbox')
    op.drop_index('ix_outbox_due', table_name='outbox')
    op.drop_table('outbox')
