"""history since: a reset or a role change starts an account's own history anew

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-27 09:00:00

The admin who resets an account sees its new enrolment code, so whoever enrols with it must
not read the account's earlier triage history and conversations (``platform.accounts``):
``users.history_since`` (None: everything is the account's own) is set by a reset and by a
role change, and the account's own lists show only rows made at or after it. Nothing is
deleted. One nullable column (SQLite's foreign keys to ``users`` stay intact; the downgrade
drops it in place: SQLite 3.35 or newer).
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('history_since', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('history_since')
