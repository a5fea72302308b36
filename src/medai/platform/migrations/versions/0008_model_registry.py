"""model registry: the hospital's models, their states and every change of state

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 07:30:00

``registered_models``: one row per sealed model directory registered for a task (copied into
content-addressed storage under MEDAI_HOME, so the row names files that cannot change under
it): its identity (name, version, content hash), card, who registered it and its state —
``candidate`` → ``shadow`` → ``active`` → ``retired``. The database keeps exactly one
``active`` per task (a partial unique index), and a directory once per task.
``model_transitions``: every change of state with its reason and who made it (rollback reads
which model was active before). New tables only: nothing existing is rewritten.
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'registered_models',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('task', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('version', sa.String(length=64), nullable=False),
        sa.Column('model_type', sa.String(length=32), nullable=False),
        sa.Column('content_hash', sa.String(length=80), nullable=False),
        sa.Column('path', sa.String(length=255), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('source', sa.String(length=255), nullable=False),
        sa.Column('card', sa.JSON(), nullable=False),
        sa.Column('registered_by', sa.String(length=64), nullable=False),
        sa.Column('registered_at', sa.DateTime(), nullable=False),
        sa.Column('state_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('task', 'content_hash'),
    )
    op.create_index('ix_registered_models_task_state', 'registered_models', ['task', 'state'])
    op.create_index('ux_registered_models_one_active', 'registered_models', ['task'],
                    unique=True, sqlite_where=sa.text("state = 'active'"),
                    postgresql_where=sa.text("state = 'active'"))
    op.create_table(
        'model_transitions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('task', sa.String(length=32), nullable=False),
        sa.Column('from_state', sa.String(length=16), nullable=True),
        sa.Column('to_state', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.String(length=400), nullable=False),
        sa.Column('actor', sa.String(length=64), nullable=False),
        sa.Column('override', sa.Boolean(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['model_id'], ['registered_models.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_model_transitions_task', 'model_transitions', ['task', 'id'])


def downgrade() -> None:
    op.drop_index('ix_model_transitions_task', table_name='model_transitions')
    op.drop_table('model_transitions')
    op.drop_index('ux_registered_models_one_active', table_name='registered_models')
    op.drop_index('ix_registered_models_task_state', table_name='registered_models')
    op.drop_table('registered_models')
