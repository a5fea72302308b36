"""Near-duplicate grouping with MinHash + locality-sensitive hashing (numpy, linear time).

Scraped Q&A data holds reposts and templated questions; if one copy lands in training and its
twin in the test split, the test score flatters the model. Texts whose character-shingle Jaccard
similarity reaches the threshold are put in one group, and splits keep groups whole.
"""

from __future__ import annotations

import re
import zlib
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

_MERSENNE = np.uint64((1 << 61) - 1)


def _shingles(text: str, k: int) -> np.ndarray:
    text = re.sub(r"\W+", " ", text.lower()).strip()
    if len(text) <= k:
        grams = {text}
    else:
        grams = {text[i : i + k] for i in range(len(text) - k + 1)}
    return np.fromiter((zlib.crc32(g.encode()) for g in grams), dtype=np.uint64, count=len(grams))


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def near_duplicate_groups(
    texts: Sequence[str],
    threshold: float = 0.8,
    shingle: int = 5,
    bands: int = 16,
    rows: int = 4,
    seed: int = 0,
) -> np.ndarray:
    """Group id per text (the smallest index in its group); singletons are their own group.

    LSH candidates are verified with the exact Jaccard similarity of the shingle sets, so the
    threshold is honoured exactly; LSH only decides which pairs are compared.
    """
    n = len(texts)
    rng = np.random.default_rng(seed)
    num_perm = bands * rows
    a = rng.integers(1, int(_MERSENNE), size=num_perm, dtype=np.uint64)
    b = rng.integers(0, int(_MERSENNE), size=num_perm, dtype=np.uint64)
    sets = [_shingles(t, shingle) for t in texts]
    buckets: dict[tuple[int, bytes], list[int]] = defaultdict(list)
    for i, sh in enumerate(sets):
        # multiply-shift hashing: wrap-around uint64 arithmetic is intended
        with np.errstate(over="ignore"):
            hashed = (a[:, None] * sh[None, :] + b[:, None]) >> np.uint64(32)
        sig = hashed.min(axis=1)
        for band in range(bands):
            buckets[(band, sig[band * rows : (band + 1) * rows].tobytes())].append(i)
    uf = _UnionFind(n)
    checked: set[tuple[int, int]] = set()
    py_sets: list[set[int] | None] = [None] * n
    for members in buckets.values():
        if len(members) < 2:
            continue
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                i, j = members[x], members[y]
                if (i, j) in checked or uf.find(i) == uf.find(j):
                    continue
                checked.add((i, j))
                si, sj = py_sets[i], py_sets[j]
                if si is None:
                    si = set(sets[i].tolist())
                if sj is None:
                    sj = set(sets[j].tolist())
                py_sets[i], py_sets[j] = si, sj
                inter = len(si & sj)
                if inter / (len(si) + len(sj) - inter) >= threshold:
                    uf.union(i, j)
    return np.array([uf.find(i) for i in range(n)], dtype=np.int64)
