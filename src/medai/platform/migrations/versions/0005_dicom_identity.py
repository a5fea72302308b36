"""DICOM identity of studies and their instances

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 03:00:00

Studies arriving from a modality or the PACS (the DICOM node, or a DICOM file uploaded in the
browser) keep who and what they are: the StudyInstanceUID (unique: instances group into one
study), the accession number (searchable), the study date, the source, and the patient's ID
and name as Fernet tokens (encrypted at rest like other patient text). Each stored instance is
a row of ``dicom_instances`` (series, SOP class, modality, view, body part, series
description, the stored file), unique by SOPInstanceUID so that an instance sent twice is
stored once. Existing studies keep working (their new columns are empty). Only columns, an
index and a new table are added: ``studies`` is not copied, so SQLite's foreign keys to it stay
intact (the downgrade drops them in place: SQLite 3.35 or newer).
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('study_uid', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('accession', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('patient_key', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('patient_name', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('study_date', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('source', sa.String(length=8), nullable=True))
        batch_op.create_index('ux_studies_study_uid', ['study_uid'], unique=True)
        batch_op.create_index('ix_studies_accession', ['accession'], unique=False)
    op.create_table(
        'dicom_instances',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('study_id', sa.Integer(), nullable=False),
        sa.Column('sop_uid', sa.String(length=64), nullable=False),
        sa.Column('series_uid', sa.String(length=64), nullable=False),
        sa.Column('sop_class', sa.String(length=64), nullable=False),
        sa.Column('modality', sa.String(length=16), nullable=True),
        sa.Column('view_position', sa.String(length=16), nullable=True),
        sa.Column('body_part', sa.String(length=64), nullable=True),
        sa.Column('series_description', sa.String(length=64), nullable=True),
        sa.Column('series_number', sa.Integer(), nullable=True),
        sa.Column('instance_number', sa.Integer(), nullable=True),
        sa.Column('file_sha256', sa.String(length=64), nullable=False),
        sa.Column('file_size', sa.Integer(), nullable=False),
        sa.Column('calling_ae', sa.String(length=16), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['study_id'], ['studies.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('sop_uid'),
    )
    op.create_index('ix_dicom_instances_study_id', 'dicom_instances', ['study_id'])
    op.create_index('ix_dicom_instances_series_uid', 'dicom_instances', ['series_uid'])


def downgrade() -> None:
    op.drop_index('ix_dicom_instances_series_uid', table_name='dicom_instances')
    op.drop_index('ix_dicom_instances_study_id', table_name='dicom_instances')
    op.drop_table('dicom_instances')
    with op.batch_alter_table('studies', schema=None, recreate='never') as batch_op:
        batch_op.drop_index('ix_studies_accession')
        batch_op.drop_index('ux_studies_study_uid')
        batch_op.drop_column('source')
        batch_op.drop_column('study_date')
        batch_op.drop_column('patient_name')
        batch_op.drop_column('patient_key')
        batch_op.drop_column('accession')
        batch_op.drop_column('study_uid')
