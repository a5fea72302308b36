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

ROUGE-L here is the LCS F-measure on the ``medai-v1``-normalised tokens
(``caption_metrics.preprocess``; the saved indexes were chosen with it, so it stays whatever
normalisation a run's scores use), computed with ``rapidfuzz`` so a whole matrix costs
milliseconds.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from medai.reporting.captioning.caption_metrics import preprocess

TEMPERATURES = (0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0)
SELF_CREDITS = (0.0, 0.2, 0.4, 1.0)
# how much the image's neighbours count against the whole index (1: only the neighbours;
# 0: the best constant caption): a shrinkage chosen on held-out cases like the rest
IMAGE_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
PRIOR_CANDIDATES = 5  # the index's best few constant captions, always candidates
PRIOR_SAMPLE = 2000  # references the whole-index score is estimated on (a ROCO-size index)
SELECTIONS = ("expected-overlap", "consensus")


def tokens(texts: Sequence[str]) -> list[list[str]]:

    return [preprocess(t).split() for t in texts]


def rouge_l_matrix(a: Sequence[Sequence[str]], b: Sequence[Sequence[str]]) -> np.ndarray:
    """ROUGE-L F (LCS) between every token list of ``a`` and of ``b``."""
    from rapidfuzz.distance import LCSseq
    from rapidfuzz.process import cdist

    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    lcs = cdist(
        [list(x) for x in a], [list(x) for x in b], scorer=LCSseq.similarity, workers=1
    ).astype(np.float64)
    la = np.array([len(x) for x in a], dtype=np.float64)[:, None]
    lb = np.array([len(x) for x in b], dtype=np.float64)[None, :]
    return np.where(lcs > 0, 2 * lcs / np.maximum(la + lb, 1.0), 0.0)


def softmax_weights(sims: np.ndarray, temperature: float) -> np.ndarray:
    z = (np.asarray(sims, dtype=np.float64) - np.max(sims)) / max(temperature, 1e-6)
    w = np.exp(z)
    return w / w.sum()


def candidate_scores(
    cand_keys: Sequence[str],
    neigh_keys: Sequence[str],
    util: np.ndarray,
    sims: np.ndarray,
    temperatures: Sequence[float],
    self_credits: Sequence[float],
) -> np.ndarray:
    """``[self credit, candidate, temperature]``: each candidate's expected ROUGE-L against
    the neighbours' captions (``util``: candidates × neighbours), the neighbours weighted by
    ``softmax(similarity / temperature)``. A caption repeated under five images of one case is
    one piece of evidence, not five; a neighbour sharing the candidate's own caption counts
    the self credit instead of 1 (a new image's caption is never the indexed one word for
    word: 0 ignores it, 1 lets the nearest caption win at a low temperature)."""
    counts = Counter(neigh_keys)
    share = np.array([counts[k] for k in neigh_keys], dtype=np.float64)
    w = np.stack([softmax_weights(sims, t) / share for t in temperatures], axis=1)
    w /= w.sum(axis=0, keepdims=True)
    same = np.array([[a == b for b in neigh_keys] for a in cand_keys], dtype=bool)
    return np.stack([np.where(same, c, util) @ w for c in self_credits])


def expected_overlap(
    captions: Sequence[str],
    sims: np.ndarray,
    temperature: float,
    self_credit: float = 0.0,
    util: np.ndarray | None = None,
) -> int:
    """Index (into ``captions``, the neighbours') of the caption with the highest expected
    ROUGE-L against the neighbours' captions (``candidate_scores``)."""
    if len(captions) == 1:
        return 0
    keys = [c.lower() for c in captions]
    if util is None:
        util = rouge_l_matrix(tokens(captions), tokens(captions))
    return int(
        np.argmax(candidate_scores(keys, keys, util, sims, (temperature,), (self_credit,))[0, :, 0])
    )


def index_prior(
    toks: Sequence[Sequence[str]], sample: int = PRIOR_SAMPLE, seed: int = 0
) -> np.ndarray:
    """Each indexed caption's mean ROUGE-L against the index's captions (a random ``sample``
    of them for a large index): what it would score as the one caption for every image. Its
    argmax is the best constant caption."""
    keys = [" ".join(t) for t in toks]
    distinct = sorted(set(keys))
    refs = list(range(len(toks)))
    if len(refs) > sample:
        refs = sorted(np.random.default_rng(seed).choice(len(refs), sample, replace=False))
    by_key = dict(
        zip(
            distinct,
            rouge_l_matrix([k.split() for k in distinct], [toks[i] for i in refs]).mean(axis=1),
            strict=True,
        )
    )
    return np.array([by_key[k] for k in keys])


def prior_candidates(
    prior: np.ndarray, keys: Sequence[str], m: int = PRIOR_CANDIDATES
) -> list[int]:
    """Indexes of the ``m`` distinct captions with the highest whole-index score (ties: the
    caption first in alphabetical order, so the choice never depends on the index order)."""
    out, seen = [], set()
    for i in sorted(range(len(keys)), key=lambda j: (-round(float(prior[j]), 12), keys[j])):
        if keys[i] not in seen:
            out.append(int(i))
            seen.add(keys[i])
        if len(out) == m:
            break
    return out


def shrunk_choice(
    top: np.ndarray,
    sims: np.ndarray,
    keys: Sequence[str],
    toks: Sequence[Sequence[str]],
    prior: np.ndarray,
    prior_top: Sequence[int],
    temperatures: Sequence[float],
    self_credits: Sequence[float],
    image_weights: Sequence[float],
) -> np.ndarray:
    """``[image weight, self credit, temperature]`` → the index entry chosen for one image:
    the candidate (the ``top`` neighbours' captions and the index's best constant captions)
    with the highest ``w·expected overlap with the neighbours + (1 − w)·whole-index score``.
    At w = 0 it is the best constant caption; at w = 1 the neighbours alone decide."""
    near = {keys[j] for j in top}
    cands = list(top) + [i for i in prior_top if keys[i] not in near]
    util = rouge_l_matrix([toks[i] for i in cands], [toks[j] for j in top])
    scores = candidate_scores(
        [keys[i] for i in cands], [keys[j] for j in top], util, sims, temperatures, self_credits
    )
    base = prior[cands][None, :, None]
    cands_arr = np.array(cands)
    return np.stack(
        [cands_arr[np.argmax(w * scores + (1 - w) * base, axis=1)] for w in image_weights]
    )


class IndexedCaptions:
    """An index's captions as the selection reads them: keys, tokens, each caption's
    whole-index score (``index_prior``, or a saved one) and its best constant captions."""

    def __init__(self, captions: Sequence[str], prior: np.ndarray | None = None) -> None:
        self.keys = [c.lower() for c in captions]
        self.toks = tokens(captions)
        self.prior = (
            np.asarray(prior, dtype=np.float64) if prior is not None else index_prior(self.toks)
        )
        if len(self.prior) != len(captions):
            raise ValueError("the caption index's prior needs one score per caption")
        self.prior_top = prior_candidates(self.prior, self.keys)

    def choose(
        self,
        top: np.ndarray,
        sims: np.ndarray,
        temperatures: Sequence[float],
        self_credits: Sequence[float],
        image_weights: Sequence[float],
    ) -> np.ndarray:
        """``shrunk_choice`` for one image: ``top`` its nearest entries, ``sims`` its
        similarity to every entry."""
        return shrunk_choice(
            top,
            sims[top],
            self.keys,
            self.toks,
            self.prior,
            self.prior_top,
            temperatures,
            self_credits,
            image_weights,
        )


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
    scores = [
        sum(weights[j] * _overlap(words[i], words[j]) for j in range(len(captions)) if j != i)
        + 1e-3 * weights[i]
        for i in range(len(captions))
    ]
    return int(np.argmax(scores))


def select(
    selection: str,
    captions: Sequence[str],
    sims: np.ndarray,
    temperature: float,
    self_credit: float = 0.0,
) -> int:
    if selection == "expected-overlap":
        return expected_overlap(captions, sims, temperature, self_credit)
    if selection == "consensus":
        return consensus(captions, sims)
    raise ValueError(f"unknown caption selection {selection!r}: one of {', '.join(SELECTIONS)}")


def scope_floor(
    features: np.ndarray,
    captions: Sequence[str],
    percentile: float = 5.0,
    groups: Sequence[str] | None = None,
) -> float | None:
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
    """The training caption with the highest mean ROUGE-L against the training captions (the
    one ``index_prior`` ranks first: one rule for the baseline and the captioner's fallback)."""
    keys = [c.lower() for c in captions]
    return captions[prior_candidates(index_prior(tokens(captions)), keys, 1)[0]]


def baselines(
    train_captions: Sequence[str],
    train_features: np.ndarray,
    test_captions: Sequence[str],
    test_features: np.ndarray,
) -> dict[str, list[str]]:
    """Caption lists for the three reference systems on one split (same features as the
    captioner: the nearest neighbour uses them; the constant and the oracle do not)."""
    constant = best_constant(train_captions)
    nearest = np.argmax(test_features @ train_features.T, axis=1)
    distinct = sorted(set(train_captions))
    oracle = np.argmax(rouge_l_matrix(tokens(test_captions), tokens(distinct)), axis=1)
    return {
        "baseline: best constant caption": [constant] * len(test_captions),
        "baseline: nearest neighbour's caption": [train_captions[i] for i in nearest],
        "ceiling: oracle (best training caption per image)": [distinct[i] for i in oracle],
    }
