"""model jobs: retraining and validation runs with progress

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24 10:30:00

A retraining (export → train → register a candidate) or a site validation started from the
admin page or the API runs as a job: on the Celery ``training`` queue when a broker is set,
else in the server's own thread. Its row holds its progress, its result or its error, and a
lease a worker renews. A new table only.
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'model_jobs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('task', sa.String(length=32), nullable=False),
        sa.Column('model_id', sa.Integer(), nullable=True),
        sa.Column('options', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('cancel_requested', sa.Boolean(), nullable=False),
        sa.Column('progress', sa.Float(), nullable=False),
        sa.Column('stage', sa.String(length=64), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('worker', sa.String(length=128), nullable=True),
        sa.Column('lease_until', sa.DateTime(), nullable=True),
        sa.Column('result', sa.JSON(), nullable=True),
        sa.Column('error', sa.String(length=400), nullable=True),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('started_at', sa.DateTime(), nullable=True),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['model_id'], ['registered_models.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_model_jobs_task', 'model_jobs', ['task', 'status', 'id'])


def downgrade() -> None:
    op.drop_index('ix_model_jobs_task', table_name='model_jobs')
    op.drop_table('model_jobs')
