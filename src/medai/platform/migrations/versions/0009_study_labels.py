"""study labels: what the signing radiologist said about each finding

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 08:00:00

On sign-off, every label the study's model reads (and any the radiologist added) is recorded
as present or absent for that signed report version, beside what the AI decided and how the
verdict was reached (confirmed or rejected an AI finding, added a missing one, or taken from
the signed text). An amendment records its own rows, so labels are versioned with the report.
These rows are the site's training and evaluation labels. A new table only.
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'study_labels',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('study_id', sa.Integer(), nullable=False),
        sa.Column('report_version', sa.Integer(), nullable=False),
        sa.Column('label', sa.String(length=64), nullable=False),
        sa.Column('present', sa.Boolean(), nullable=False),
        sa.Column('ai_positive', sa.Boolean(), nullable=True),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('model_hash', sa.String(length=80), nullable=True),
        sa.Column('decided_by', sa.Integer(), nullable=True),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['study_id'], ['studies.id']),
        sa.ForeignKeyConstraint(['decided_by'], ['users.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('study_id', 'report_version', 'label'),
    )
    op.create_index('ix_study_labels_study', 'study_labels', ['study_id'])


def downgrade() -> None:
    op.drop_index('ix_study_labels_study', table_name='study_labels')
    op.drop_table('study_labels')
