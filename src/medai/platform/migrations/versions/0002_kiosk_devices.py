"""kiosk devices: registered triage kiosks with their own daily quota

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00

A kiosk was one client address sharing the anonymous quota (3 a day). Now an admin registers
each kiosk: ``kiosks`` holds its name, quota and hashed credentials, and each triage request
names the kiosk it came from (``triage_requests.kiosk_id``) so that a day's use is one indexed
count. Written by hand, in batch mode, so that SQLite (table copy) and PostgreSQL (ALTER TABLE)
both run it.
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

ACTIVE = sa.text("revoked_at IS NULL")


def upgrade() -> None:
    op.create_table(
        'kiosks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('daily_quota', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('cookie_hash', sa.String(length=64), nullable=True),
        sa.Column('enrol_code_hash', sa.String(length=64), nullable=True),
        sa.Column('enrol_expires_at', sa.DateTime(), nullable=True),
        sa.Column('enrolled_at', sa.DateTime(), nullable=True),
        sa.Column('created_by', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('revoked_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['created_by'], ['users.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
        sa.UniqueConstraint('cookie_hash'),
        sa.UniqueConstraint('enrol_code_hash'),
    )
    op.create_index('ux_kiosks_active_name', 'kiosks', ['name'], unique=True,
                    sqlite_where=ACTIVE, postgresql_where=ACTIVE)
    with op.batch_alter_table('triage_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kiosk_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_triage_requests_kiosk_id_kiosks', 'kiosks',
                                    ['kiosk_id'], ['id'])
        batch_op.create_index('ix_triage_requests_kiosk_day', ['kiosk_id', 'created_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('triage_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_triage_requests_kiosk_day')
        batch_op.drop_constraint('fk_triage_requests_kiosk_id_kiosks', type_='foreignkey')
        batch_op.drop_column('kiosk_id')
    op.drop_index('ux_kiosks_active_name', table_name='kiosks')
    op.drop_table('kiosks')
