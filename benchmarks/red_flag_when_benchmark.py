"""Two red-flag engines (an older checkout's and this one) on the same texts in one run: what
a change to the reader of *when* (history, negation) does to urgent recall and false alarms on
every written set, the must-fire messages, the test texts and the real posts. Aggregates only,
never a text or an id, so a blind set stays blind.

    python benchmarks/red_flag_when_benchmark.py --before <old checkout>/src --out when.json \\
        [--complaints ../shared/data/triage/complaints.csv]

Reading every text with the whole engine (e5 windows, the classifier) takes minutes per
thousand real posts on two cores, so each engine first reads every text with its reader only
(tokens, times, concept hits, the tokens kept from the learned detectors): where both readers
agree, every detector sees the same input and decides the same. The whole engine then reads
the texts whose reading differs, in both versions, and the report quarter of the real posts in
this version (its rate before is the rate after, less the changed posts' decisions after, plus
their decisions before). With ``--check-unchanged N`` the older engine also reads N unchanged
report posts whole, as a check of that argument.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETS = ROOT / "data" / "red_flags"
MUST_FIRE = ROOT / "tests" / "data" / "red_flags_must_fire.tsv"
TEST_TEXTS = ROOT / "tests" / "data" / "red_flag_texts.jsonl"


def texts(complaints: Path | None) -> dict[str, dict]:
    """Every text, keyed ``<group>/<n>``: group (a set, ``must_fire``, ``test_texts``,
    ``real_<part>``), whether it is urgent (None for real posts) and its kind."""
    from medai.triage.red_flags import learn

    out: dict[str, dict] = {}
    for folder in (SETS / "development", SETS / "blind"):
        for name, rows in learn.read_sets(folder, scoring=True).items():
            for n, r in enumerate(rows):
                out[f"{name}/{n}"] = {
                    "text": r["text"],
                    "group": name,
                    "urgent": bool(r["urgent"]),
                    "kind": str(r.get("kind") or ("urgent" if r["urgent"] else "ordinary")),
                }
    with MUST_FIRE.open(encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t", 1) for line in f if not line.startswith("#")]
    for n, (_, text) in enumerate(r for r in rows if len(r) == 2):
        out[f"must_fire/{n}"] = {"text": text, "group": "must_fire", "urgent": True}
    with TEST_TEXTS.open(encoding="utf-8") as f:
        for n, line in enumerate(f):
            r = json.loads(line)
            out[f"test_texts/{n}"] = {
                "text": r["text"],
                "group": "test_texts",
                "urgent": r["urgent"],
            }
    if complaints and complaints.is_file():
        for post_id, text in learn.read_real_posts(complaints):
            part = learn.real_part(post_id)
            key = "real_" + part + "/" + hashlib.sha256(post_id.encode()).hexdigest()[:16]
            out[key] = {"text": text, "group": "real_" + part, "urgent": None}
    return out


def worker(args: argparse.Namespace) -> None:
    """Inside one engine's interpreter: ``read`` gives each text's reading signature,
    ``decide`` each chosen text's fired flag ids."""
    from medai.triage.red_flags import build_engine
    from medai.triage.red_flags.reading import quiet_tokens
    from medai.triage.red_flags.timing import token_times
    from medai.triage.red_flags.tokens import tokenize
    from medai.triage.red_flags.words import using

    engine = build_engine(embeddings=args.worker == "decide", classifier=args.worker == "decide")
    if engine.knn:  # the same windows embedded once for both versions
        from medai.core.embeddings import E5Encoder
        from medai.settings import get_settings

        engine.knn.encoder = E5Encoder(cache_dir=get_settings().storage.cache_dir / "red_flags")
    every = texts(Path(args.complaints) if args.complaints else None)
    keys = json.loads(Path(args.keys).read_text()) if args.keys else list(every)
    out = {}
    for key in keys:
        text = every[key]["text"]
        if args.worker == "decide":
            out[key] = sorted(f.id for f in engine.check(text).flags)
            continue
        with using(engine.ruleset.words):
            tokens = tokenize(text)
            times = token_times(tokens)
            hits = engine.concepts.find(tokens, times)
            quiet = quiet_tokens(tokens, times) if tokens else []
        sig = repr((times, [(h.concept, h.first, h.last, h.time, h.dated) for h in hits], quiet))
        out[key] = hashlib.sha256(sig.encode()).hexdigest()[:16]
    Path(args.out).write_text(json.dumps(out))


def _run(src: str | None, mode: str, args, keys: list[str] | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, __file__, "--worker", mode, "--out", str(out)]
        if args.complaints:
            cmd += ["--complaints", args.complaints]
        if keys is not None:
            (Path(tmp) / "keys.json").write_text(json.dumps(keys))
            cmd += ["--keys", str(Path(tmp) / "keys.json")]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        if src:
            env["PYTHONPATH"] = src
        subprocess.run(cmd, check=True, env=env)
        return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", help="src folder of the older checkout (PYTHONPATH)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--complaints", default=None)
    ap.add_argument("--check-unchanged", type=int, default=0)
    ap.add_argument("--worker", choices=("read", "decide"), help=argparse.SUPPRESS)
    ap.add_argument("--keys", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    every = texts(Path(args.complaints) if args.complaints else None)
    print(f"{len(every)} texts; reading with both readers", flush=True)
    before_sig, after_sig = _run(args.before, "read", args, None), _run(None, "read", args, None)
    changed = sorted(k for k in every if before_sig[k] != after_sig[k])
    report = [k for k in every if every[k]["group"] == "real_report"]
    print(f"{len(changed)} readings differ; deciding them (and the report quarter)", flush=True)
    before = _run(args.before, "decide", args, changed)
    unchanged_report = [k for k in report if k not in before]
    check = unchanged_report[: args.check_unchanged]
    if check:
        before.update(_run(args.before, "decide", args, check))
    after = _run(None, "decide", args, sorted(set(changed) | set(report)))
    result = summarise(every, changed, before, after, report, check)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["real_report"], indent=1))


def summarise(every, changed, before, after, report, check) -> dict:
    """Per group: urgent caught and ordinary fired, before and after; which flags each change
    lost or gained (flag ids and counts only); the real posts' report quarter."""
    groups: dict[str, Counter] = {}
    flags_lost: Counter = Counter()
    flags_gained: Counter = Counter()
    for key in changed:
        row, b, a = every[key], bool(before[key]), bool(after[key])
        g = groups.setdefault(row["group"], Counter())
        g["changed"] += 1
        g[f"fired_{'urgent' if row['urgent'] else 'other'}_before"] += b
        g[f"fired_{'urgent' if row['urgent'] else 'other'}_after"] += a
        flags_lost.update(set(before[key]) - set(after[key]))
        flags_gained.update(set(after[key]) - set(before[key]))
    sizes = Counter(r["group"] for r in every.values())
    urgent = Counter(r["group"] for r in every.values() if r["urgent"])
    fired_after = sum(bool(after[k]) for k in report)
    fired_before = (
        fired_after
        - sum(bool(after[k]) for k in report if k in changed)
        + sum(bool(before[k]) for k in report if k in changed)
    )
    agree = sum(before[k] == after[k] for k in check)
    return {
        "texts": len(every),
        "readings_changed": len(changed),
        "groups": {
            g: {"texts": sizes[g], "urgent": urgent[g], **dict(c)}
            for g, c in sorted(groups.items())
        },
        "urgent_lost": sum(1 for k in changed if every[k]["urgent"] and before[k] and not after[k]),
        "urgent_gained": sum(
            1 for k in changed if every[k]["urgent"] and after[k] and not before[k]
        ),
        "flags_lost": dict(flags_lost),
        "flags_gained": dict(flags_gained),
        "real_report": {
            "posts": len(report),
            "fired_before": fired_before,
            "fired_after": fired_after,
            "rate_before": round(fired_before / max(1, len(report)), 4),
            "rate_after": round(fired_after / max(1, len(report)), 4),
            "changed": sum(1 for k in report if k in changed),
            "unchanged_checked": len(check),
            "unchanged_agree": agree,
        },
    }


if __name__ == "__main__":
    csv.field_size_limit(1 << 24)
    main()
