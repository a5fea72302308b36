"""What the everyday guard changes, before and after in one run: each text analysed once by the
served engine and decided with the guard off (the engine before it: the guard is the only
change) and on, on every development and blind set, the real posts and a grid of everyday
complaints. Aggregates only, never a text of a blind set or a real post.

    python benchmarks/everyday_guard_benchmark.py --out docs/benchmarks/red_flags/everyday.json \
        [--complaints ../shared/data/triage/complaints.csv] [--sets test20,test21]

Only a complaint the guard covers (at most ``everyday_max_words`` words, each an everyday word)
can change, and only from fired to not fired. Short sets (median at most 8 words) are decided
whole, so their rates before and after are exact; on long sets and the real posts only the
covered texts are analysed (every other text is decided by the same code either way).
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from red_flag_change_benchmark import score_sets

DATA = Path(__file__).resolve().parents[1] / "data" / "red_flags"

# A grid of everyday complaints a kiosk sees all day, alone and two together (465 texts): the
# development probe of the guard, written by the engineer (not blind), reported as such.
EVERYDAY = [
    "ateşim var",
    "başım ağrıyor",
    "midem bulanıyor",
    "kusuyorum",
    "öksürüyorum",
    "boğazım ağrıyor",
    "kulağım ağrıyor",
    "karnım ağrıyor",
    "ishalim var",
    "halsizim",
    "başım dönüyor",
    "burnum akıyor",
    "belim ağrıyor",
    "dişim ağrıyor",
    "gözüm kızardı",
    "kaşıntım var",
    "titriyorum",
    "terliyorum",
    "iştahım yok",
    "uykusuzluk",
    "nefesim kokuyor",
    "hapşırıyorum",
    "sesim kısıldı",
    "kas ağrım var",
    "eklemlerim ağrıyor",
    "çok yorgunum",
    "midem yanıyor",
    "gaz sancısı",
    "kabızım",
    "idrarda yanma",
]


def grid() -> list[str]:
    out = []
    for k in (1, 2):
        for combo in itertools.combinations(EVERYDAY, k):
            text = ", ".join(combo)
            out.append(text[0].upper() + text[1:])
    return out


def covered(engine, text: str) -> bool:
    from medai.triage.red_flags.everyday import everyday_only
    from medai.triage.red_flags.tokens import tokenize
    from medai.triage.red_flags.words import using

    with using(engine.ruleset.words):
        return everyday_only(tokenize(text))


def compare(engine, texts: list[str], whole: bool) -> dict:
    """Firing without and with the guard; ``whole``: every text, else only the covered ones."""
    out = {"n": len(texts), "covered": 0, "covered_fired_before": 0, "covered_fired_after": 0}
    if whole:
        out.update(fired_before=0, fired_after=0)
    for text in texts:
        is_covered = covered(engine, text)
        if not (whole or is_covered):
            continue
        a = engine.analyse(text)
        before = bool(engine.decide(text, a, everyday_guard=False).flags)
        after = bool(engine.decide(text, a).flags)
        out["covered"] += is_covered
        out["covered_fired_before"] += is_covered and before
        out["covered_fired_after"] += is_covered and after
        if whole:
            out["fired_before"] += before
            out["fired_after"] += after
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--complaints", default=None)
    ap.add_argument("--sets", default="", help="comma-separated set names (default: every set)")
    args = ap.parse_args()
    from medai.triage.red_flags import build_engine, learn

    engine = build_engine()
    result: dict = {
        "engine": engine.identity,
        "sets": score_sets(
            Path(args.data), args.sets, lambda texts, whole: compare(engine, texts, whole)
        ),
    }
    result["everyday_grid"] = compare(engine, grid(), True)
    print("everyday grid", json.dumps(result["everyday_grid"]), flush=True)
    if args.complaints:
        posts = [t for _, t in learn.read_real_posts(Path(args.complaints))]
        result["real_posts"] = compare(engine, posts, False)
        print("real posts", json.dumps(result["real_posts"]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
