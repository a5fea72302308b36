"""Red-flag benchmark: recall and false alarms of the three detectors, thresholds chosen on dev.

    python benchmarks/red_flag_benchmark.py [--complaints ../shared/data/triage/complaints.csv]
        [--ablations] [--out docs/benchmarks/red_flags]

1. Runs the rules and the e5 nearest-exemplar detector on the team-written development and test
   sets (data/red_flags/development and blind/, one author per set, none of whom saw the rules).
2. Scores every development text with a classifier that never saw its author's texts
   (leave-one-author-out), and chooses on the development sets only, together: the embedding
   threshold and margin and the classifier threshold with the highest recall of all three
   detectors whose false alarms stay within --max-false-alarms (learn.choose_operating_point).
3. Trains the classifier on every development set (as `make train-red-flag-classifier` does for
   the bundled one) and reports on each test set: recall per
   presentation (any flag raised), overall recall, the false-alarm rate per kind of ordinary
   complaint and which detector caught what, per set and per group of sets (long written
   Turkish, short Turkish, English: ``describe``). Aggregates only: a blind set's individual
   errors are counted, never written.
4. With --ablations, on the development sets: stemming strategies, negation and timing off
   (rules), and the classifier without concept features or without the real negatives (out of
   author; with the real complaints, also its own firing on their report quarter).
5. With --complaints: the training half of the real complaints joins the classifier's negatives
   (as in `make train-red-flag-classifier`); firing rate per flag on all of them and per part,
   a seeded random sample of 50 firings and 50 non-firings of the report quarter (never trained
   on) for a manual audit (ids only are committed; texts stay outside the repository), and the
   latency of the whole triage path.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from medai.core.metrics import latency_summary
from medai.triage.language import detect_language
from medai.triage.red_flags import build_engine, learn, load_rules
from medai.triage.red_flags.engine import (
    CACHE_NAME,
    RedFlagEngine,
    cache_embeddings,
    load_classifier,
)
from medai.triage.red_flags.exemplars import KnnSettings
from medai.triage.red_flags.schema import DATA_DIR

DATA = Path(__file__).resolve().parents[1] / "data" / "red_flags"
SHIPPED_CACHE = DATA_DIR / CACHE_NAME  # read, not rewritten: the exemplar bank is embedded once
USES = ("rules", "knn", "clf")
SHORT_WORDS = 8  # a set whose median text has at most this many words is a short-complaint set


def raw_outputs(engine: RedFlagEngine, rows: list[dict]) -> list[dict]:
    """Per text: flags the rules fire now, and the best embedding hit per flag."""
    out = []
    for r in rows:
        a = engine.analyse(r["text"])
        out.append(
            {
                "rules": {m.flag_id for m in a.matches if not m.past},
                "history": {m.flag_id for m in a.matches if m.past},
                "knn": [(h.flag_id, h.similarity, h.contrast_similarity) for h in a.knn],
                "clf": None,
                "n": len(a.tokens),
                "everyday": a.everyday,
            }
        )
    return out


def decide(raw: dict, op: dict, use: tuple[str, ...] = USES) -> set[str]:
    """Flags fired at operating point ``op`` (threshold, margin, classifier) by ``use``."""
    fired = set(raw["rules"]) if "rules" in use else set()
    if raw.get("everyday"):  # as the engine: the learned detectors do not decide (everyday.py)
        return fired
    if "knn" in use:  # as the engine: only the nearest passing flag is named
        passing = sorted(
            (s, f) for f, s, c in raw["knn"] if s >= op["threshold"] and s - c >= op["margin"]
        )
        fired |= {passing[-1][1]} if passing else set()
    short = op.get("short_tokens") is not None and raw["n"] <= op["short_tokens"]
    threshold = op.get("classifier_short" if short else "classifier", 2.0)
    if "clf" in use and raw["clf"] and raw["clf"][1] >= threshold:
        fired.add(raw["clf"][0])
    return fired


def score(rows, raws, op, use=USES) -> dict:
    fired = [bool(decide(x, op, use)) for x in raws]
    urgent = [f for r, f in zip(rows, fired, strict=True) if r["urgent"]]
    ordinary = [f for r, f in zip(rows, fired, strict=True) if not r["urgent"]]
    return {
        "recall": float(np.mean(urgent)),
        "false_alarm_rate": float(np.mean(ordinary)),
        "n_urgent": len(urgent),
        "n_ordinary": len(ordinary),
    }


def describe(rows: list[dict]) -> dict:
    """What kind of set this is: its language (as the triage result detects it) and length."""
    langs = Counter(detect_language(r["text"]).language for r in rows)
    words = sorted(len(r["text"].split()) for r in rows)
    language = langs.most_common(1)[0][0]
    return {
        "language": language,
        "language_detected": langs[language] / len(rows),
        "median_words": words[len(words) // 2],
        "short": words[len(words) // 2] <= SHORT_WORDS,
    }


def report(rows, raws, op) -> dict:
    """Aggregates only: a blind set's individual misses and false alarms are never written
    (data/red_flags/README.md), only how many there were."""
    per, expected = defaultdict(list), defaultdict(list)
    by_kind = defaultdict(list)
    caught_by = Counter()
    errors = Counter()
    for r, x in zip(rows, raws, strict=True):
        fired = decide(x, op)
        if r["urgent"]:
            per[r["presentation"]].append(bool(fired))
            expected[r["presentation"]].append(r["presentation"] in fired)
            who = [u for u in USES if decide(x, op, (u,))]
            caught_by["+".join(who) if who else "missed"] += 1
            errors["missed"] += not fired
        else:
            by_kind[r.get("kind", "ordinary")].append(bool(fired))
            errors["false_alarms"] += bool(fired)
    return {
        "recall_per_presentation": {k: float(np.mean(v)) for k, v in sorted(per.items())},
        "expected_flag_rate_per_presentation": {
            k: float(np.mean(v)) for k, v in sorted(expected.items())
        },
        "false_alarm_rate_per_kind": {k: float(np.mean(v)) for k, v in sorted(by_kind.items())},
        "urgent_caught_by": dict(caught_by),
        "error_counts": dict(errors),
        **describe(rows),
        **score(rows, raws, op),
        "by_detector": {
            "+".join(u): score(rows, raws, op, u)
            for u in (("rules",), ("knn",), ("clf",), ("rules", "knn"), ("rules", "clf"))
        },
    }


def real_complaints(
    engine: RedFlagEngine, posts: list[tuple[str, str]], out: Path, seed: int = 7
) -> dict:
    """Firing on every real complaint, and per part (learn.real_part): the classifier learned
    the training half as negatives, so the report quarter is the honest rate, and the audit
    sample is drawn from it."""
    per_flag, times = Counter(), []
    parts = defaultdict(lambda: {"n": 0, "fired": 0, "detectors": Counter()})
    fired_ids, quiet_ids = [], []
    for i, (rid, text) in enumerate(posts):
        t0 = time.perf_counter()
        rep = engine.check(text)
        times.append(time.perf_counter() - t0)
        name = learn.real_part(rid)
        part = parts[name]
        part["n"] += 1
        part["fired"] += bool(rep.flags)
        for fl in rep.flags:
            per_flag[fl.id] += 1
            part["detectors"]["+".join(fl.detectors)] += 1
        if name == "report":
            (fired_ids if rep.flags else quiet_ids).append(rid)
        if i % 2000 == 0:
            print(f"  real complaints {i}/{len(posts)}", flush=True)
    rng = random.Random(seed)
    sample = {
        "part": "report",
        "fired": rng.sample(fired_ids, min(50, len(fired_ids))),
        "not_fired": rng.sample(quiet_ids, min(50, len(quiet_ids))),
    }
    (out / "audit_sample_ids.json").write_text(json.dumps(sample, indent=1))
    n, fired = len(posts), sum(p["fired"] for p in parts.values())
    return {
        "n": n,
        "fired": fired,
        "firing_rate": fired / n,
        "parts": {
            k: {
                "n": p["n"],
                "fired": p["fired"],
                "firing_rate": p["fired"] / p["n"],
                "detectors": dict(p["detectors"]),
            }
            for k, p in sorted(parts.items())
        },
        "per_flag": {k: {"n": v, "rate": v / n} for k, v in per_flag.most_common()},
        "detectors": dict(sum((p["detectors"] for p in parts.values()), Counter())),
        "red_flag_latency": latency_summary(times),
    }


def triage_latency(texts: list[str]) -> dict:
    """The whole triage path (validation, model, both detectors) through the served predictor."""
    from medai.core import model_dir
    from medai.services.model_handles import model_folder

    predictor = model_dir.load(model_folder(None, "triage"))  # MEDAI_MODELS, else the bundled
    for t in texts[:5]:
        predictor.predict(t)
    times = []
    for t in texts:
        t0 = time.perf_counter()
        predictor.predict(t)
        times.append(time.perf_counter() - t0)
    return latency_summary(times)


def flatten(sets: dict[str, list[dict]]) -> list[dict]:
    return [r for rows in sets.values() for r in rows]


def out_of_author(trained: learn.Trained, jobs: int = 1, **kw) -> dict[str, np.ndarray]:
    """Out-of-author scores of a classifier variant, on the texts ``trained`` already read
    (``real=None``: without the real negatives)."""
    analysed, bank = trained.analysed, trained.bank
    kw.setdefault("real", trained.real)
    if kw.pop("no_concepts", False):

        def strip(f):
            return replace(
                f,
                words=" ".join(w for w in f.words.split() if not w.startswith(("c:", "p:"))),
            )

        analysed = {
            k: [learn.Analysed(strip(a.features), a.rules) for a in v] for k, v in analysed.items()
        }
        bank = [learn.Analysed(strip(a.features), a.rules) for a in bank]
    return learn.out_of_author_scores(
        analysed,
        trained.labels,
        bank,
        trained.bank_labels,
        progress=lambda m: print(" ", m, flush=True),
        jobs=jobs,
        **kw,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="docs/benchmarks/red_flags")
    ap.add_argument(
        "--data",
        default=str(DATA),
        help="folder with development/ and blind/ folders of "
        "<set>_urgent/ordinary.jsonl files and their datasheets",
    )
    ap.add_argument("--complaints", default=None)
    ap.add_argument(
        "--max-false-alarms",
        type=float,
        default=None,
        help="false-alarm budget of all detectors together on dev (the classifier "
        "scored out of author); default: the bundled classifier's, so the "
        "benchmark reports the served operating point",
    )
    ap.add_argument(
        "--max-chunks",
        type=int,
        default=1,
        help="windows embedded per text (latency ~30 ms each on 2 cores)",
    )
    ap.add_argument("--ablations", action="store_true", help="also run the dev ablations")
    ap.add_argument(
        "--jobs", type=int, default=1, help="held-out classifiers fitted at once (processes)"
    )
    ap.add_argument(
        "--latency-texts",
        type=int,
        default=0,
        help="time the whole triage path on this many test texts (a seeded sample; 0: all of them)",
    )
    ap.add_argument(
        "--compare-with",
        default=None,
        help="an older checkout (a folder with src/): its served engine and this "
        "one's are scored on the same sets and real posts, one after the other "
        "(red_flag_served.py), for a before/after table",
    )
    args = ap.parse_args()
    served = load_classifier()
    if args.max_false_alarms is None:
        args.max_false_alarms = float(served.params["max_false_alarms"]) if served else 0.05
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.data)
    dev_sets = learn.read_sets(data / "development")
    test_sets = learn.read_sets(data / "blind", scoring=True)  # scored, never trained on
    dev = flatten(dev_sets)
    posts = (
        learn.read_real_posts(Path(args.complaints))
        if args.complaints and Path(args.complaints).is_file()
        else []
    )
    ruleset = load_rules()
    from medai.settings import get_settings

    cache_dir = get_settings().storage.cache_dir
    engine = cache_embeddings(build_engine(classifier=False, cache_dir=cache_dir), cache_dir)
    engine = RedFlagEngine(
        ruleset,
        encoder=engine.knn.encoder,
        knn=KnnSettings(0.0, -1.0, args.max_chunks),
        cache_file=SHIPPED_CACHE,
    )
    print(
        f"== rules and neighbours on {len(dev_sets)} dev and {len(test_sets)} test sets", flush=True
    )
    raw_dev = raw_outputs(engine, dev)
    raw_test = {k: raw_outputs(engine, v) for k, v in test_sets.items()}
    print("== classifier out of author on dev", flush=True)
    knn = [[(s, s - c) for _f, s, c in x["knn"]] for x in raw_dev]
    trained = learn.train_with_choice(
        ruleset,
        dev_sets,
        knn,
        args.max_false_alarms,
        progress=lambda m: print(" ", m, flush=True),
        real_posts=[t for i, t in posts if learn.real_part(i) == "train"] or None,
        real_weight=float(
            (served.params.get("real_negatives") or {}).get("weight", learn.REAL_WEIGHT)
        )
        if served
        else learn.REAL_WEIGHT,
        jobs=args.jobs,
    )
    model, chosen = trained.model, trained.choice
    op = {
        "threshold": chosen["knn_threshold"],
        "margin": chosen["knn_margin"],
        "classifier": chosen["classifier"],
        "classifier_choice": chosen,
    }
    if "short" in chosen:  # short complaints have a threshold of their own
        op["classifier_short"] = chosen["short"]["threshold"]
        op["short_tokens"] = chosen["short"]["tokens"]
    dev_scores = np.concatenate([trained.out_of_author[k] for k in dev_sets])
    urgent = np.array([r["urgent"] for r in dev])
    others = np.array([bool(decide(x, op, ("rules", "knn"))) for x in raw_dev])
    # the out-of-author flag is not kept: dev reports use the score only through "any flag"
    for x, s in zip(raw_dev, dev_scores, strict=True):
        x["clf"] = ("?", float(s))
    print(
        f"chosen on dev: embedding {op['threshold']}/{op['margin']}, classifier {chosen}",
        flush=True,
    )
    op["same_as_served"] = bool(
        served
        and abs(served.threshold - chosen["classifier"]) < 1e-9
        and abs(served.short_threshold - op.get("classifier_short", chosen["classifier"])) < 1e-9
        and served.knn == {"threshold": chosen["knn_threshold"], "margin": chosen["knn_margin"]}
    )
    if not op["same_as_served"]:
        print(
            "warning: this operating point differs from the bundled classifier's "
            "(retrain it with make train-red-flag-classifier)",
            flush=True,
        )
    for name, rows in test_sets.items():
        feats = learn.analyse_rows(ruleset, [r["text"] for r in rows])
        for x, a in zip(raw_test[name], feats, strict=True):
            hit = model.score(a.features)
            x["clf"] = (hit.flag_id, hit.score)
    served_engine = build_engine(embeddings=True)  # the served engine's identity, as shipped
    print(
        f"served engine: {served_engine.identity['name']} "
        f"{served_engine.identity['version']} {served_engine.identity['content_hash']}",
        flush=True,
    )
    results: dict = {
        "engine": served_engine.identity,
        "chosen_on_dev": {**op, "dev_sets": {k: len(v) for k, v in dev_sets.items()}},
        "overlap_with_dev": overlap_with_dev(dev, test_sets),
        "dev": report(dev, raw_dev, op),
        "dev_per_set": per_set(dev_sets, raw_dev, op),
        "tests": {k: report(v, raw_test[k], op) for k, v in test_sets.items()},
    }
    if args.ablations:
        report_posts = [t for i, t in posts if learn.real_part(i) == "report"]
        results["dev_ablations"] = ablations(
            ruleset, dev, trained, urgent, others, args.max_false_alarms, report_posts, args.jobs
        )
    if posts:
        print("== real complaints", flush=True)
        engine = RedFlagEngine(
            ruleset,
            encoder=engine.knn.encoder,
            knn=KnnSettings(op["threshold"], op["margin"], args.max_chunks),
            cache_file=SHIPPED_CACHE,
            classifier=model,
        )
        results["real_complaints"] = real_complaints(engine, posts, out)
        save(out, results)  # the latency below loads the served predictor: keep what is done
        texts = [r["text"] for rows in test_sets.values() for r in rows]
        if 0 < args.latency_texts < len(texts):
            texts = random.Random(11).sample(texts, args.latency_texts)
        results["triage_latency_test_texts"] = {**triage_latency(texts), "texts": len(texts)}
    if args.compare_with:
        results["served_before_after"] = compare_served(
            Path(args.compare_with), data, args.complaints, [*test_sets, *dev_sets], out
        )
    save(out, results)
    for name, t in results["tests"].items():
        print(
            name,
            json.dumps(
                {
                    k: t[k]
                    for k in ("recall", "false_alarm_rate", "n_urgent", "n_ordinary", "language")
                }
            ),
        )


def compare_served(
    before: Path, data: Path, complaints: str | None, sets: list[str], out: Path
) -> dict:
    """The served engine of ``before`` (an older checkout) and of this checkout, each in its own
    process, on the same sets and real posts (aggregates only)."""
    import os
    import subprocess
    import sys

    script = Path(__file__).parent / "red_flag_served.py"
    result = {}
    for name, src in (("before", before / "src"), ("after", Path(__file__).parent.parent / "src")):
        print(f"== served engine, {name} ({src})", flush=True)
        target = out / f"served_{name}.json"
        cmd = [
            sys.executable,
            str(script),
            "--out",
            str(target),
            "--data",
            str(data),
            "--sets",
            ",".join(sets),
        ] + (["--complaints", complaints] if complaints else [])
        env = {**os.environ, "PYTHONPATH": str(src.resolve())}
        subprocess.run(cmd, check=True, env=env)
        result[name] = json.loads(target.read_text())
        result[name].get("real_complaints", {}).pop("fired_ids", None)
        target.unlink()
    return result


def save(out: Path, results: dict) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    (out / "results.md").write_text(markdown(results))


def overlap_with_dev(dev: list[dict], test_sets: dict[str, list[dict]]) -> dict:
    """How many texts of each blind set also stand, word for word (case and spacing aside), in a
    development set: short everyday complaints repeat across authors, and a copy is not blind."""
    seen = {" ".join(r["text"].lower().split()) for r in dev}
    return {
        name: sum(" ".join(r["text"].lower().split()) in seen for r in rows)
        for name, rows in test_sets.items()
    }


def per_set(sets: dict[str, list[dict]], raws: list[dict], op: dict) -> dict:
    out, start = {}, 0
    for name, rows in sets.items():
        out[name] = score(rows, raws[start : start + len(rows)], op)
        start += len(rows)
    return out


def ablations(
    ruleset,
    dev,
    trained: learn.Trained,
    urgent,
    others,
    budget,
    report_posts: list[str],
    jobs: int = 1,
) -> dict:
    """Rules-only variants (stemming, negation, timing) and classifier variants (out of author,
    each at its own threshold chosen like the served one; with real posts, also how often the
    variant trained on every dev set fires alone on the report quarter of them)."""
    out = {}
    for name, kw in {
        "suffix (default)": {},
        "snowball": {"matcher": "snowball"},
        "exact": {"matcher": "exact"},
        "no negation": {"negation": False},
        "no timing": {"timing": False},
        "no negation, no timing": {"negation": False, "timing": False},
    }.items():
        eng = RedFlagEngine(ruleset, **kw)
        t0 = time.perf_counter()
        raws = raw_outputs(eng, dev)
        ms = (time.perf_counter() - t0) / len(dev) * 1000
        out[f"rules: {name}"] = {**score(dev, raws, {}, ("rules",)), "ms_per_text": ms}
    variants = {"classifier: no concept features": {"no_concepts": True}}
    if trained.real:
        variants = {
            "classifier: served (real negatives)": {},
            "classifier: without real negatives": {"real": None},
            **variants,
        }
    report = learn.analyse_rows(ruleset, report_posts) if report_posts else []
    # the served rule: idiom rows are learned from, not counted (learn.TRAIN_ONLY_KINDS)
    counted = learn.in_budget(dev)
    for name, kw in variants.items():
        oof = out_of_author(trained, jobs, **kw) if kw else trained.out_of_author  # served: reuse
        s = np.concatenate([oof[k] for k in trained.analysed])
        out[name] = learn.choose_threshold(urgent, others, s, budget, counted)
        if report and not kw.get("no_concepts"):
            model = (
                trained.model
                if not kw
                else learn.fit_final(  # served: already fitted
                    trained.analysed,
                    trained.labels,
                    trained.bank,
                    trained.bank_labels,
                    out[name]["threshold"],
                    real=kw.get("real", trained.real),
                )
            )
            p = model.probabilities([a.features for a in report])
            alone = (1 - p[:, model.labels.index(learn.NONE)] >= model.threshold) & ~np.array(
                [bool(a.rules) for a in report]
            )
            out[name]["real_report_classifier_alone_rate"] = float(alone.mean())
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


DETECTOR_NAMES = {"rules": "rules", "knn": "embedding", "clf": "classifier"}


def _who(key: str) -> str:
    return " + ".join(DETECTOR_NAMES.get(u, u) for u in key.split("+"))


def group_of(t: dict) -> str:
    if t["language"] != "tr":
        return "short English" if t["short"] else f"{t['language']}"
    return "short Turkish" if t["short"] else "written Turkish"


def group_totals(tests: dict) -> dict:
    """Recall and false alarms over every set of a group (counts, then rates)."""
    out: dict[str, dict] = {}
    for t in tests.values():
        g = out.setdefault(
            group_of(t), {"n_urgent": 0, "n_ordinary": 0, "caught": 0, "false_alarms": 0}
        )
        g["n_urgent"] += t["n_urgent"]
        g["n_ordinary"] += t["n_ordinary"]
        g["caught"] += round(t["recall"] * t["n_urgent"])
        g["false_alarms"] += round(t["false_alarm_rate"] * t["n_ordinary"])
    for g in out.values():
        g["recall"] = g["caught"] / max(1, g["n_urgent"])
        g["false_alarm_rate"] = g["false_alarms"] / max(1, g["n_ordinary"])
    return out


def markdown(r: dict) -> str:
    """The tables docs/benchmarks/red_flags.md quotes (regenerated by every run)."""
    c = r["chosen_on_dev"]
    cc = c["classifier_choice"]
    engine = r.get("engine") or {}
    lines = (
        [
            f"Engine `{engine.get('name')}` {engine.get('version')}, content hash "
            f"`{engine.get('content_hash')}`.",
            "",
        ]
        if engine
        else []
    )
    lines += [
        f"Embedding threshold {c['threshold']}, margin {c['margin']}; classifier threshold "
        f"{c['classifier']} (chosen on {len(c['dev_sets'])} dev sets, out of author: "
        f"recall {_pct(cc['recall'])}, false alarms {_pct(cc['false_alarm_rate'])}).",
        "",
    ]
    if "short" in cc:
        sc = cc["short"]
        lines[-2] += (
            f" Complaints of at most {sc['tokens']} words: threshold {sc['threshold']} "
            f"(chosen on the {sc['n']} short dev texts, out of author: recall "
            f"{_pct(sc['recall'])}, false alarms {_pct(sc['false_alarm_rate'])})."
        )
    lines += [
        "| test set | kind | language detected | urgent/ordinary | recall | false alarms "
        "| rules alone | classifier alone | lowest presentation |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, t in r["tests"].items():
        bd = t["by_detector"]
        lines.append(
            f"| `{name}` | {group_of(t)} | {_pct(t['language_detected'])} {t['language']} | "
            f"{t['n_urgent']}/{t['n_ordinary']} | {_pct(t['recall'])} | "
            f"{_pct(t['false_alarm_rate'])} | {_pct(bd['rules']['recall'])} / "
            f"{_pct(bd['rules']['false_alarm_rate'])} | {_pct(bd['clf']['recall'])} / "
            f"{_pct(bd['clf']['false_alarm_rate'])} | "
            f"{_pct(min(t['recall_per_presentation'].values()))} |"
        )
    for group, g in group_totals(r["tests"]).items():
        lines.append(
            f"| all {group} | | | {g['n_urgent']}/{g['n_ordinary']} | "
            f"{_pct(g['recall'])} ({g['caught']}) | {_pct(g['false_alarm_rate'])} "
            f"({g['false_alarms']}) | | | |"
        )
    lines.append("")
    for name, t in r["tests"].items():
        lines += [
            f"### Test set `{name}` ({t['n_urgent']} urgent, {t['n_ordinary']} ordinary)",
            "",
            "| detectors | urgent recall | false alarms (ordinary) |",
            "|---|---|---|",
            f"| all three (served) | {_pct(t['recall'])} | {_pct(t['false_alarm_rate'])} |",
        ]
        lines += [
            f"| {_who(k)} | {_pct(v['recall'])} | {_pct(v['false_alarm_rate'])} |"
            for k, v in t["by_detector"].items()
        ]
        lines += ["", "| presentation | recall (any flag) | its own flag |", "|---|---|---|"]
        for k, v in t["recall_per_presentation"].items():
            lines.append(
                f"| {k} | {_pct(v)} | {_pct(t['expected_flag_rate_per_presentation'][k])} |"
            )
        lines += ["", "| ordinary kind | false alarms |", "|---|---|"]
        lines += [f"| {k} | {_pct(v)} |" for k, v in t["false_alarm_rate_per_kind"].items()]
        lines += [
            "",
            "Urgent texts caught by: "
            + ", ".join(f"{_who(k)} {v}" for k, v in sorted(t["urgent_caught_by"].items()))
            + ".",
            "",
        ]
    ba = r.get("served_before_after")
    if ba:
        lines += [
            "### The served engine before and after this change (same run, same sets)",
            "",
            "| set | before: recall / false alarms | after: recall / false alarms |",
            "|---|---|---|",
        ]
        for name, b in ba["before"]["sets"].items():
            a = ba["after"]["sets"].get(name, {})
            lines.append(
                f"| `{name}` | {_pct(b['recall'])} / {_pct(b['false_alarm_rate'])} | "
                + (f"{_pct(a['recall'])} / {_pct(a['false_alarm_rate'])} |" if a else "– |")
            )
        if "real_complaints" in ba["before"]:
            b, a = ba["before"]["real_complaints"], ba["after"]["real_complaints"]
            lines.append(
                f"| real posts, {b['part']} quarter (fire) | {b['fired']} of {b['n']} "
                f"({_pct(b['firing_rate'])}) | {a['fired']} of {a['n']} "
                f"({_pct(a['firing_rate'])}) |"
            )
        lines.append("")
    lines += [
        "### Development sets (classifier scores out of author)",
        "",
        "| set | urgent recall | false alarms |",
        "|---|---|---|",
    ]
    lines += [
        f"| {k} | {_pct(v['recall'])} | {_pct(v['false_alarm_rate'])} |"
        for k, v in r["dev_per_set"].items()
    ]
    if r.get("dev_ablations"):
        lines += [
            "",
            "| dev ablation | recall | false alarms | ms/text or threshold |",
            "|---|---|---|---|",
        ]
        for k, v in r["dev_ablations"].items():
            extra = (
                f"{v['ms_per_text']:.1f} ms"
                if "ms_per_text" in v
                else f"threshold {v['threshold']}"
            )
            if "real_report_classifier_alone_rate" in v:
                extra += (
                    f"; alone on real posts (report part) "
                    f"{_pct(v['real_report_classifier_alone_rate'])}"
                )
            lines.append(f"| {k} | {_pct(v['recall'])} | {_pct(v['false_alarm_rate'])} | {extra} |")
    real = r.get("real_complaints")
    if real:
        lines += [
            "",
            f"Real complaints: {real['fired']} of {real['n']} fire "
            f"({_pct(real['firing_rate'])}); by detector: "
            + ", ".join(f"{k} {v}" for k, v in real["detectors"].items())
            + ".",
            "",
            "| flag | firings | rate |",
            "|---|---|---|",
        ]
        lines += [f"| {k} | {v['n']} | {_pct(v['rate'])} |" for k, v in real["per_flag"].items()]
        lines += [
            "",
            "| part (learn.real_part) | posts | fire | by detector |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {k} | {p['n']} | {_pct(p['firing_rate'])} | "
            + ", ".join(f"{d} {n}" for d, n in p["detectors"].items())
            + " |"
            for k, p in real.get("parts", {}).items()
        ]
        lat = r.get("triage_latency_test_texts", {"p50_ms": float("nan"), "p95_ms": float("nan")})
        lines += [
            "",
            f"Whole triage path on the test texts: p50 {lat['p50_ms']:.1f} ms, p95 "
            f"{lat['p95_ms']:.1f} ms; red flags alone on the real complaints: p50 "
            f"{real['red_flag_latency']['p50_ms']:.1f} ms.",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
