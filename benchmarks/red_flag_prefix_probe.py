"""Would reading a prefix form (``stem*``) only as a stem with Turkish suffixes cut the rules'
firings on real posts? (The prefix "sark*" reads "sarkomları" as a droop.) A probe: the rules
alone, lenient (served) and strict, on every development set (urgent texts flagged, ordinary
texts flagged) and on each part of the real posts. Aggregates only, no text.

    python benchmarks/red_flag_prefix_probe.py --complaints ../shared/data/triage/complaints.csv \
        --out docs/benchmarks/red_flags/prefix_probe_2026-11-25.json
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data" / "red_flags" / "development"


def count(engine, sets: dict, posts: list) -> dict:
    from medai.triage.red_flags import learn

    out: dict = {"dev_urgent_flagged": 0, "dev_ordinary_flagged": 0, "real_posts": {}}
    for rows in sets.values():
        for r in rows:
            if engine.check(r["text"]).flags:
                out["dev_urgent_flagged" if r["urgent"] else "dev_ordinary_flagged"] += 1
    fired, total = Counter(), Counter()
    for post_id, text in posts:
        part = learn.real_part(post_id)
        total[part] += 1
        fired[part] += bool(engine.check(text).flags)
    out["real_posts"] = {p: {"fire": fired[p], "posts": total[p]} for p in total}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--complaints", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    from medai.triage.red_flags import build_engine, learn
    from medai.triage.red_flags.rules import ConceptMatcher
    from medai.triage.red_flags.tokens import is_suffix_chain

    engine = build_engine(embeddings=False, classifier=False)
    sets = learn.read_sets(DATA)
    posts = learn.read_real_posts(Path(args.complaints))
    result = {"lenient": count(engine, sets, posts)}
    served = ConceptMatcher._token_matches

    def strict(self, pattern, token):
        if pattern.mode == "prefix":
            rest = token[len(pattern.stem) :]
            return token.startswith(pattern.stem) and (not rest or is_suffix_chain(rest))
        return served(self, pattern, token)

    ConceptMatcher._token_matches = strict
    try:
        result["strict"] = count(engine, sets, posts)
    finally:
        ConceptMatcher._token_matches = served
    result["dev_urgent"] = sum(r["urgent"] for rows in sets.values() for r in rows)
    result["dev_ordinary"] = sum(not r["urgent"] for rows in sets.values() for r in rows)
    print(json.dumps(result, indent=1))
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
