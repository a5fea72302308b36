"""account enrolment and sign-in groups

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 00:30:00

An admin no longer sets a password: a new (or reset) account has none (its ``password_hash``
is "", which matches nothing) until its user enrols with a one-time code, kept as its sha256
with an expiry (``users.enrol_code_hash``, ``users.enrol_expires_at``). Each password sign-in
names its credentials (``tokens.signin``) so that signing out revokes the session and the
bearer token together. Existing users and tokens keep working (their new columns are empty).
Only columns and indexes are added: no table is copied, so SQLite's foreign keys to ``users``
stay intact (the downgrade drops the columns in place: SQLite 3.35 or newer).
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('enrol_code_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('enrol_expires_at', sa.DateTime(), nullable=True))
        batch_op.create_index('ux_users_enrol_code_hash', ['enrol_code_hash'], unique=True)
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('signin', sa.String(length=32), nullable=True))
        batch_op.create_index('ix_tokens_signin', ['signin'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tokens', schema=None, recreate='never') as batch_op:
        batch_op.drop_index('ix_tokens_signin')
        batch_op.drop_column('signin')
    with op.batch_alter_table('users', schema=None, recreate='never') as batch_op:
        batch_op.drop_index('ux_users_enrol_code_hash')
        batch_op.drop_column('enrol_expires_at')
        batch_op.drop_column('enrol_code_hash')
