"""Short complaints by department through the served triage path: for each complaint of a
department the model knows, answered right, answered wrong or referred; for each of another
department, confidently misrouted or referred; and how many of these ordinary complaints raise a
red flag (a false alarm: the set holds no emergency). Aggregates only.

    python benchmarks/short_complaints_benchmark.py \
        --data data/triage/short_departments_2026-11-26.csv
    PYTHONPATH=<older checkout>/src python benchmarks/short_complaints_benchmark.py --data ...

(the second line is the "before" column of a change, on the same machine)
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--model", type=Path, default=None, help="default: the bundled model")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    import medai
    from medai.core.model_dir import read_card
    from medai.triage.predict import load_predictor

    folder = args.model or Path(medai.__file__).parent / "assets" / "models" / "triage-default"
    predictor = load_predictor(folder, read_card(folder))
    known = set(predictor.labels)
    with args.data.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = {
        "model": folder.name,
        "known_departments": sorted(known),
        "known": {"n": 0, "right": 0, "wrong": 0, "referred": 0, "red_flag": 0},
        "other": {"n": 0, "misrouted": 0, "referred": 0, "red_flag": 0},
    }
    for row in rows:
        result = predictor.predict(row["text"])
        side = out["known" if row["department"] in known else "other"]
        side["n"] += 1
        if result.urgent:
            side["red_flag"] += 1
        elif result.abstained:
            side["referred"] += 1
        elif row["department"] in known:
            side["right" if result.departments[0].id == row["department"] else "wrong"] += 1
        else:
            side["misrouted"] += 1
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
