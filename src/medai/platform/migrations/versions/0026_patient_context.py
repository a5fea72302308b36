"""patient context: sex, birth date, age at the study date, and the PatientID's keyed hash

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-03 12:00:00

A study now carries its patient's context (``platform.patient_context``, issue 59):

- ``patient_sex`` (M, F, O; NULL unknown) and ``patient_age`` (whole years at the study date)
  in plain: what the study page and a list show, neither identifying on its own;
- ``patient_birth_date`` (YYYYMMDD) sealed like every identifying value (a Fernet token,
  ``platform.sealed``; ``rotation.SEALED`` lists it);
- ``patient_hash``: the keyed hash (``crypto.Cipher.pseudonym``) of the DICOM PatientID with its
  issuer, indexed: how a prior study of the same patient is found without opening every
  study's sealed PatientID. ``medai keys rotate`` re-keys it with the patients' hashes.

Existing DICOM studies are filled in here: the hash from their sealed PatientID and issuer, the
birth date from their sealed patient identity and the age from it and the study date (their
sex was never kept: it stays NULL, which the page shows as unknown). Only columns and an index are added (``studies`` is not copied: SQLite's foreign
keys to it stay intact); the downgrade drops them in place.
"""
import json
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

BATCH = 500


def _cipher():
    from medai.platform.records.crypto import cipher

    return cipher()


def _age(born: str, on: str):
    try:
        b = datetime.strptime(born[:8], "%Y%m%d").date()
        d = datetime.strptime(on[:8], "%Y%m%d").date()
    except (TypeError, ValueError):
        return None
    years = d.year - b.year - ((d.month, d.day) < (b.month, b.day))
    return years if 0 <= years <= 150 else None


def _fill() -> None:
    bind = op.get_bind()
    t = sa.table(
        "studies",
        sa.column("id", sa.Integer()),
        sa.column("patient_key", sa.LargeBinary()),
        sa.column("patient_identity", sa.LargeBinary()),
        sa.column("study_date", sa.String()),
        sa.column("created_at", sa.DateTime()),
        sa.column("patient_age", sa.Integer()),
        sa.column("patient_birth_date", sa.Text()),
        sa.column("patient_hash", sa.String()),
    )
    c = None
    last = 0
    while True:
        rows = bind.execute(
            sa.select(t.c.id, t.c.patient_key, t.c.patient_identity, t.c.study_date,
                      t.c.created_at)
            .where(t.c.id > last, t.c.patient_key.is_not(None))
            .order_by(t.c.id).limit(BATCH)
        ).all()
        if not rows:
            return
        c = c or _cipher()
        for row_id, key, ident, day, created in rows:
            last = row_id
            try:
                pid = c.decrypt(key)
                known = json.loads(c.decrypt(ident)) if ident is not None else {}
            except Exception:  # a removed key: the study keeps no context (never a failure)
                continue
            values = {}
            if pid.strip():
                issuer = (known.get("issuer") or "").strip()
                values["patient_hash"] = c.pseudonym(
                    f"dicom-patient\x1f{issuer}\x1f{pid.strip()}"
                )
            born = known.get("birth_date") or ""
            if len(born) == 8 and born.isdigit():
                values["patient_birth_date"] = c.encrypt(born).decode("ascii")
                on = day or (created.strftime("%Y%m%d") if created else "")
                values["patient_age"] = _age(born, on)
            if values:
                bind.execute(t.update().where(t.c.id == row_id).values(values))


def upgrade() -> None:
    with op.batch_alter_table("studies", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("patient_sex", sa.String(length=1), nullable=True))
        batch_op.add_column(sa.Column("patient_age", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("patient_birth_date", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("patient_hash", sa.String(length=64), nullable=True))
    op.create_index("ix_studies_patient_hash", "studies", ["patient_hash"])
    _fill()


def downgrade() -> None:
    op.drop_index("ix_studies_patient_hash", table_name="studies")
    with op.batch_alter_table("studies", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("patient_hash")
        batch_op.drop_column("patient_birth_date")
        batch_op.drop_column("patient_age")
        batch_op.drop_column("patient_sex")
