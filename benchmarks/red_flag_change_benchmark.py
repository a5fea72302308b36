"""A rule-file change to the served red-flag engine, before and after in one run: the engine
folder before the change (``--before``, e.g. extracted with ``git archive``) and the bundled one,
both served (rules, e5 exemplars, classifier), on every development and blind set and the real
posts. Aggregates only, never a text of a blind set or a real post.

    git archive REV src/medai/triage/red_flags/data | tar -x -C /tmp/before
    python benchmarks/red_flag_change_benchmark.py \
        --before /tmp/before/src/medai/triage/red_flags/data \
        --out docs/benchmarks/red_flags/change.json \
        [--complaints ../shared/data/triage/complaints.csv]

Exact and cheap: a text whose lexicon concept hits are the same under both folders is read the
same way by every detector (the rules, the classifier's features and the e5 window all follow the
hits), so only the texts whose hits differ are run through both served engines; the others count
once, with the after engine, on the short sets (median at most 8 words, decided whole) and not at
all elsewhere (the counts there are the changes).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data" / "red_flags"


def hits(engine, text: str) -> set[tuple[str, int, int]]:
    from medai.triage.red_flags.rules import token_times
    from medai.triage.red_flags.tokens import tokenize
    from medai.triage.red_flags.words import using

    with using(engine.ruleset.words):
        tokens = tokenize(text)
        return {
            (h.concept, h.first, h.last) for h in engine.concepts.find(tokens, token_times(tokens))
        }


def compare(before, after, texts: list[str], whole: bool) -> dict:
    out = {"n": len(texts), "differ": 0, "fired_before_of_differ": 0, "fired_after_of_differ": 0}
    if whole:
        out.update(fired_before=0, fired_after=0)
    for text in texts:
        differ = hits(before, text) != hits(after, text)
        if differ:
            b, a = bool(before.check(text).flags), bool(after.check(text).flags)
            out["differ"] += 1
            out["fired_before_of_differ"] += b
            out["fired_after_of_differ"] += a
        elif whole:
            b = a = bool(after.check(text).flags)
        else:
            continue
        if whole:
            out["fired_before"] += b
            out["fired_after"] += a
    return out


def score_sets(data: Path, sets: str, compare) -> dict:
    """Every development and blind set under ``data`` (or the comma-separated ``sets``), its
    urgent and its ordinary texts each scored by ``compare(texts, whole)``; ``whole`` for a short
    set (median at most 8 words), decided text by text. Shared by the guard's benchmark."""
    from medai.triage.red_flags import learn

    wanted = set(filter(None, sets.split(",")))
    out: dict = {}
    for folder in ("development", "blind"):
        for name, rows in learn.read_sets(data / folder, scoring=True).items():
            if wanted and name not in wanted:
                continue
            short = statistics.median(len(r["text"].split()) for r in rows) <= 8
            entry = {
                kind: compare([r["text"] for r in rows if r["urgent"] == (kind == "urgent")], short)
                for kind in ("urgent", "ordinary")
            }
            entry.update(role=folder, short=short)
            out[name] = entry
            print(name, json.dumps(entry), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", required=True, help="the engine folder before the change")
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--complaints", default=None)
    ap.add_argument("--sets", default="", help="comma-separated set names (default: every set)")
    args = ap.parse_args()
    from medai.triage.red_flags import build_engine, learn

    before, after = build_engine(Path(args.before)), build_engine()
    result: dict = {
        "before": before.identity,
        "after": after.identity,
        "sets": score_sets(
            Path(args.data), args.sets, lambda texts, whole: compare(before, after, texts, whole)
        ),
    }
    if args.complaints:
        posts = [t for _, t in learn.read_real_posts(Path(args.complaints))]
        result["real_posts"] = compare(before, after, posts, False)
        print("real posts", json.dumps(result["real_posts"]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
