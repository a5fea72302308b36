"""Migration 0031: an AI result names the stored file it was read from
(``ai_results.source_sha256``). Results stored before it were sent to a PACS built from the
study's file as it is at the upgrade, so that is what they are filled with; the column goes
again on a downgrade. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from helpers.platform import database_url, migrator, use_home

T0 = datetime(2026, 11, 1, 9, 0)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_migration_fills_each_result_with_its_studys_file(kind, tmp_path):
    import sqlalchemy as sa
    from alembic import command

    from medai.platform.records.db import make_engine
    from medai.platform.records.sealed import seal_text

    use_home(tmp_path)
    with database_url(kind, tmp_path) as url:
        engine = make_engine(url)
        migrate = migrator(engine)
        migrate(command.upgrade, "0030")
        users = sa.table(
            "users",
            *(
                sa.column(c)
                for c in ("id", "username", "password_hash", "role", "active", "created_at")
            ),
        )
        columns = (
            "id",
            "task",
            "modality",
            "file_sha256",
            "file_size",
            "content_type",
            "language",
            "status",
            "urgent",
            "uploaded_by",
            "created_at",
            "updated_at",
        )
        studies = sa.table("studies", *(sa.column(c) for c in columns))
        results = sa.table(
            "ai_results",
            *(
                sa.column(c)
                for c in (
                    "id",
                    "study_id",
                    "kind",
                    "model_name",
                    "model_version",
                    "model_hash",
                    "reading",
                    "created_at",
                )
            ),
            sa.column("payload", sa.JSON()),
        )
        with engine.begin() as conn:
            conn.execute(
                users.insert().values(
                    id=1, username="u", password_hash="", role="admin", active=True, created_at=T0
                )
            )
            for sid, sha in ((1, "a" * 64), (2, "b" * 64)):
                conn.execute(
                    studies.insert().values(
                        id=sid,
                        task="mri",
                        modality="MR",
                        file_sha256=sha,
                        file_size=1,
                        content_type="application/dicom",
                        language="tr",
                        status="ai_drafted",
                        urgent=False,
                        uploaded_by=1,
                        created_at=T0,
                        updated_at=T0,
                    )
                )
            for rid, sid, reading in ((1, 1, "1:1"), (2, 1, "2:2"), (3, 2, "1:3")):
                conn.execute(
                    results.insert().values(
                        id=rid,
                        study_id=sid,
                        kind="imaging",
                        model_name="m",
                        model_version="1",
                        model_hash="h",
                        reading=reading,
                        created_at=T0,
                        payload=seal_text(json.dumps({"task": "mri"})),
                    )
                )
        migrate(command.upgrade, "0031")
        with engine.connect() as conn:
            filled = dict(conn.execute(sa.text("SELECT id, source_sha256 FROM ai_results")).all())
        assert filled == {1: "a" * 64, 2: "a" * 64, 3: "b" * 64}
        migrate(command.downgrade, "0030")
        with engine.connect() as conn:
            names = {c["name"] for c in sa.inspect(conn).get_columns("ai_results")}
        assert "source_sha256" not in names
        engine.dispose()
