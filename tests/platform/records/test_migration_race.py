"""Every process migrates on start (serve, Celery workers, the DICOM node): several started at
once on a fresh PostgreSQL database must all come up, one migrating while the others wait
(found by the PACS end-to-end benchmark: the losers died with a unique violation on
alembic_version)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers.platform import postgres_database

UPGRADE = (
    "import sys; from medai.platform.records.db import Database; "
    "Database(sys.argv[1]).upgrade(); print('ok')"
)

pytestmark = [pytest.mark.server]


def test_processes_migrating_a_fresh_postgres_database_at_once_all_start():
    with postgres_database() as url:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", UPGRADE, url],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        results = [p.communicate(timeout=240) + (p.returncode,) for p in procs]
        failed = [(rc, err.strip().splitlines()[-1:]) for out, err, rc in results if rc != 0]
        assert not failed, failed
        assert all(out.strip() == "ok" for out, _, _ in results)
        from sqlalchemy import create_engine, text

        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
        engine.dispose()
