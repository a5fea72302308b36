"""sealed free text: every free text that can hold patient data is encrypted at rest

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-26 09:00:00

A clinical question ("Ayşe Yılmaz 05321234567"), a report version's sections (and the AI
draft's, kept in its result's payload), a triage result (its red-flag evidence quotes the
complaint) and a patient reference were kept in clear beside
the encrypted complaint and patient name. Each is now a Fernet token (``platform.sealed``):
the columns keep their SQL types (a token is base64 text; a JSON column holds it as a JSON
string), and every existing value is sealed here with the server's newest key. A patient is
found by a keyed hash of its reference, which ``patients.ref`` now holds; the reference itself
moves to ``patients.ref_sealed``. Report versions are append-only: their UPDATE trigger is
lifted for this transaction only and put back.
"""
import json

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def _cipher():
    from medai.platform.crypto import cipher

    return cipher()


def _seal(value: str) -> str:
    return _cipher().encrypt(value).decode("ascii")


def _trigger(lift: bool) -> None:
    bind = op.get_bind()
    name = "report_versions_no_update"
    if bind.dialect.name == "sqlite":
        op.execute(f"DROP TRIGGER IF EXISTS {name}" if lift else
                   f"CREATE TRIGGER {name} BEFORE UPDATE ON report_versions "
                   "BEGIN SELECT RAISE(ABORT, 'report_versions is append-only'); END")
    elif bind.dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON report_versions" if lift else
                   f"CREATE TRIGGER {name} BEFORE UPDATE ON report_versions "
                   f"FOR EACH ROW EXECUTE FUNCTION {name}()")


def _seal_column(table: str, column: str, kind: str) -> None:
    bind = op.get_bind()
    col_type = sa.JSON() if kind == "json" else sa.Text()
    t = sa.table(table, sa.column("id", sa.Integer()), sa.column(column, col_type))
    for row_id, value in bind.execute(sa.select(t.c.id, t.c[column])).all():
        if value is None:
            continue
        if kind == "json":
            if isinstance(value, str):  # already a token (a JSON string)
                continue
            sealed = _seal(json.dumps(value, ensure_ascii=False))
        else:
            sealed = _seal(value)
        bind.execute(t.update().where(t.c.id == row_id).values({column: sealed}))


def upgrade() -> None:
    with op.batch_alter_table('patients', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('ref_sealed', sa.Text(), nullable=True))
    bind = op.get_bind()
    patients = sa.table("patients", sa.column("id", sa.Integer()), sa.column("ref", sa.String()),
                        sa.column("ref_sealed", sa.Text()))
    for row_id, ref in bind.execute(sa.select(patients.c.id, patients.c.ref)).all():
        bind.execute(patients.update().where(patients.c.id == row_id).values(
            ref=_cipher().pseudonym(ref), ref_sealed=_seal(ref)))
    _seal_column("studies", "clinical_question", "text")
    _seal_column("triage_requests", "result", "json")
    _seal_column("ai_results", "payload", "json")
    _trigger(lift=True)
    _seal_column("report_versions", "sections", "json")
    _trigger(lift=False)


def _open_column(table: str, column: str, kind: str) -> None:
    bind = op.get_bind()
    col_type = sa.JSON() if kind == "json" else sa.Text()
    t = sa.table(table, sa.column("id", sa.Integer()), sa.column(column, col_type))
    for row_id, value in bind.execute(sa.select(t.c.id, t.c[column])).all():
        if not isinstance(value, str):
            continue
        plain = _cipher().decrypt(value.encode("ascii"))
        bind.execute(t.update().where(t.c.id == row_id).values(
            {column: json.loads(plain) if kind == "json" else plain}))


def downgrade() -> None:
    """Back in clear (the server's keys must open every value)."""
    _trigger(lift=True)
    _open_column("report_versions", "sections", "json")
    _trigger(lift=False)
    _open_column("triage_requests", "result", "json")
    _open_column("ai_results", "payload", "json")
    _open_column("studies", "clinical_question", "text")
    bind = op.get_bind()
    patients = sa.table("patients", sa.column("id", sa.Integer()), sa.column("ref", sa.String()),
                        sa.column("ref_sealed", sa.Text()))
    for row_id, sealed in bind.execute(sa.select(patients.c.id, patients.c.ref_sealed)).all():
        if sealed is not None:
            bind.execute(patients.update().where(patients.c.id == row_id).values(
                ref=_cipher().decrypt(sealed.encode("ascii"))))
    with op.batch_alter_table('patients', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('ref_sealed')
