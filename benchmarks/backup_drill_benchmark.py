"""Backup and restore drill timings (docs/benchmarks/backup-drill.md): a site of N studies,
each with a stored file of K KiB (random bytes: incompressible, like compressed pixel data), a
signed report and two audit events, made through the platform's own functions on SQLite or
PostgreSQL; then ``backup`` into a new folder and ``restore`` into an empty home and database
with the full check (every sealed value and every stored file decrypted). Prints one JSON line.

    .venv/bin/python benchmarks/backup_drill_benchmark.py 1000 --kib 256 --engine sqlite
    .venv/bin/python benchmarks/backup_drill_benchmark.py 1000 --kib 256 --engine postgresql

PostgreSQL: the local server (MEDAI_TEST_POSTGRES, default postgres@127.0.0.1, trust auth);
a throwaway database for the site and one for the restore, dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from medai.platform.dicom.arrival import Arrival

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _site(home: Path, url: str, n: int, kib: int) -> float:
    from medai.platform.access import accounts, audit
    from medai.platform.boot import open_platform
    from medai.platform.reading import review
    from medai.platform.worklist import filing
    from medai.services.model_handles import ModelHandles

    started = time.monotonic()
    p = open_platform(url, models=ModelHandles({}), adopt_models=False)
    with p.db.session() as db:
        rad = accounts.create_user(
            db, "rad", "correct-horse-1", "radiologist", hash_profile=p.settings.auth.password_hash
        )
    actor = audit.Actor("rad", rad.id, "radiologist")
    for start in range(0, n, 100):
        batch = range(start, min(n, start + 100))
        shas = [p.store.put_bytes(os.urandom(kib * 1024)) for _ in batch]
        with p.db.session() as db:
            user = db.merge(rad)
            for i, sha in enumerate(shas, start):
                study, _job = filing.create(
                    db,
                    Arrival(
                        sha=sha,
                        size=kib * 1024,
                        content_type="application/dicom",
                        task="cxr",
                        uploaded_by=user.id,
                        patient_ref=f"P-{i}",
                        question=f"öksürük {i}",
                    ),
                )
                db.flush()
                audit.record(db, actor, "upload", "study", study.id)
                review.sign(
                    db,
                    study,
                    0,
                    user,
                    sections={
                        "technique": "PA",
                        "findings": f"bulgu {i}",
                        "impression": f"sonuç {i}",
                        "recommendation": "",
                    },
                    destinations=p.settings.destinations(),
                )
                audit.record(db, actor, "sign", "study", study.id)
    p.db.dispose()
    return time.monotonic() - started


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int)
    parser.add_argument("--kib", type=int, default=256)
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    os.environ.setdefault("MEDAI_PASSWORD_HASH", "insecure-fast")
    os.environ.setdefault("MEDAI_PASSWORD_HASH_INSECURE_OK", "true")
    from helpers.platform import postgres_database, use_home
    from medai.platform.ops import backup as bk
    from medai.platform.ops.restore import restore
    from medai.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="medai-backup-bench-"))
    try:
        with ExitStack() as stack:
            home, target = tmp / "site", tmp / "restored"
            home.mkdir()
            target.mkdir()
            if args.engine == "sqlite":
                url, target_url = (
                    f"sqlite:///{home / 'medai.db'}",
                    f"sqlite:///{target / 'medai.db'}",
                )
            else:
                url = stack.enter_context(postgres_database())
                target_url = stack.enter_context(postgres_database())
            use_home(home)
            made_s = _site(home, url, args.n, args.kib)
            marks: dict[str, float] = {}

            def progress(phase: str, done: int, total: int) -> None:
                if total and done >= total:
                    marks[phase] = time.monotonic()

            t0 = time.monotonic()
            manifest = bk.backup(tmp / "backup", Settings(home=home, database_url=url), progress)
            backup_s = time.monotonic() - t0
            shutil.copy(home / "secret.key", target / "secret.key")
            t1 = time.monotonic()
            out = restore(tmp / "backup", Settings(home=target, database_url=target_url))
            restore_s = time.monotonic() - t1
            db_file = tmp / "backup" / manifest["database"]["file"]
            print(
                json.dumps(
                    {
                        "engine": args.engine,
                        "studies": args.n,
                        "file_kib": args.kib,
                        "make_site_s": round(made_s, 1),
                        "backup_s": round(backup_s, 2),
                        "backup_database_s": round(marks["database"] - t0, 2),
                        "backup_files_s": round(marks.get("files", t0) - marks["database"], 2),
                        "restore_s": round(restore_s, 2),
                        "backup_bytes": _size(tmp / "backup"),
                        "database_bytes": db_file.stat().st_size,
                        "files": manifest["counts"]["files"],
                        "signed_reports": manifest["counts"]["signed_reports"],
                        "audit_events": manifest["counts"]["audit_events"],
                        "checked": out["checked"],
                    }
                )
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
