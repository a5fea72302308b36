"""Training the red-flag classifier, with its threshold chosen out of author.

Written complaints come as JSONL files named ``<set>_urgent.jsonl`` / ``<set>_ordinary.jsonl``,
one set per author (rows: ``text``, ``urgent``, ``presentation``). A classifier scored on the
texts of the author it learned from flatters itself, so the threshold is chosen on out-of-author
scores: for each set, a classifier trained on every other set (and the exemplar bank) scores it.
The threshold is the lowest that keeps the false alarms of all detectors together (rules, e5
neighbours, classifier) within the budget on those scores; the served classifier is then trained
on everything.

Real posts (a hospital's own complaints, unlabelled) can join as negatives: written complaints
do not sound like a forum, and a classifier that never read one fires on its register. Posts the
rules fire on are left out (that is where the real emergencies are), and a stable hash of each
post's id keeps a quarter of them for reports only (``real_part``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medai.core.errors import MedaiError
from medai.triage.red_flags.classifier import NONE, Features, RedFlagClassifier, features, train
from medai.triage.red_flags.rules import ConceptMatcher, evaluate, token_times
from medai.triage.red_flags.schema import RuleSet
from medai.triage.red_flags.tokens import tokenize
from medai.triage.red_flags.words import using

SET_FILE = re.compile(r"^(?P<set>[A-Za-z0-9-]+)_(?P<kind>urgent|ordinary)\.jsonl$")
THRESHOLDS = np.round(np.arange(0.20, 0.96, 0.01), 2)


class TrainingDataError(MedaiError, ValueError):
    """Training files that cannot be used as written."""

    code = "invalid"


BLIND = "blind"  # a folder, or a datasheet role: sets only ever scored, never trained on


def datasheet(directory: Path, name: str) -> dict | None:
    """``<set>.datasheet.json`` beside a set's files: who wrote it, what they saw, its role
    and how it moved between roles (data/red_flags/README.md)."""
    path = Path(directory) / f"{name}.datasheet.json"
    if not path.is_file():
        return None
    try:
        sheet = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TrainingDataError(f"{path}: not JSON ({exc.msg})") from None
    if not isinstance(sheet, dict) or sheet.get("set") != name:
        raise TrainingDataError(f"{path}: a datasheet must name its set ({name!r})")
    return sheet


def read_sets(directory: Path, prefix: str = "", scoring: bool = False) -> dict[str, list[dict]]:
    """Rows of every ``<set>_{urgent,ordinary}.jsonl`` in ``directory`` whose set name starts
    with ``prefix``, grouped by set (one author each). A blind set — in a ``blind`` folder, or
    whose datasheet says so — is refused unless ``scoring`` (a benchmark reads it; training
    never does)."""
    directory = Path(directory)
    sets: dict[str, list[dict]] = {}
    for path in sorted(directory.glob("*.jsonl")):
        m = SET_FILE.match(path.name)
        if not m or not m["set"].startswith(prefix):
            continue
        sheet = datasheet(directory, m["set"])
        if not scoring and (
            directory.resolve().name == BLIND or (sheet or {}).get("role") == BLIND
        ):
            raise TrainingDataError(
                f"{path}: set {m['set']!r} is blind — it is only ever scored, never trained "
                "on. To train on it, move it to the development folder and record the move "
                "in its datasheet (after a fresh blind set has been written)."
            )
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TrainingDataError(f"{path}:{n}: not JSON ({exc.msg})") from None
            if not isinstance(row.get("text"), str) or not row["text"].strip():
                raise TrainingDataError(f"{path}:{n}: needs a non-empty 'text'")
            if bool(row.get("urgent")) != (m["kind"] == "urgent"):
                raise TrainingDataError(f"{path}:{n}: 'urgent' disagrees with the file name")
            if row.get("urgent") and not row.get("presentation"):
                raise TrainingDataError(f"{path}:{n}: an urgent row needs its 'presentation'")
            sets.setdefault(m["set"], []).append(row)
    return sets


# Ordinary rows of these kinds are learned from but never counted against the false-alarm budget:
# an idiom set is written to be hard ("açlıktan bayılıyorum", "my boss will kill me" make up two
# thirds of its ordinary rows), so counting it lets the adversarial share of the data, not what a
# kiosk hears, set the threshold (the twelfth revision's retraining: 0.30 -> 0.39, blind recall
# lost). Chronic, past, negated and decoy rows are what people do write, and stay counted.
TRAIN_ONLY_KINDS = frozenset({"idiom"})
SHORT_TOKENS = 8  # a complaint of at most this many words is short (its own threshold)
REAL_PARTS = ("train", "train", "validation", "report")
REAL_WEIGHT = 0.25  # chosen on the validation part of the bundled data (docs/red-flag-rules.md)
MAX_REAL_POST_CHARS = 1 << 20  # one CSV field; a longer one is not a complaint


def real_part(post_id: str) -> str:
    """Which part of a real-post file a post belongs to, the same on every run and machine: half
    trains the classifier, a quarter chooses between training variants, and a quarter is only
    ever reported on (firing rate, audit)."""
    return REAL_PARTS[hashlib.sha256(post_id.encode("utf-8")).digest()[0] % len(REAL_PARTS)]


def read_real_posts(path: Path, max_bytes: int = 512 * 1024 * 1024) -> list[tuple[str, str]]:
    """(id, text) of every row of a CSV of real complaints: a ``text`` column and, optionally, an
    ``id`` column. Without an id a post is known by its text, so adding or re-sorting rows never
    moves a post from one part to another."""
    path = Path(path)
    try:
        if path.stat().st_size > max_bytes:
            raise TrainingDataError(f"{path}: over {max_bytes // 2**20} MiB")
        limit = csv.field_size_limit(MAX_REAL_POST_CHARS)
        try:
            with path.open(encoding="utf-8-sig", newline="") as f:  # -sig: Excel's BOM
                reader = csv.DictReader(f)
                if "text" not in (reader.fieldnames or []):
                    raise TrainingDataError(
                        f"{path}: needs a 'text' column "
                        f"(found: {', '.join(reader.fieldnames or [])})"
                    )
                return [
                    ((row.get("id") or "").strip() or "text:" + row["text"].strip(), row["text"])
                    for row in reader
                    if (row["text"] or "").strip()
                ]
        finally:
            csv.field_size_limit(limit)
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise TrainingDataError(
            f"{path}: not a readable UTF-8 CSV of complaints ({type(exc).__name__}: {exc})"
        ) from None


def label(row: dict) -> str:
    return str(row["presentation"]) if row.get("urgent") else NONE


@dataclass
class Analysed:
    """One text as the rules see it: the classifier's features and the flags the rules fire."""

    features: Features
    rules: frozenset[str]


def analyse_rows(ruleset: RuleSet, texts: list[str], matcher: str = "suffix") -> list[Analysed]:
    concepts = ConceptMatcher(ruleset.concepts, matcher)
    out = []
    with using(ruleset.words):
        for text in texts:
            tokens = tokenize(text)
            times = token_times(tokens)
            hits = concepts.find(tokens, times)
            fired = frozenset(m.flag_id for m in evaluate(ruleset, tokens, hits) if not m.past)
            out.append(Analysed(features(tokens, times, hits), fired))
    return out


def bank_rows(ruleset: RuleSet) -> list[dict]:
    """The exemplar bank (exemplars.yaml) as training rows."""
    rows = [
        {"text": t, "urgent": True, "presentation": f}
        for f, texts in ruleset.exemplars.items()
        for t in texts
    ]
    return rows + [{"text": t, "urgent": False, "presentation": None} for t in ruleset.contrast]


@dataclass
class RealNegatives:
    """Real posts the rules stay quiet on, as extra "none" rows of every classifier fitted."""

    analysed: list[Analysed]
    weight: float = REAL_WEIGHT  # together, this many times the written ordinary texts together

    @classmethod
    def read(cls, ruleset: RuleSet, texts: list[str], weight: float = REAL_WEIGHT) -> RealNegatives:
        return cls([a for a in analyse_rows(ruleset, texts) if not a.rules], weight)


def fit(
    rows: list[Analysed], ys: list[str], real: RealNegatives | None = None, **train_kw
) -> RedFlagClassifier:
    """A classifier on ``rows`` (and the real negatives, weighed as ``real.weight`` says). The
    vocabularies come from ``rows`` only: real posts are read through the written texts'
    n-grams, and none of theirs ends up in a saved model."""
    feats, ys, weight = [a.features for a in rows], list(ys), None
    train_kw["vocabulary_rows"] = len(feats)  # the real rows are appended after these
    if real and real.analysed and real.weight > 0:
        n_written = sum(y == NONE for y in ys)
        feats += [a.features for a in real.analysed]
        ys += [NONE] * len(real.analysed)
        weight = np.ones(len(ys))
        weight[-len(real.analysed) :] = real.weight * n_written / len(real.analysed)
    return train(feats, ys, sample_weight=weight, **train_kw)


def _held_out_scores(
    held: str,
    sets: dict[str, list[Analysed]],
    labels: dict[str, list[str]],
    bank: list[Analysed],
    bank_labels: list[str],
    real: RealNegatives | None,
    train_kw: dict,
) -> tuple[str, np.ndarray]:
    others = [o for o in sets if o != held]
    model = fit(
        bank + [a for o in others for a in sets[o]],
        bank_labels + [y for o in others for y in labels[o]],
        real,
        **train_kw,
    )
    p = model.probabilities([a.features for a in sets[held]])
    return held, 1.0 - p[:, model.labels.index(NONE)]


def out_of_author_scores(
    sets: dict[str, list[Analysed]],
    labels: dict[str, list[str]],
    bank: list[Analysed],
    bank_labels: list[str],
    progress: Callable[[str], None] = lambda _m: None,
    real: RealNegatives | None = None,
    jobs: int = 1,
    **train_kw,
) -> dict[str, np.ndarray]:
    """Urgent score of every text from a classifier that never saw its author's texts.
    ``jobs`` > 1 fits that many held-out classifiers at once (separate processes)."""
    from joblib import Parallel, delayed

    run = Parallel(n_jobs=jobs, return_as="generator_unordered")
    scores = {}
    for k, (held, s) in enumerate(
        run(
            delayed(_held_out_scores)(held, sets, labels, bank, bank_labels, real, train_kw)
            for held in sets
        )
    ):
        scores[held] = s
        progress(f"out-of-author scores {k + 1}/{len(sets)} ({held})")
    return {held: scores[held] for held in sets}  # the sets' order, whatever finished first


def counted(urgent: np.ndarray, budget: np.ndarray | None) -> np.ndarray:
    """The ordinary texts whose false alarms count against the budget: all of them, or those
    ``budget`` marks (``TRAIN_ONLY_KINDS`` are learned from, never counted)."""
    return ~urgent if budget is None else ~urgent & budget


def in_budget(rows: list[dict], kinds: frozenset[str] = TRAIN_ONLY_KINDS) -> np.ndarray:
    """Per row, whether it may count against the false-alarm budget (not of a left-out kind)."""
    return np.array([r.get("kind") not in kinds for r in rows])


def _uncounted(fired: np.ndarray, urgent: np.ndarray, budget: np.ndarray | None) -> dict:
    """How often the ordinary rows left out of the budget fire (what leaving them out trades)."""
    left_out = ~urgent & ~budget if budget is not None else np.zeros(len(urgent), bool)
    return (
        {
            "uncounted_false_alarm_rate": float(fired[left_out].mean()),
            "uncounted_rows": int(left_out.sum()),
        }
        if left_out.any()
        else {}
    )


def choose_threshold(
    urgent: np.ndarray,
    others_fire: np.ndarray,
    scores: np.ndarray,
    max_false_alarms: float,
    budget: np.ndarray | None = None,
) -> dict:
    """The lowest threshold whose union with the other detectors keeps false alarms within
    ``max_false_alarms``; ``others_fire`` says where the rules or neighbours already fire;
    ``budget`` which ordinary texts count (``counted``)."""
    best = None
    neg = counted(urgent, budget)
    for t in THRESHOLDS:
        fired = others_fire | (scores >= t)
        fa = float(fired[neg].mean())
        if fa <= max_false_alarms:
            best = {
                "threshold": float(t),
                "recall": float(fired[urgent].mean()),
                "false_alarm_rate": fa,
                "classifier_recall": float((scores >= t)[urgent].mean()),
                "classifier_false_alarm_rate": float((scores >= t)[neg].mean()),
                **_uncounted(fired, urgent, budget),
            }
            break
    if best is None:  # even the highest threshold is over budget: the others are, alone
        t = float(THRESHOLDS[-1])
        fired = others_fire | (scores >= t)
        best = {
            "threshold": t,
            "recall": float(fired[urgent].mean()),
            "false_alarm_rate": float(fired[neg].mean()),
            "over_budget": True,
        }
    return best


KNN_THRESHOLDS = np.round(np.arange(0.86, 0.9801, 0.0025), 4)
KNN_MARGINS = np.round(np.arange(-0.01, 0.0401, 0.0025), 4)


def choose_operating_point(
    urgent: np.ndarray,
    rules: np.ndarray,
    knn: list[list[tuple[float, float]]] | None,
    scores: np.ndarray,
    max_false_alarms: float,
    budget: np.ndarray | None = None,
) -> dict:
    """The embedding threshold/margin and the classifier threshold together: the highest recall
    of all detectors whose false alarms stay within ``max_false_alarms`` (ties: fewer false
    alarms, then the stricter embedding). ``knn`` holds each text's (similarity, margin) per flag
    (None: no embedding detector); ``scores`` must be out of author."""
    grid = (
        [(float(t), float(m)) for t in KNN_THRESHOLDS for m in KNN_MARGINS]
        if knn
        else [(None, None)]
    )
    sims = [
        (np.array([s for s, _d in x] or [0.0]), np.array([d for _s, d in x] or [-1.0]))
        for x in (knn or [])
    ]
    best, neg = None, counted(urgent, budget)
    for t, m in grid:
        fires = (
            np.array([bool(((s >= t) & (d >= m)).any()) for s, d in sims])
            if knn
            else np.zeros(len(urgent), bool)
        )
        if fires[neg].mean() > max_false_alarms:
            continue
        choice = choose_threshold(urgent, rules | fires, scores, max_false_alarms, budget)
        if choice.get("over_budget"):
            continue
        key = (choice["recall"], -choice["false_alarm_rate"], t or 0, m or 0)
        if best is None or key > best[0]:
            best = (
                key,
                {
                    "classifier": choice["threshold"],
                    "knn_threshold": t,
                    "knn_margin": m,
                    **choice,
                    "embedding_only_recall": float(fires[urgent].mean()),
                    "embedding_only_false_alarm_rate": float(fires[neg].mean()),
                },
            )
    if best is None:
        raise TrainingDataError(
            f"the rules alone raise more than {max_false_alarms:.1%} "
            "false alarms on these texts: no threshold can meet the budget"
        )
    return best[1]


def choose_with_short(
    urgent: np.ndarray,
    rules: np.ndarray,
    knn: list[list[tuple[float, float]]] | None,
    scores: np.ndarray,
    short: np.ndarray,
    max_false_alarms: float,
    budget: np.ndarray | None = None,
) -> dict:
    """The operating point chosen on the longer texts (``choose_operating_point``), then a
    threshold of their own for the short ones, with the same budget on them alone.

    Every n-gram of a two-word complaint weighs more after normalisation than in a paragraph,
    so one threshold for both either calls 112 for "ateşim var" or misses long urgent texts.
    (With fewer than 50 short texts of each kind there is nothing to choose on: one threshold.)"""
    budget = np.ones(len(urgent), bool) if budget is None else budget
    neg = counted(urgent, budget)
    if min((short & urgent).sum(), (short & neg).sum()) < 50:
        return choose_operating_point(urgent, rules, knn, scores, max_false_alarms, budget)
    long_ = ~short
    choice = choose_operating_point(
        urgent[long_],
        rules[long_],
        [x for x, s in zip(knn, short, strict=True) if not s] if knn else None,
        scores[long_],
        max_false_alarms,
        budget[long_],
    )
    t, m = choice["knn_threshold"], choice["knn_margin"]
    knn_fires = (
        np.array([any(sim >= t and d >= m for sim, d in x) for x in knn])
        if knn
        else np.zeros(len(urgent), bool)
    )
    others = rules | knn_fires
    short_choice = choose_threshold(
        urgent[short], others[short], scores[short], max_false_alarms, budget[short]
    )
    fired = others | np.where(
        short, scores >= short_choice["threshold"], scores >= choice["classifier"]
    )
    return {
        **choice,
        "short": {**short_choice, "tokens": SHORT_TOKENS, "n": int(short.sum())},
        "all_texts": {
            "recall": float(fired[urgent].mean()),
            "false_alarm_rate": float(fired[neg].mean()),
            **_uncounted(fired, urgent, budget),
        },
    }


def fit_final(
    sets: dict[str, list[Analysed]],
    labels: dict[str, list[str]],
    bank: list[Analysed],
    bank_labels: list[str],
    threshold: float,
    knn: dict | None = None,
    real: RealNegatives | None = None,
    **train_kw,
) -> RedFlagClassifier:
    return fit(
        bank + [a for s in sets.values() for a in s],
        bank_labels + [y for s in sets for y in labels[s]],
        real,
        threshold=threshold,
        knn=knn,
        **train_kw,
    )


@dataclass
class Trained:
    model: RedFlagClassifier
    choice: dict  # the operating point chosen out of author (learn.choose_operating_point)
    out_of_author: dict[str, np.ndarray]  # per set: urgent scores from classifiers blind to it
    analysed: dict[str, list[Analysed]]  # the sets as the rules read them (reused by ablations)
    labels: dict[str, list[str]]
    bank: list[Analysed]  # the exemplar bank, read the same way
    bank_labels: list[str]
    real: RealNegatives | None = None


def train_with_choice(
    ruleset: RuleSet,
    sets: dict[str, list[dict]],
    knn: list[list[tuple[float, float]]] | None,
    max_false_alarms: float,
    progress: Callable[[str], None] = lambda _m: None,
    real_posts: list[str] | None = None,
    real_weight: float = REAL_WEIGHT,
    jobs: int = 1,
    train_only_kinds: frozenset[str] | None = None,
    **train_kw,
) -> Trained:
    """Out-of-author scores, the operating point chosen on them, and the classifier trained on
    every set with it. ``knn``: per row of the sets in order, (similarity, margin) per flag.
    ``real_posts``: real complaints to learn as negatives (pass their training part only:
    ``real_part``). ``jobs``: held-out classifiers fitted at once. Ordinary rows of a
    ``train_only_kinds`` kind (default ``TRAIN_ONLY_KINDS``; a kind named here must occur) are
    trained on but not counted in the budget."""
    if len(sets) < 2:
        raise TrainingDataError(
            "need at least two sets (authors) to choose a threshold out of "
            f"author; found {sorted(sets)}"
        )
    kinds = TRAIN_ONLY_KINDS if train_only_kinds is None else train_only_kinds
    rows_in_order = [r for k in sets for r in sets[k]]
    ordinary = np.array([not r.get("urgent") for r in rows_in_order])
    budget = in_budget(rows_in_order, kinds)
    found_kinds = {r.get("kind") for r in rows_in_order if not r.get("urgent")}
    if train_only_kinds and (unknown := sorted(train_only_kinds - found_kinds)):
        raise TrainingDataError(
            f"no ordinary row is of kind {', '.join(unknown)} (kinds here: "
            f"{', '.join(sorted(str(k) for k in found_kinds))})"
        )
    if not (ordinary & budget).any():
        raise TrainingDataError(
            "every ordinary row is of a kind left out of the budget "
            f"({', '.join(sorted(kinds))}): nothing to count false alarms on"
        )
    progress("reading the texts with the rules")
    analysed = {k: analyse_rows(ruleset, [r["text"] for r in v]) for k, v in sets.items()}
    labels = {k: [label(r) for r in v] for k, v in sets.items()}
    rows = bank_rows(ruleset)
    bank, bank_labels = analyse_rows(ruleset, [r["text"] for r in rows]), [label(r) for r in rows]
    real = None
    if real_posts and real_weight > 0:
        progress(f"reading {len(real_posts)} real posts with the rules")
        real = RealNegatives.read(ruleset, real_posts, real_weight)
    oof = out_of_author_scores(
        analysed, labels, bank, bank_labels, progress, real, jobs, **train_kw
    )
    urgent = np.array([y != NONE for k in sets for y in labels[k]])
    rules = np.array([bool(a.rules) for k in sets for a in analysed[k]])
    short = np.array(
        [len(a.features.token_forms) <= SHORT_TOKENS for k in sets for a in analysed[k]]
    )
    choice = choose_with_short(
        urgent, rules, knn, np.concatenate(list(oof.values())), short, max_false_alarms, budget
    )
    knn_point = (
        {"threshold": choice["knn_threshold"], "margin": choice["knn_margin"]} if knn else None
    )
    progress("training on every set")
    model = fit_final(
        analysed, labels, bank, bank_labels, choice["classifier"], knn_point, real, **train_kw
    )
    model.params["max_false_alarms"] = max_false_alarms
    model.params["budget_excludes"] = {
        "kinds": sorted(kinds),
        "rows": int((ordinary & ~budget).sum()),
    }
    if "short" in choice:
        model.params["short_tokens"] = SHORT_TOKENS
        model.params["short_threshold"] = choice["short"]["threshold"]
        model.short_tokens, model.short_threshold = SHORT_TOKENS, choice["short"]["threshold"]
    model.params["sets"] = {k: len(v) for k, v in sets.items()}
    if real:
        model.params["real_negatives"] = {
            "posts": len(real_posts or []),
            "used": len(real.analysed),
            "weight": real.weight,
        }
    return Trained(model, choice, oof, analysed, labels, bank, bank_labels, real)
