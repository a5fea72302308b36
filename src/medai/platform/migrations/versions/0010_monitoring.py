"""monitoring: one sample per analysis, and the alerts raised on them

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 08:30:00

``monitor_samples``: per AI analysis, the model that made it, its latency, whether it refused
or abstained, its probability per label and decided positives, the image's statistics and
its metadata mix (modality, view, source) — never patient data. ``monitor_alerts``: a drift
or agreement threshold crossed for an active model (open until the condition clears).
New tables only.
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'monitor_samples',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('task', sa.String(length=32), nullable=False),
        sa.Column('model_hash', sa.String(length=80), nullable=False),
        sa.Column('study_id', sa.Integer(), nullable=True),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('latency_ms', sa.Float(), nullable=True),
        sa.Column('refused', sa.Boolean(), nullable=False),
        sa.Column('abstained', sa.Boolean(), nullable=False),
        sa.Column('probs', sa.JSON(), nullable=False),
        sa.Column('positives', sa.JSON(), nullable=False),
        sa.Column('stats', sa.JSON(), nullable=False),
        sa.Column('meta', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['study_id'], ['studies.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_monitor_samples_model', 'monitor_samples', ['task', 'model_hash', 'id'])
    op.create_table(
        'monitor_alerts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('task', sa.String(length=32), nullable=False),
        sa.Column('model_hash', sa.String(length=80), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('value', sa.Float(), nullable=False),
        sa.Column('threshold', sa.Float(), nullable=False),
        sa.Column('samples', sa.Integer(), nullable=False),
        sa.Column('detail', sa.JSON(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('cleared_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_monitor_alerts_model', 'monitor_alerts', ['task', 'model_hash'])


def downgrade() -> None:
    op.drop_index('ix_monitor_alerts_model', table_name='monitor_alerts')
    op.drop_table('monitor_alerts')
    op.drop_index('ix_monitor_samples_model', table_name='monitor_samples')
    op.drop_table('monitor_samples')
