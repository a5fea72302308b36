"""sealed clinical content: findings, citations, signer's labels, monitoring samples

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-27 09:00:00

Migration 0016 sealed the free text; the clinical content beside it stayed in clear: a report
version's findings (labels and probabilities) and citations (the passages chosen for them),
the signer's verdict on each label (``study_labels``), what monitoring keeps of each analysis
(``monitor_samples``: probabilities, positives, image statistics, age band and sex, beside the
study's accession, UID and date), the verdicts a site set froze and a validation's per-study
outputs (``validations.metrics``), why a study is urgent (``studies.urgent_because``: an AI
label is a finding) and a DICOM series description (operator free text). Each
is now a Fernet token (``platform.sealed``), every existing value sealed here with the
server's newest key.

The JSON columns keep their type (a token is a JSON string). ``study_labels``' label, present,
ai_positive and source become sealed JSON/text (a refused study's label rows alone say what its
signer found), which drops their unique (study_id, report_version, label): tokens never repeat.
``dicom_instances.series_description`` becomes text (a token is longer than 64 characters).
Report versions are append-only: their UPDATE trigger is lifted for this transaction only and
put back. Values are read and written in batches of ids (``monitor_samples`` grows with every
analysis); ``study_labels`` is read whole before its columns change type. The downgrade opens
every value again (the server's keys must open them).
"""
import json

import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

BATCH = 500
JSON_COLUMNS = (  # (table, column): JSON values sealed in place
    ("studies", "urgent_because"),
    ("monitor_samples", "probs"),
    ("monitor_samples", "positives"),
    ("monitor_samples", "stats"),
    ("monitor_samples", "meta"),
    ("site_sets", "studies"),
    ("validations", "metrics"),
)
REPORT_COLUMNS = ("findings", "citations")
LABEL_UNIQUE = "study_labels_study_id_report_version_label_key"  # PostgreSQL's own name for it


def _cipher():
    from medai.platform.records.crypto import cipher

    return cipher()


def _seal(value: str) -> str:
    return _cipher().encrypt(value).decode("ascii")


def _open(token: str) -> str:
    return _cipher().decrypt(token.encode("ascii"))


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


def _rows(t, column):
    """(id, value) of every non-null value, in batches of ids (never the whole table)."""
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(sa.select(t.c.id, t.c[column]).where(
            t.c.id > last, t.c[column].is_not(None)).order_by(t.c.id).limit(BATCH)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1][0]


def _seal_json(table: str, column: str) -> None:
    bind = op.get_bind()
    t = sa.table(table, sa.column("id", sa.Integer()), sa.column(column, sa.JSON()))
    for row_id, value in list(_rows(t, column)):
        if isinstance(value, str):  # already a token
            continue
        # a JSON null (what the ORM wrote for None) becomes SQL NULL, as sealed columns keep
        # None: a rotation or a key survey would take a JSON null for a token no key opens
        bind.execute(t.update().where(t.c.id == row_id).values(
            {column: sa.null() if value is None else
             _seal(json.dumps(value, ensure_ascii=False))}))


def _open_json(table: str, column: str) -> None:
    bind = op.get_bind()
    t = sa.table(table, sa.column("id", sa.Integer()), sa.column(column, sa.JSON()))
    for row_id, value in list(_rows(t, column)):
        if isinstance(value, str):
            bind.execute(t.update().where(t.c.id == row_id).values(
                {column: json.loads(_open(value))}))


def _series(seal: bool) -> None:
    bind = op.get_bind()
    t = sa.table("dicom_instances", sa.column("id", sa.Integer()),
                 sa.column("series_description", sa.Text()))
    for row_id, value in list(_rows(t, "series_description")):
        bind.execute(t.update().where(t.c.id == row_id).values(
            series_description=_seal(value) if seal else _open(value)))


def _series_type(type_) -> None:
    if op.get_bind().dialect.name == "sqlite":  # a copy of the table, as SQLite alters types
        with op.batch_alter_table("dicom_instances", recreate="always") as batch_op:
            batch_op.alter_column("series_description", type_=type_)
    else:
        op.alter_column("dicom_instances", "series_description", type_=type_)


_LABELS = ("label", "present", "ai_positive", "source")


def _labels_table(sealed: bool):
    kind = {"label": sa.Text() if sealed else sa.String(64),
            "present": sa.JSON() if sealed else sa.Boolean(),
            "ai_positive": sa.JSON() if sealed else sa.Boolean(),
            "source": sa.Text() if sealed else sa.String(16)}
    return sa.table("study_labels", sa.column("id", sa.Integer()),
                    *(sa.column(c, kind[c]) for c in _LABELS))


def _old_labels_shape() -> sa.Table:
    """study_labels as migration 0009 made it, less its unique (SQLite cannot drop an
    unnamed constraint: the copy is made from this)."""
    return sa.Table(
        "study_labels", sa.MetaData(),
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id"), nullable=False),
        sa.Column("report_version", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("present", sa.Boolean(), nullable=False),
        sa.Column("ai_positive", sa.Boolean(), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("model_hash", sa.String(80), nullable=True),
        sa.Column("decided_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Index("ix_study_labels_study", "study_id"),
    )


def _seal_labels() -> None:
    bind = op.get_bind()
    old = _labels_table(sealed=False)
    rows = bind.execute(sa.select(old.c.id, *(old.c[c] for c in _LABELS))).all()
    if bind.dialect.name == "sqlite":
        with op.batch_alter_table("study_labels", recreate="always",
                                  copy_from=_old_labels_shape()) as batch_op:
            batch_op.alter_column("label", type_=sa.Text())
            batch_op.alter_column("present", type_=sa.JSON())
            batch_op.alter_column("ai_positive", type_=sa.JSON())
            batch_op.alter_column("source", type_=sa.Text())
    else:
        for uq in sa.inspect(bind).get_unique_constraints("study_labels"):
            op.drop_constraint(uq["name"], "study_labels", type_="unique")
        op.alter_column("study_labels", "label", type_=sa.Text())
        op.alter_column("study_labels", "present", type_=sa.JSON(),
                        postgresql_using="to_json(present)")
        op.alter_column("study_labels", "ai_positive", type_=sa.JSON(),
                        postgresql_using="to_json(ai_positive)")
        op.alter_column("study_labels", "source", type_=sa.Text())
    new = _labels_table(sealed=True)
    for row_id, label, present, ai_positive, source in rows:
        bind.execute(new.update().where(new.c.id == row_id).values(
            label=_seal(label),
            present=_seal(json.dumps(bool(present))),
            ai_positive=sa.null() if ai_positive is None else _seal(json.dumps(bool(ai_positive))),
            source=_seal(source)))


def _open_labels() -> None:
    """Back in clear: the values written first (booleans as JSON 1/0, which PostgreSQL casts
    to a boolean with the column), then the old types and the unique; SQLite's copy keeps the
    JSON text, so its booleans are written again."""
    bind = op.get_bind()
    new = _labels_table(sealed=True)

    def flag(token):
        return None if token is None else bool(json.loads(_open(token)))

    clear = [(row_id, _open(label), flag(present), flag(ai_positive), _open(source))
             for row_id, label, present, ai_positive, source
             in bind.execute(sa.select(new.c.id, *(new.c[c] for c in _LABELS))).all()]
    for row_id, label, present, ai_positive, source in clear:
        bind.execute(new.update().where(new.c.id == row_id).values(
            label=label, present=int(present),
            ai_positive=sa.null() if ai_positive is None else int(ai_positive), source=source))
    if bind.dialect.name == "sqlite":
        with op.batch_alter_table("study_labels", recreate="always") as batch_op:
            batch_op.alter_column("label", type_=sa.String(64))
            batch_op.alter_column("present", type_=sa.Boolean())
            batch_op.alter_column("ai_positive", type_=sa.Boolean())
            batch_op.alter_column("source", type_=sa.String(16))
            batch_op.create_unique_constraint(LABEL_UNIQUE,
                                              ["study_id", "report_version", "label"])
        old = _labels_table(sealed=False)
        for row_id, _label, present, ai_positive, _source in clear:
            bind.execute(old.update().where(old.c.id == row_id).values(
                present=present, ai_positive=ai_positive))
    else:
        op.alter_column("study_labels", "label", type_=sa.String(64))
        op.alter_column("study_labels", "present", type_=sa.Boolean(),
                        postgresql_using="(present::text)::boolean")
        op.alter_column("study_labels", "ai_positive", type_=sa.Boolean(),
                        postgresql_using="(ai_positive::text)::boolean")
        op.alter_column("study_labels", "source", type_=sa.String(16))
        op.create_unique_constraint(LABEL_UNIQUE, "study_labels",
                                    ["study_id", "report_version", "label"])


def upgrade() -> None:
    for table, column in JSON_COLUMNS:
        _seal_json(table, column)
    _series_type(sa.Text())
    _series(seal=True)
    _seal_labels()
    _trigger(lift=True)
    for column in REPORT_COLUMNS:
        _seal_json("report_versions", column)
    _trigger(lift=False)


def downgrade() -> None:
    """Back in clear (the server's keys must open every value)."""
    _trigger(lift=True)
    for column in REPORT_COLUMNS:
        _open_json("report_versions", column)
    _trigger(lift=False)
    _open_labels()
    _series(seal=False)
    _series_type(sa.String(64))
    for table, column in JSON_COLUMNS:
        _open_json(table, column)
