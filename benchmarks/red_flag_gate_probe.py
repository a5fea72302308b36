"""Would a classifier floor on rule firings halve the real-post firing rate, and what would it
silence? Aggregates only: firing rates per part of the real posts and, per floor, how many
firings the blind audits judged urgent or unsure it would silence (ids and verdicts come from
docs/benchmarks/red_flags/audit_judgements*.jsonl; no text is printed or written).

    python benchmarks/red_flag_gate_probe.py --complaints ../shared/data/triage/complaints.csv \
        --out docs/benchmarks/red_flags/gate_probe_2026-11-25.json

Rules and classifier of the bundled engine (e5 off: it fires on a handful of posts).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

AUDITS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "red_flags"
FLOORS = (0.0, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05)
LONG = 8  # a floor applies to texts over this many words (short ones have the everyday guard)


def audited(folder: Path) -> dict[str, str]:
    """Post id -> verdict, for every post an audit judged urgent or unsure."""
    out = {}
    for f in sorted(folder.glob("audit_judgements*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip() and (j := json.loads(line))["verdict"] != "not_urgent":
                out[j["id"]] = j["verdict"]
    return out


def fires(post: dict, floor: float) -> bool:
    if not post["fired"]:
        return False
    if post["classifier_fired"]:
        return True
    return not (post["n"] > LONG and post["score"] < floor)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--complaints", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    from medai.triage.red_flags import build_engine, learn

    engine = build_engine(embeddings=False)
    posts = []
    for post_id, text in learn.read_real_posts(Path(args.complaints)):
        a = engine.analyse(text)
        flags = engine.decide(text, a).flags
        posts.append({"id": post_id, "part": learn.real_part(post_id), "n": len(a.tokens),
                      "score": a.classifier.score if a.classifier else 1.0,
                      "fired": bool(flags),
                      "classifier_fired": any("classifier" in f.detectors for f in flags)})
    verdicts = audited(AUDITS)
    rows = []
    for floor in FLOORS:
        row = {"floor": floor}
        for part in ("validation", "report"):
            chosen = [p for p in posts if p["part"] == part]
            row[f"{part}_firing_rate"] = sum(fires(p, floor) for p in chosen) / len(chosen)
        silenced = [verdicts[p["id"]] for p in posts
                    if p["id"] in verdicts and p["fired"] and not fires(p, floor)]
        row["audited_silenced"] = {"urgent": silenced.count("urgent"),
                                   "unsure": silenced.count("unsure")}
        rows.append(row)
        print(json.dumps(row), flush=True)
    Path(args.out).write_text(json.dumps({"audited_urgent_or_unsure": len(verdicts),
                                          "floors": rows}, indent=1))


if __name__ == "__main__":
    main()
