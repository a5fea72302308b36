"""account approval: the two-person rule for patient data

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 05:00:00

A clinical account reads patient data only once a second person approved it
(``platform.approval``): ``users.approved_at`` (None: pending) and ``users.approved_by``.
Clinical users who have already chosen their password are approved here, so nothing breaks
on upgrade; an invitation not yet used stays pending, since the admin who made it saw its
code. Only columns are added (SQLite's foreign keys to ``users`` stay intact; the downgrade
drops them in place: SQLite 3.35 or newer).
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

CLINICAL = ('radiologist', 'clinician')  # the roles holding patient data in 0007's time


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('approved_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('approved_by', sa.String(length=64), nullable=True))
    users = sa.table('users', sa.column('role', sa.String), sa.column('password_hash', sa.String),
                     sa.column('approved_at', sa.DateTime),
                     sa.column('approved_by', sa.String))
    op.execute(users.update()
               .where(users.c.role.in_(CLINICAL), users.c.password_hash != '')
               .values(approved_at=sa.func.current_timestamp(), approved_by='migration 0007'))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('approved_by')
        batch_op.drop_column('approved_at')
