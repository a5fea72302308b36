"""Reading-room benchmark (issue 59): the worklist a radiologist opens on a new install — what
it ranks first and what it says of each study — on real films through the bundled models, run
against whichever medai is on ``PYTHONPATH`` (the code before the change and after, one run).

    PYTHONPATH=<checkout>/src python benchmarks/reading_room_benchmark.py \
        --cxr ../shared/data/chest_xray/manifest.csv --mri ../shared/data/brain_mri/manifest.csv \
        --out docs/benchmarks/platform/reading-room-<label>.json

The day, as the issue found it: 10 chest films whose request says "nefes darlığı" (the first
four with no finding, three bacterial pneumonia, three COVID-19; seed 5), then 6 brain MRI
slices (three glioma, three with no tumour), uploaded in that order through the platform's own
upload route, analysed by the bundled ``cxr-default`` and ``mri-default`` as served (``triage-default``
reading the request), on an
embedded SQLite home. Recorded for each row of ``GET /api/v1/studies`` in its order: the
study's truth (the data set's label), whether it is marked urgent, and what the row says of the
AI (the ``reading`` object where the code has it). Summary: where the first glioma is ranked,
how many normal films rank above it, how many rows say ACİL.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "src" / "medai" / "assets" / "models"


def _films(cxr: Path, mri: Path, seed: int) -> list[tuple[str, Path, str, str]]:
    """(task, file, truth, question) in upload order."""
    rng = random.Random(seed)

    def pick(path: Path, label: str, n: int, frontal: bool) -> list[tuple[Path, str]]:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            rows = [
                r
                for r in csv.DictReader(fh)
                if r["label"] == label and (not frontal or r.get("view") in ("PA", "AP"))
            ]
        rng.shuffle(rows)
        return [(path.parent / r["file"], label) for r in rows[:n]]

    day = []
    for label, n in (("No Finding", 4), ("Pneumonia (bacterial)", 3), ("COVID-19", 3)):
        day += [("cxr", f, t, "nefes darlığı") for f, t in pick(cxr, label, n, True)]
    for label in ("Glioma", "No tumour"):
        day += [("mri", f, t, "") for f, t in pick(mri, label, 3, False)]
    return day


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cxr", type=Path, required=True)
    ap.add_argument("--mri", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="medai-reading-room-"))
    os.environ.update(
        MEDAI_HOME=str(home),
        MEDAI_STUDY_STABLE_S="0",
        MEDAI_PASSWORD_HASH="insecure-fast",
        MEDAI_PASSWORD_HASH_INSECURE_OK="true",
        MEDAI_TRUSTED_HOSTS='["localhost", "testserver"]',
    )
    sys.path.insert(0, str(ROOT / "tests"))
    from fastapi.testclient import TestClient

    import medai
    from helpers.platform import add_users, bearer, wait_status
    from medai.platform.app import create_platform_app

    app = create_platform_app(
        database_url=f"sqlite:///{home / 'medai.sqlite'}",
        job_threads=1,
        models={
            "triage": str(MODELS / "triage-default"),
            "cxr": str(MODELS / "cxr-default"),
            "mri": str(MODELS / "mri-default"),
        },
    )
    add_users(app, {"rad1": "radiologist"})
    day = _films(args.cxr, args.mri, args.seed)
    truth: dict[int, str] = {}
    with TestClient(app, base_url="http://localhost") as client:
        rad = bearer(client, "rad1")
        for task, path, label, question in day:
            r = client.post(
                "/api/v1/studies",
                headers=rad,
                data={"task": task, **({"question": question} if question else {})},
                files={"file": (path.name, path.read_bytes(), "image/png")},
            )
            assert r.status_code in (200, 201, 202), r.text
            sid = r.json()["id"]
            truth[sid] = label
            wait_status(client, rad, sid, {"ai_drafted", "refused", "failed"}, timeout=600)
        listed = client.get("/api/v1/studies", headers=rad, params={"limit": 50}).json()["items"]
    rows = []
    for n, s in enumerate(listed, 1):
        reading = s.get("reading") or {}
        ai = reading.get("ai") or {}
        rows.append(
            {
                "position": n,
                "id": s["id"],
                "task": s["task"],
                "truth": truth.get(s["id"]),
                "urgent": s.get("urgent"),
                "rank": reading.get("rank"),
                "ai_state": ai.get("state"),
                "ai_primary": ai.get("primary"),
                "ai_probability": ai.get("probability"),
                "ai_candidates": ai.get("candidates"),
                "request_red_flag": (reading.get("request") or {}).get("red_flag"),
            }
        )
    first_glioma = next((r["position"] for r in rows if r["truth"] == "Glioma"), None)
    summary = {
        "medai": getattr(medai, "__file__", ""),
        "studies": len(rows),
        "marked_urgent": sum(bool(r["urgent"]) for r in rows),
        "first_glioma_position": first_glioma,
        "normal_films_above_first_glioma": sum(
            r["truth"] == "No Finding" for r in rows[: (first_glioma or 1) - 1]
        ),
        "rows_saying_what_the_ai_found": sum(r["ai_state"] is not None for r in rows),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    for r in rows:
        print(
            f"{r['position']:>2} #{r['id']:<3} {r['task']:<4} truth={r['truth']:<22} "
            f"urgent={r['urgent']!s:<5} rank={r['rank']} ai={r['ai_state']} "
            f"{r['ai_primary'] or ''} {r['ai_candidates'] or ''}"
        )


if __name__ == "__main__":
    main()
