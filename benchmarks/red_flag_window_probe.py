"""Would the classifier read a rule firing's own words better than the whole post? A probe:
per rule firing on a long text, the classifier's urgent score on the whole text and on the
words around each firing hit (a window of tokens, or the hit's sentence); per gate, the firing
rate of every part of the real posts, the audited urgent/unsure posts it would silence, and the
urgent texts of every development and blind set that would lose their last flag. Aggregates
and post ids only: no text is printed or written.

    python benchmarks/red_flag_window_probe.py --complaints ../shared/data/triage/complaints.csv \
        --out /tmp/window_probe.json

Rules and classifier of the bundled engine (e5 off, as in red_flag_gate_probe.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from red_flag_gate_probe import AUDITS, LONG, audited, kept, record, silenced

WINDOWS = (8, 10, 12)
FLOORS = (0.0, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12)
DATA = Path(__file__).resolve().parents[1] / "data" / "red_flags"


def scores(engine, text: str) -> dict:
    """Whether rules / the classifier fire on ``text`` and the classifier's scores on the
    whole text and around each rule hit (max over hits)."""
    from medai.triage.red_flags.tokens import span

    a, out = record(engine, text)
    if not out["fired"] or out["classifier_fired"] or out["n"] <= LONG:
        return out
    hits = [h for m in a.matches if not m.past for h in m.hits]
    toks = a.tokens

    def best(bounds) -> float:  # the highest score over the hits' spans
        return max(
            (engine.analyse(span(text, toks, *bounds(h))).classifier.score for h in hits),
            default=0.0,
        )

    def sentence(h) -> tuple[int, int]:
        idx = [
            i
            for i, t in enumerate(toks)
            if t.sentence in (toks[h.first].sentence, toks[h.last].sentence)
        ]
        return idx[0], idx[-1]

    for k in WINDOWS:
        out[f"w{k}"] = best(lambda h, k=k: (max(0, h.first - k), min(len(toks) - 1, h.last + k)))
    out["sentence"] = best(sentence)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--complaints", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument(
        "--posts-out",
        default=None,
        help="also write each post's id, part and scores (no text) here",
    )
    args = ap.parse_args()
    from medai.triage.red_flags import build_engine, learn

    engine = build_engine(embeddings=False)
    posts = [
        {"id": i, "part": learn.real_part(i), **scores(engine, t)}
        for i, t in learn.read_real_posts(Path(args.complaints))
    ]
    print("posts read", flush=True)
    if args.posts_out:
        Path(args.posts_out).write_text(json.dumps(posts))
    sets = {}
    for folder in ("development", "blind"):
        for name, rows in learn.read_sets(DATA / folder, scoring=True).items():
            sets[name] = [scores(engine, r["text"]) for r in rows if r["urgent"]]
    verdicts = audited(AUDITS)
    rows = []
    for variant in ("whole",) + tuple(f"w{k}" for k in WINDOWS) + ("sentence",):
        for floor in FLOORS:
            row = {"variant": variant, "floor": floor}
            for part in ("train", "validation", "report"):
                chosen = [p for p in posts if p["part"] == part]
                row[part] = round(sum(kept(p, floor, variant) for p in chosen) / len(chosen), 4)
            row["audited_silenced"] = silenced(posts, verdicts, floor, variant)
            row["urgent_lost"] = {
                name: lost
                for name, texts in sets.items()
                if (lost := sum(t["fired"] and not kept(t, floor, variant) for t in texts))
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    Path(args.out).write_text(
        json.dumps({"audited_urgent_or_unsure": len(verdicts), "gates": rows}, indent=1)
    )


if __name__ == "__main__":
    main()
