"""The served red-flag engine as it is, scored on the written sets and the real posts: aggregates
only, never a text or an id, so a blind set stays blind.

    python benchmarks/red_flag_served.py --out served.json [--sets dev15,test14,...]
        [--complaints ../shared/data/triage/complaints.csv]

The main benchmark (red_flag_benchmark.py) retrains the classifier; this script loads the bundled
engine instead, so the same command run on an older checkout (``PYTHONPATH=<old>/src``) gives the
"before" column of a change, on the same sets and the same machine (`--compare-with` of the main
benchmark runs both). It uses only ``build_engine``, ``learn.read_sets``, ``learn.read_real_posts``
and ``learn.real_part``, which every version since the real negatives has.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data" / "red_flags"


def score_sets(engine, sets: dict[str, list[dict]]) -> dict:
    """Per set: recall, false alarms and their counts; urgent texts whose flags are all of
    the wrong presentation still count as caught (any flag sends the patient to emergency).
    Also aggregates by an ordinary row's ``kind`` (everyday, decoy, ...: where a set marks it)
    and the misses counted by presentation: counts only, never a text."""
    out = {}
    for name, rows in sets.items():
        fired = [bool(engine.check(r["text"]).flags) for r in rows]
        urgent = [f for f, r in zip(fired, rows, strict=True) if r["urgent"]]
        ordinary = [
            (f, str(r.get("kind") or "ordinary"))
            for f, r in zip(fired, rows, strict=True)
            if not r["urgent"]
        ]
        out[name] = {
            "n_urgent": len(urgent),
            "caught": sum(urgent),
            "recall": sum(urgent) / max(1, len(urgent)),
            "n_ordinary": len(ordinary),
            "false_alarms": sum(f for f, _ in ordinary),
            "false_alarm_rate": sum(f for f, _ in ordinary) / max(1, len(ordinary)),
            "ordinary_by_kind": dict(Counter(k for _, k in ordinary)),
            "false_alarms_by_kind": dict(Counter(k for f, k in ordinary if f)),
            "misses_by_presentation": dict(
                Counter(
                    str(r["presentation"])
                    for f, r in zip(fired, rows, strict=True)
                    if r["urgent"] and not f
                )
            ),
        }
        print(name, json.dumps(out[name]), flush=True)
    return out


def score_real(engine, posts: list[tuple[str, str]], part: str = "report") -> dict:
    """Firing on one part of the real posts; ``fired_ids`` (ids only) feeds an audit sample."""
    from medai.triage.red_flags import learn

    chosen = [(i, t) for i, t in posts if learn.real_part(i) == part]
    detectors: Counter = Counter()
    fired_ids = []
    for post_id, text in chosen:
        flags = engine.check(text).flags
        if flags:
            fired_ids.append(post_id)
        detectors.update("+".join(f.detectors) for f in flags)
    return {
        "part": part,
        "n": len(chosen),
        "fired": len(fired_ids),
        "firing_rate": len(fired_ids) / len(chosen),
        "detectors": dict(detectors),
        "fired_ids": fired_ids,
    }


def read_all(learn, root: Path) -> dict:
    """Every set under ``root``: its development/ and blind/ folders (data/red_flags), or the
    folder itself (an older layout); blind sets are read to be scored, never trained on."""
    folders = [f for f in (root / "development", root / "blind") if f.is_dir()] or [root]
    sets: dict = {}
    for folder in folders:
        try:
            sets.update(learn.read_sets(folder, scoring=True))
        except TypeError:  # an older checkout's read_sets
            sets.update(learn.read_sets(folder))
    return sets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--sets", default="", help="comma-separated set names (default: every set)")
    ap.add_argument("--complaints", default=None)
    args = ap.parse_args()
    from medai.triage.red_flags import build_engine, learn

    sets = read_all(learn, Path(args.data))
    if args.sets:
        wanted = args.sets.split(",")
        sets = {k: sets[k] for k in wanted if k in sets}
    engine = build_engine()
    if engine.knn:  # the same windows embedded once for every version compared (not served)
        from medai.core.embeddings import E5Encoder
        from medai.settings import get_settings

        engine.knn.encoder = E5Encoder(cache_dir=get_settings().storage.cache_dir / "red_flags")
    result = {
        "engine": {
            "detectors": engine.detectors,
            "classifier": dict(engine.classifier.identity) if engine.classifier else {},
        },
        "sets": score_sets(engine, sets),
    }
    if args.complaints and Path(args.complaints).is_file():
        result["real_complaints"] = score_real(engine, learn.read_real_posts(Path(args.complaints)))
        print(
            "real",
            json.dumps({k: v for k, v in result["real_complaints"].items() if k != "fired_ids"}),
            flush=True,
        )
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
