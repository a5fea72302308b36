"""site validation: frozen evaluation sets from signed studies, and each candidate's verdict

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 09:00:00

``site_sets``: a task's evaluation set, frozen when built (the study ids and each study's
signed labels at that moment, so a later amendment does not change it), versioned per task.
``validations``: a candidate evaluated beside the active model on one site set — the metrics,
the margin and whether it was non-inferior. New tables only.
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'site_sets',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('task', sa.String(length=32), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('studies', sa.JSON(), nullable=False),
        sa.Column('label_counts', sa.JSON(), nullable=False),
        sa.Column('content_hash', sa.String(length=80), nullable=False),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('task', 'version'),
    )
    op.create_table(
        'validations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('active_model_id', sa.Integer(), nullable=True),
        sa.Column('site_set_id', sa.Integer(), nullable=False),
        sa.Column('margin', sa.Float(), nullable=False),
        sa.Column('passed', sa.Boolean(), nullable=False),
        sa.Column('metrics', sa.JSON(), nullable=False),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['model_id'], ['registered_models.id']),
        sa.ForeignKeyConstraint(['active_model_id'], ['registered_models.id']),
        sa.ForeignKeyConstraint(['site_set_id'], ['site_sets.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_validations_model', 'validations', ['model_id', 'id'])


def downgrade() -> None:
    op.drop_index('ix_validations_model', table_name='validations')
    op.drop_table('validations')
    op.drop_table('site_sets')
