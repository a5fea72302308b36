"""Choosing the caption selection's settings, and judging it, on held-out *cases*.

Several images share one caption and one publication, so every split here keeps a case on one
side (``repeated_group_splits``). ``choose_selection`` picks the temperature, the self credit
and the image weight (``caption_select.shrunk_choice``) with the best mean ROUGE-L over
repeated splits of the training part; ``nested_comparison`` scores that whole procedure against
the baselines over repeated outer splits, choosing anew inside each (nothing is chosen on the
images it is scored on).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medai.reporting.captioning.caption_select import (
    IMAGE_WEIGHTS,
    SELF_CREDITS,
    TEMPERATURES,
    IndexedCaptions,
    consensus,
    rouge_l_matrix,
    scope_floor,
    tokens,
)

DEFAULT_SETTINGS = {"temperature": 0.05, "self_credit": 0.2, "image_weight": 1.0}


def repeated_group_splits(
    captions: Sequence[str],
    repeats: int,
    test_frac: float = 0.25,
    seed: int = 13,
    groups: Sequence[str] | None = None,
) -> list[tuple[list[int], list[int]]]:
    """Random splits with every group on one side: ``groups`` (a case, e.g. its publication),
    else the caption text."""
    keys = list(groups) if groups is not None else [c.lower() for c in captions]
    distinct = sorted(set(keys))
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(repeats):
        order = list(rng.permutation(len(distinct)))
        held = {distinct[g] for g in order[: max(1, round(len(distinct) * test_frac))]}
        tr = [i for i, key in enumerate(keys) if key not in held]
        te = [i for i, key in enumerate(keys) if key in held]
        if tr and te and len({captions[i].lower() for i in tr}) > 1:
            out.append((tr, te))
    return out


def _grid_scores(
    features: np.ndarray, captions: Sequence[str], k: int, splits: list[tuple[list[int], list[int]]]
) -> np.ndarray:
    """``[split, image weight, self credit, temperature]`` mean held-out ROUGE-L."""
    toks = tokens(captions)
    out = np.zeros((len(splits), len(IMAGE_WEIGHTS), len(SELF_CREDITS), len(TEMPERATURES)))
    for s, (tr, te) in enumerate(splits):
        side = IndexedCaptions([captions[i] for i in tr])
        sims = features[te] @ features[tr].T
        ref_util = rouge_l_matrix([toks[i] for i in te], side.toks)
        for row in range(len(te)):
            picks = side.choose(
                np.argsort(-sims[row])[:k], sims[row], TEMPERATURES, SELF_CREDITS, IMAGE_WEIGHTS
            )
            out[s] += ref_util[row, picks] / len(te)
    return out


def choose_selection(
    features: np.ndarray,
    captions: Sequence[str],
    k: int,
    repeats: int = 10,
    seed: int = 13,
    groups: Sequence[str] | None = None,
) -> tuple[dict[str, float], dict]:
    """Temperature, self credit and image weight with the best mean ROUGE-L over repeated
    group splits of the given (training) pairs: never chosen by image."""
    splits = repeated_group_splits(captions, repeats, seed=seed, groups=groups)
    if not splits:
        return dict(DEFAULT_SETTINGS), {}
    means = _grid_scores(features, captions, k, splits).mean(axis=0)
    a, c, t = np.unravel_index(int(np.argmax(means)), means.shape)
    # the best with the neighbours alone deciding (the selection before the image weight)
    c1, t1 = np.unravel_index(int(np.argmax(means[-1])), means[-1].shape)
    table = {
        f"w={w:g},self={sc:g},t={tt:g}": round(float(means[i, j, m]), 4)
        for i, w in enumerate(IMAGE_WEIGHTS)
        for j, sc in enumerate(SELF_CREDITS)
        for m, tt in enumerate(TEMPERATURES)
    }
    chosen = {
        "temperature": TEMPERATURES[t],
        "self_credit": SELF_CREDITS[c],
        "image_weight": IMAGE_WEIGHTS[a],
    }
    return chosen, {
        "rouge_l": table,
        "splits": len(splits),
        "by": f"{len(splits)} repeated group splits of the training part",
        "neighbours_only": {
            "temperature": TEMPERATURES[t1],
            "self_credit": SELF_CREDITS[c1],
            "image_weight": IMAGE_WEIGHTS[-1],
        },
    }


def nested_comparison(
    features: np.ndarray,
    captions: Sequence[str],
    k: int,
    repeats: int = 20,
    inner: int = 5,
    seed: int = 29,
    groups: Sequence[str] | None = None,
    fixed: dict[str, float] | None = None,
) -> dict:
    """ROUGE-L of the selection against its baselines over repeated caption-group splits, the
    selection's settings chosen anew on each split's training side. One split of ~30 pairs
    swings by several points; the mean over many, with the paired differences, says whether
    the method beats a baseline.

    The differences' CI is the corrected repeated-resampling t interval (Nadeau & Bengio,
    2003): the splits share most of their pairs, so their spread understates the uncertainty
    by a factor the ratio of test to training size corrects. ``fixed`` settings are used as
    given instead of being chosen on each split; each split's model also abstains below its
    own training part's scope floor (an abstention scores 0), as the saved one does; the
    images it answers are also compared on their own (``answered``)."""
    from scipy import stats

    fixed = dict(fixed or {})
    complete = set(DEFAULT_SETTINGS) <= set(fixed)
    toks = tokens(captions)
    keys = list(groups) if groups is not None else [c.lower() for c in captions]
    ratios, answered, scored = [], [], 0
    names = ("model", "neighbours_only", "constant", "nearest", "oracle", "consensus")
    per: dict[str, list[float]] = {n: [] for n in names}
    for tr, te in repeated_group_splits(captions, repeats, seed=seed, groups=groups):
        f_tr, c_tr = features[tr], [captions[i] for i in tr]
        g_tr = [keys[i] for i in tr]
        chosen, info = (
            ({**DEFAULT_SETTINGS, **fixed}, {})
            if complete
            else choose_selection(f_tr, c_tr, k, repeats=inner, seed=seed, groups=g_tr)
        )
        chosen = {**chosen, **fixed}
        alone = {**info.get("neighbours_only", chosen), **fixed}
        floor = scope_floor(f_tr, c_tr, groups=g_tr)
        side = IndexedCaptions(c_tr)
        ratios.append(len(te) / len(tr))
        util_te = rouge_l_matrix([toks[i] for i in te], side.toks)
        sims = features[te] @ f_tr.T
        constant = side.prior_top[0]  # the best constant caption (``best_constant``)
        rows: dict[str, list[float]] = {n: [] for n in names}
        scored += len(te)
        for row in range(len(te)):
            order = np.argsort(-sims[row])
            top = order[:k]
            pick, pick_alone = (
                int(
                    side.choose(
                        top,
                        sims[row],
                        (s["temperature"],),
                        (s["self_credit"],),
                        (s["image_weight"],),
                    )[0, 0, 0]
                )
                for s in (chosen, alone)
            )
            abstains = floor is not None and float(sims[row].max()) < floor
            rows["model"].append(0.0 if abstains else util_te[row, pick])
            rows["neighbours_only"].append(0.0 if abstains else util_te[row, pick_alone])
            if not abstains:
                answered.append((util_te[row, pick], util_te[row, constant]))
            rows["constant"].append(util_te[row, constant])
            rows["nearest"].append(util_te[row, int(np.argmax(sims[row]))])
            rows["oracle"].append(util_te[row].max())
            five = order[:5]  # the selection before: a word vote among 5
            rows["consensus"].append(
                util_te[row, five[consensus([c_tr[j] for j in five], sims[row][five])]]
            )
        for n in names:
            per[n].append(float(np.mean(rows[n])))
    arr = {n: np.array(v) for n, v in per.items()}
    out: dict = {
        "splits": len(arr["model"]),
        "repeats_inner": 0 if complete else inner,
        "held_fixed": fixed,
    }
    if len(arr["model"]) < 2:
        return out  # too few groups to compare: the caller keeps its one-split table
    out["rouge_l_mean"] = {n: round(float(v.mean()), 4) for n, v in arr.items()}
    if answered:
        pairs = np.array(answered)
        out["answered"] = {
            "images": len(pairs),
            "of": scored,
            "model": round(float(pairs[:, 0].mean()), 4),
            "constant": round(float(pairs[:, 1].mean()), 4),
        }
    j = len(arr["model"])
    correction = 1.0 / j + float(np.mean(ratios))
    t = float(stats.t.ppf(0.975, j - 1))
    for n in ("constant", "nearest", "consensus", "neighbours_only"):
        diff = arr["model"] - arr[n]
        half = t * float(np.sqrt(correction * diff.var(ddof=1)))
        out[f"vs_{n}"] = {
            "mean_difference": round(float(diff.mean()), 4),
            "ci95": [round(float(diff.mean() - half), 4), round(float(diff.mean() + half), 4)],
            "splits_won": round(float((diff > 0).mean()), 3),
            "interval": "corrected repeated-resampling t (Nadeau & Bengio)",
        }
    return out
