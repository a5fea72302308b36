"""sealed refusal reasons and heatmap labels

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-04 09:00:00

Two columns still held clinical content in clear (issue 67): ``studies.reason``, the text of a
refusal or failure ("the image does not look like a chest radiograph", "no AI model for this
study (MR, HEAD)"), which names what the image shows and where the study came from; and
``ai_results.heatmap_label``, the finding the heatmap is drawn for ("Pneumothorax"), which is a
finding like the labels 0019 sealed. Each becomes a Fernet token (``platform.sealed``), every
existing value sealed here with the server's newest key; ``rotation.SEALED`` lists both.

A token is longer than either column's limit (400 and 64 characters), so each becomes text.
PostgreSQL changes the type in place. SQLite cannot, and neither table may be rebuilt by
reflection (a column moved to the end of ``ai_results`` breaks 0021's downgrade, which finds the
table by its stored definition): each is rebuilt from its own stored definition with only the
column's type swapped, as 0021 rebuilt ``ai_results`` (rows copied aside, the table dropped and
made again, the rows put back, its indexes made again; foreign keys from other tables are
checked at the commit, with every referred row back). Values are sealed in batches of ids. The
downgrade does the same the other way, opening every value (the server's keys must open them)
and clipping it to the old length.
"""
import re

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

BATCH = 500
COLUMNS = (  # (table, column, its length in clear)
    ("studies", "reason", 400),
    ("ai_results", "heatmap_label", 64),
)


def _cipher():
    from medai.platform.records.crypto import cipher

    return cipher()


def _seal(value: str) -> str:
    return _cipher().encrypt(value).decode("ascii")


def _open(token: str) -> str:
    return _cipher().decrypt(token.encode("ascii"))


def _convert(table: str, column: str, convert) -> None:
    """``column = convert(column)`` for every row with a value, in batches of ids."""
    bind = op.get_bind()
    t = sa.table(table, sa.column("id", sa.Integer()), sa.column(column, sa.Text()))
    last = 0
    while True:
        rows = bind.execute(sa.select(t.c.id, t.c[column]).where(
            t.c.id > last, t.c[column].is_not(None)).order_by(t.c.id).limit(BATCH)).all()
        if not rows:
            return
        for row_id, value in rows:
            bind.execute(t.update().where(t.c.id == row_id).values({column: convert(value)}))
        last = rows[-1][0]


def _retype_sqlite(table: str, column: str, old: str, new: str) -> None:
    """``table`` rebuilt from its stored definition with ``column``'s declared type ``old``
    swapped for ``new``, in this transaction (see the docstring)."""
    bind = op.get_bind()
    ddl = bind.execute(sa.text(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"), {"t": table}
    ).scalar_one()
    pattern = re.compile(rf"(^|[(,]\s*){column} {re.escape(old)}(?=\s*[,)])", re.M)
    if len(pattern.findall(ddl)) != 1:
        raise RuntimeError(f"{table}.{column} is not {old} as revision 0026 left it: not migrated")
    rebuilt = pattern.sub(lambda m: f"{m.group(1)}{column} {new}", ddl)
    extras = [r[0] for r in bind.execute(sa.text(
        "SELECT sql FROM sqlite_master WHERE tbl_name = :t AND type IN ('index', 'trigger') "
        "AND sql IS NOT NULL ORDER BY type, name"), {"t": table})]
    aside = f"_{table}_0027"
    op.execute("PRAGMA defer_foreign_keys = ON")
    op.execute(f"CREATE TABLE {aside} AS SELECT * FROM {table}")
    op.execute(f"DROP TABLE {table}")
    op.execute(rebuilt)
    op.execute(f"INSERT INTO {table} SELECT * FROM {aside}")
    op.execute(f"DROP TABLE {aside}")
    for sql in extras:
        op.execute(sql)


def _retype(table: str, column: str, limit: int, sealed: bool) -> None:
    """``column`` made text (``sealed``) or back to VARCHAR(``limit``)."""
    clear, text = f"VARCHAR({limit})", "TEXT"
    if op.get_bind().dialect.name == "sqlite":
        _retype_sqlite(table, column, *((clear, text) if sealed else (text, clear)))
    else:
        op.alter_column(table, column, type_=sa.Text() if sealed else sa.String(limit),
                        existing_type=sa.String(limit) if sealed else sa.Text())


def upgrade() -> None:
    for table, column, limit in COLUMNS:
        _retype(table, column, limit, sealed=True)
        _convert(table, column, _seal)


def downgrade() -> None:
    """Back in clear (the server's keys must open every value), clipped to the old length."""
    for table, column, limit in COLUMNS:
        _convert(table, column, lambda token, n=limit: _open(token)[:n])
        _retype(table, column, limit, sealed=False)
