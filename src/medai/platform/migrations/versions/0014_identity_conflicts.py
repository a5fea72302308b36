"""identity conflicts: the right patient, always

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-26 08:00:00

A DICOM instance that names another patient or order than the study of its StudyInstanceUID,
or a stored SOP instance sent again with other content, is quarantined in
``identity_conflicts`` (never merged or analysed) until a person reassigns or rejects it. A
study keeps the whole patient identity its instances must agree with (PatientID, issuer, name,
birth date, accession) sealed in ``studies.patient_identity``; a study filed before has none and
is compared on the ID, name and accession it kept.
"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('studies') as batch:
        batch.add_column(sa.Column('patient_identity', sa.LargeBinary(), nullable=True))
    op.create_table(
        'identity_conflicts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('study_id', sa.Integer(), nullable=False),
        sa.Column('reason', sa.String(length=32), nullable=False),
        sa.Column('fields', sa.JSON(), nullable=False),
        sa.Column('identity', sa.LargeBinary(), nullable=False),
        sa.Column('file_sha256', sa.String(length=64), nullable=False),
        sa.Column('file_size', sa.Integer(), nullable=False),
        sa.Column('content_type', sa.String(length=64), nullable=False),
        sa.Column('sop_uid', sa.String(length=64), nullable=True),
        sa.Column('task', sa.String(length=32), nullable=True),
        sa.Column('language', sa.String(length=8), nullable=False),
        sa.Column('source', sa.String(length=8), nullable=False),
        sa.Column('calling_ae', sa.String(length=16), nullable=True),
        sa.Column('uploaded_by', sa.Integer(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('resolved_at', sa.DateTime(), nullable=True),
        sa.Column('resolved_by', sa.String(length=64), nullable=True),
        sa.Column('resolved_study_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['study_id'], ['studies.id']),
        sa.ForeignKeyConstraint(['resolved_study_id'], ['studies.id']),
        sa.ForeignKeyConstraint(['uploaded_by'], ['users.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_identity_conflicts_study_id', 'identity_conflicts', ['study_id'])
    op.create_index('ix_identity_conflicts_state', 'identity_conflicts', ['state'])
    op.create_index('ix_identity_conflicts_sop_uid', 'identity_conflicts', ['sop_uid'])
    op.create_index('ix_identity_conflicts_file_sha256', 'identity_conflicts', ['file_sha256'])


def downgrade() -> None:
    op.drop_index('ix_identity_conflicts_file_sha256', table_name='identity_conflicts')
    op.drop_index('ix_identity_conflicts_sop_uid', table_name='identity_conflicts')
    op.drop_index('ix_identity_conflicts_state', table_name='identity_conflicts')
    op.drop_index('ix_identity_conflicts_study_id', table_name='identity_conflicts')
    op.drop_table('identity_conflicts')
    with op.batch_alter_table('studies') as batch:
        batch.drop_column('patient_identity')
