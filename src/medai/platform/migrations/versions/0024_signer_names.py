"""signer names: an account's full name and title, and the name a signature was given under

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03 12:00:00

``users.full_name`` and ``users.title`` (e.g. "Ayşe Yılmaz", "Uzm. Dr."): the name the signed
PDF, the FHIR Practitioner, the DICOM SR's verifying observer and the HL7 result interpreter
give the signer, instead of the user name. Both empty for every existing account (the documents
fall back to the user name until one is set). They are the staff member's own name, not patient
text, and stay in clear like the user name beside them.

``report_versions.signer_name`` and ``signer_title``: the full name and title as they were when
the version was signed (a later change of name or title does not rewrite a signed report's
copies); empty for versions signed before this revision (the documents read the signer's
present profile, then the user name). Report versions are append-only: the columns are only
added and dropped, no row is updated.
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

NAME, TITLE = 60, 24  # accounts.FULL_NAME_MAX, accounts.TITLE_MAX


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("full_name", sa.String(length=NAME), nullable=True))
        batch_op.add_column(sa.Column("title", sa.String(length=TITLE), nullable=True))
    # a plain ADD COLUMN (never a SQLite table copy, which would lose the append-only triggers)
    with op.batch_alter_table("report_versions", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("signer_name", sa.String(length=NAME), nullable=True))
        batch_op.add_column(sa.Column("signer_title", sa.String(length=TITLE), nullable=True))


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place: the report_versions triggers stay
    with op.batch_alter_table("report_versions", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("signer_title")
        batch_op.drop_column("signer_name")
    with op.batch_alter_table("users", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("title")
        batch_op.drop_column("full_name")
