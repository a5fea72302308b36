"""upload keys: an upload retried with the same Idempotency-Key is filed once

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-29 09:00:00

The two-node kill test filed 101 studies for 100 uploads: a node died after committing an
upload and before answering, and the uploader's retry filed the image again. DICOM is
idempotent by SOP Instance UID; an HTTP upload was not. ``upload_keys`` holds each
``Idempotency-Key`` a user sent with ``POST /api/v1/studies`` and a keyed hash of that upload
(``platform.idempotency``), inserted in the transaction that files the study; its unique
(user, key) makes two replicas racing on one key file one study. Rows older than a day are
swept. A new table only: nothing existing is rewritten.
"""
import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'upload_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=128), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('study_id', sa.Integer(), nullable=True),
        sa.Column('status', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['study_id'], ['studies.id']),
        sa.ForeignKeyConstraint(['user_id'], ['users.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('user_id', 'key'),
    )
    op.create_index('ix_upload_keys_created_at', 'upload_keys', ['created_at'])


def downgrade() -> None:
    op.drop_index('ix_upload_keys_created_at', table_name='upload_keys')
    op.drop_table('upload_keys')
