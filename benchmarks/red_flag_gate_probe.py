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


def record(engine, text: str):
    """The analysis of ``text`` and what a gate needs of it: its length, the classifier's
    urgent score on the whole text, whether it fires and whether the classifier is among the
    detectors that fire (shared with red_flag_window_probe.py)."""
    a = engine.analyse(text)
    flags = engine.decide(text, a).flags
    return a, {
        "n": len(a.tokens),
        "whole": a.classifier.score if a.classifier else 1.0,
        "fired": bool(flags),
        "classifier_fired": any("classifier" in f.detectors for f in flags),
    }


def kept(post: dict, floor: float, variant: str = "whole") -> bool:
    """Does the text still fire under a gate silencing a rules-only firing on a text over
    ``LONG`` words whose best score (the whole text's or ``variant``'s) is under ``floor``?"""
    if not post["fired"]:
        return False
    if post["classifier_fired"] or post["n"] <= LONG:
        return True
    return max(post["whole"], post.get(variant, 0.0)) >= floor


def silenced(
    posts: list[dict], verdicts: dict[str, str], floor: float, variant: str = "whole"
) -> dict[str, int]:
    """How many firings the audits judged urgent or unsure the gate would silence."""
    out = [
        verdicts[p["id"]]
        for p in posts
        if p["id"] in verdicts and p["fired"] and not kept(p, floor, variant)
    ]
    return {"urgent": out.count("urgent"), "unsure": out.count("unsure")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--complaints", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    from medai.triage.red_flags import build_engine, learn

    engine = build_engine(embeddings=False)
    posts = [
        {"id": post_id, "part": learn.real_part(post_id), **record(engine, text)[1]}
        for post_id, text in learn.read_real_posts(Path(args.complaints))
    ]
    verdicts = audited(AUDITS)
    rows = []
    for floor in FLOORS:
        row = {"floor": floor}
        for part in ("validation", "report"):
            chosen = [p for p in posts if p["part"] == part]
            row[f"{part}_firing_rate"] = sum(kept(p, floor) for p in chosen) / len(chosen)
        row["audited_silenced"] = silenced(posts, verdicts, floor)
        rows.append(row)
        print(json.dumps(row), flush=True)
    Path(args.out).write_text(
        json.dumps({"audited_urgent_or_unsure": len(verdicts), "floors": rows}, indent=1)
    )


if __name__ == "__main__":
    main()
