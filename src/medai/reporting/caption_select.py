"""Which caption to return, given the captions of similar images: and the baselines a
captioner must beat.

**Expected-overlap selection** (minimum Bayes risk): each of the k nearest indexed images gets a
weight ``softmax(similarity / temperature)``; every one of their captions is a candidate, and the
one returned has the highest expected ROUGE-L against the neighbours' captions, where a
neighbour sharing the candidate's own caption counts only ``self_credit`` (a new image's caption
is never in the index word for word). A high temperature tends to the best constant caption of
the neighbourhood; a low one with full self credit to the nearest neighbour's caption; both are
chosen on repeated splits of the training part by case, never by image.

Baselines, computed on the same split by ``baselines``: the best constant caption (the training
caption with the highest mean ROUGE-L against the training captions, returned for every image),
the nearest neighbour's caption, and the oracle ceiling (the training caption closest to each
reference — what retrieval from this index could at best reach).

ROUGE-L here is the LCS F-measure on the ImageCLEFmedical-normalised tokens
(``caption_metrics.preprocess``), computed with ``rapidfuzz`` so a whole matrix costs
milliseconds.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

TEMPERATURES = (0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0)
SELECTIONS = ("expected-overlap", "consensus")


def tokens(texts: Sequence[str]) -> list[list[str]]:
    from medai.reporting.caption_metrics import preprocess

    return [preprocess(t).split() for t in texts]


def rouge_l_matrix(a: Sequence[Sequence[str]], b: Sequence[Sequence[str]]) -> np.ndarray:
    """ROUGE-L F (LCS) between every token list of ``a`` and of ``b``."""
    from rapidfuzz.distance import LCSseq
    from rapidfuzz.process import cdist

    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    lcs = cdist([list(x) for x in a], [list(x) for x in b], scorer=LCSseq.similarity,
                workers=1).astype(np.float64)
    la = np.array([len(x) for x in a], dtype=np.float64)[:, None]
    lb = np.array([len(x) for x in b], dtype=np.float64)[None, :]
    return np.where(lcs > 0, 2 * lcs / np.maximum(la + lb, 1.0), 0.0)


def softmax_weights(sims: np.ndarray, temperature: float) -> np.ndarray:
    z = (np.asarray(sims, dtype=np.float64) - np.max(sims)) / max(temperature, 1e-6)
    w = np.exp(z)
    return w / w.sum()


def expected_overlap(captions: Sequence[str], sims: np.ndarray, temperature: float,
                     self_credit: float = 0.0, util: np.ndarray | None = None) -> int:
    """Index (into ``captions``) of the caption with the highest expected ROUGE-L against the
    neighbours' captions, weighted by image similarity. A neighbour sharing the candidate's
    caption counts ``self_credit`` instead of 1 (a new image's caption is never the indexed one
    word for word; 0 ignores it, 1 lets the nearest caption win at a low temperature)."""
    if len(captions) == 1:
        return 0
    keys = [c.lower() for c in captions]
    w = softmax_weights(sims, temperature)
    # a caption repeated under five images of one case is one piece of evidence, not five
    counts = {k: keys.count(k) for k in keys}
    w = w / np.array([counts[k] for k in keys])
    w = w / w.sum()
    if util is None:
        util = rouge_l_matrix(tokens(captions), tokens(captions))
    util = util.copy()
    util[np.array([[ki == kj for kj in keys] for ki in keys])] = self_credit
    return int(np.argmax(util @ w))


def _words(text: str) -> Counter:
    return Counter(re.findall(r"\w+", text.lower()))


def _overlap(a: Counter, b: Counter) -> float:
    common = sum((a & b).values())
    if not common:
        return 0.0
    p, r = common / sum(a.values()), common / sum(b.values())
    return 2 * p * r / (p + r)


def consensus(captions: Sequence[str], sims: np.ndarray) -> int:
    """The earlier selection (indexes saved without ``selection``): the caption most in word
    agreement with the other neighbours', similarity-weighted, its own group included."""
    if len(captions) == 1:
        return 0
    words = [_words(c) for c in captions]
    weights = np.maximum(sims, 0.0)
    scores = [sum(weights[j] * _overlap(words[i], words[j])
                  for j in range(len(captions)) if j != i) + 1e-3 * weights[i]
              for i in range(len(captions))]
    return int(np.argmax(scores))


def select(selection: str, captions: Sequence[str], sims: np.ndarray,
           temperature: float, self_credit: float = 0.0) -> int:
    if selection == "expected-overlap":
        return expected_overlap(captions, sims, temperature, self_credit)
    if selection == "consensus":
        return consensus(captions, sims)
    raise ValueError(f"unknown caption selection {selection!r}: one of {', '.join(SELECTIONS)}")


def scope_floor(features: np.ndarray, captions: Sequence[str], percentile: float = 5.0,
                groups: Sequence[str] | None = None) -> float | None:
    """The nearest-neighbour similarity below which a captioner abstains: the given percentile
    of what held-out images of the indexed kind reach (each image against the images of the
    *other* groups, as a new image would be). The 5th, not the 1st: held out by case, the
    lowest few in-domain similarities reach down to those of brain MRIs against a chest index,
    and quoting a chest case for a brain scan is worse than saying nothing 5 % of the time.
    None with fewer than two groups."""
    keys = np.array(list(groups) if groups is not None else [c.lower() for c in captions])
    if len(set(keys)) < 2:
        return None
    sims = features @ features.T
    sims[keys[:, None] == keys[None, :]] = -np.inf
    return float(np.percentile(sims.max(axis=1), percentile))


def best_constant(captions: Sequence[str]) -> str:
    """The training caption with the highest mean ROUGE-L against the training captions."""
    distinct = sorted(set(captions))
    util = rouge_l_matrix(tokens(distinct), tokens(captions))
    return distinct[int(np.argmax(util.mean(axis=1)))]


def baselines(train_captions: Sequence[str], train_features: np.ndarray,
              test_captions: Sequence[str], test_features: np.ndarray) -> dict[str, list[str]]:
    """Caption lists for the three reference systems on one split (same features as the
    captioner: the nearest neighbour uses them; the constant and the oracle do not)."""
    constant = best_constant(train_captions)
    nearest = np.argmax(test_features @ train_features.T, axis=1)
    distinct = sorted(set(train_captions))
    oracle = np.argmax(rouge_l_matrix(tokens(test_captions), tokens(distinct)), axis=1)
    return {"baseline: best constant caption": [constant] * len(test_captions),
            "baseline: nearest neighbour's caption": [train_captions[i] for i in nearest],
            "ceiling: oracle (best training caption per image)": [distinct[i] for i in oracle]}


SELF_CREDITS = (0.0, 0.2, 0.4, 1.0)


def repeated_group_splits(captions: Sequence[str], repeats: int, test_frac: float = 0.25,
                          seed: int = 13, groups: Sequence[str] | None = None
                          ) -> list[tuple[list[int], list[int]]]:
    """Random splits with every group on one side: ``groups`` (a case, e.g. its publication),
    else the caption text."""
    keys = list(groups) if groups is not None else [c.lower() for c in captions]
    groups = sorted(set(keys))
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(repeats):
        order = list(rng.permutation(len(groups)))
        held = {groups[g] for g in order[:max(1, round(len(groups) * test_frac))]}
        tr = [i for i, key in enumerate(keys) if key not in held]
        te = [i for i, key in enumerate(keys) if key in held]
        if tr and te and len({captions[i].lower() for i in tr}) > 1:
            out.append((tr, te))
    return out


def _grid_scores(features: np.ndarray, captions: Sequence[str], k: int,
                 splits: list[tuple[list[int], list[int]]], grid: list[tuple[float, float]]
                 ) -> np.ndarray:
    """Mean held-out ROUGE-L of each (temperature, self credit) on each split."""
    toks = tokens(captions)
    out = np.zeros((len(splits), len(grid)))
    for s, (tr, te) in enumerate(splits):
        sims = features[te] @ features[tr].T
        ref_util = rouge_l_matrix([toks[i] for i in te], [toks[i] for i in tr])
        for row in range(len(te)):
            top = np.argsort(-sims[row])[:k]
            caps = [captions[tr[j]] for j in top]
            util = rouge_l_matrix([toks[tr[j]] for j in top], [toks[tr[j]] for j in top])
            for g, (t, c) in enumerate(grid):
                pick = top[expected_overlap(caps, sims[row][top], t, c, util)]
                out[s, g] += ref_util[row, pick] / len(te)
    return out


def choose_selection(features: np.ndarray, captions: Sequence[str], k: int,
                     repeats: int = 10, seed: int = 13, groups: Sequence[str] | None = None
                     ) -> tuple[dict[str, float], dict]:
    """Temperature and self credit with the best mean ROUGE-L over repeated group splits of
    the given (training) pairs: never chosen by image."""
    grid = [(t, c) for t in TEMPERATURES for c in SELF_CREDITS]
    splits = repeated_group_splits(captions, repeats, seed=seed, groups=groups)
    if not splits:
        return {"temperature": 0.05, "self_credit": 0.2}, {}
    means = _grid_scores(features, captions, k, splits, grid).mean(axis=0)
    best = int(np.argmax(means))
    table = {f"t={t:g},self={c:g}": round(float(m), 4) for (t, c), m in zip(grid, means,
                                                                           strict=True)}
    return ({"temperature": grid[best][0], "self_credit": grid[best][1]},
            {"rouge_l": table, "splits": len(splits),
             "by": f"{len(splits)} repeated group splits of the training part"})


def nested_comparison(features: np.ndarray, captions: Sequence[str], k: int,
                      repeats: int = 20, inner: int = 5, seed: int = 29,
                      groups: Sequence[str] | None = None,
                      fixed: dict[str, float] | None = None) -> dict:
    """ROUGE-L of the selection against its baselines over repeated caption-group splits, the
    selection's settings chosen anew on each split's training side (nested: nothing is chosen
    on the images it is scored on). One split of ~30 pairs swings by several points; the mean
    over many, with the paired differences, says whether the method beats a baseline.

    The differences' CI is the corrected repeated-resampling t interval (Nadeau & Bengio,
    2003): the splits share most of their pairs, so their spread understates the uncertainty
    by a factor the ratio of test to training size corrects. ``fixed`` settings are used as
    given instead of being chosen on each split; each split's model also abstains below its
    own training part's scope floor (an abstention scores 0), as the saved one does."""
    from scipy import stats

    toks = tokens(captions)
    keys = list(groups) if groups is not None else [c.lower() for c in captions]
    ratios = []
    names = ("model", "constant", "nearest", "oracle", "consensus")
    per: dict[str, list[float]] = {n: [] for n in names}
    for tr, te in repeated_group_splits(captions, repeats, seed=seed, groups=groups):
        f_tr, c_tr = features[tr], [captions[i] for i in tr]
        g_tr = [keys[i] for i in tr]
        chosen = fixed or choose_selection(f_tr, c_tr, k, repeats=inner, seed=seed,
                                           groups=g_tr)[0]
        floor = scope_floor(f_tr, c_tr, groups=g_tr)
        ratios.append(len(te) / len(tr))
        util_te = rouge_l_matrix([toks[i] for i in te], [toks[i] for i in tr])
        sims = features[te] @ f_tr.T
        constant = c_tr.index(best_constant(c_tr))
        rows = {n: [] for n in names}
        for row in range(len(te)):
            top = np.argsort(-sims[row])[:k]
            pick = top[expected_overlap([c_tr[j] for j in top], sims[row][top],
                                        chosen["temperature"], chosen["self_credit"])]
            abstains = floor is not None and sims[row][top[0]] < floor
            rows["model"].append(0.0 if abstains else util_te[row, pick])
            rows["constant"].append(util_te[row, constant])
            rows["nearest"].append(util_te[row, int(np.argmax(sims[row]))])
            rows["oracle"].append(util_te[row].max())
            five = top[:5]  # the selection before this one: a word vote among 5 neighbours
            rows["consensus"].append(util_te[row, five[consensus([c_tr[j] for j in five],
                                                                  sims[row][five])]])
        for n in names:
            per[n].append(float(np.mean(rows[n])))
    arr = {n: np.array(v) for n, v in per.items()}
    out: dict = {"splits": len(arr["model"]), "repeats_inner": inner if not fixed else 0}
    if len(arr["model"]) < 2:
        return out  # too few groups to compare: the caller keeps its one-split table
    out["rouge_l_mean"] = {n: round(float(v.mean()), 4) for n, v in arr.items()}
    j = len(arr["model"])
    correction = 1.0 / j + float(np.mean(ratios))
    t = float(stats.t.ppf(0.975, j - 1))
    for n in ("constant", "nearest", "consensus"):
        diff = arr["model"] - arr[n]
        half = t * float(np.sqrt(correction * diff.var(ddof=1)))
        out[f"vs_{n}"] = {"mean_difference": round(float(diff.mean()), 4),
                          "ci95": [round(float(diff.mean() - half), 4),
                                   round(float(diff.mean() + half), 4)],
                          "splits_won": round(float((diff > 0).mean()), 3),
                          "interval": "corrected repeated-resampling t (Nadeau & Bengio)"}
    return out
