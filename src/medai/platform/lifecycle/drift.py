"""The statistics monitoring compares a model's recent analyses with its reference by:
population stability index, two-sample Kolmogorov–Smirnov and chi-square tests, and Wilson
intervals for rates. Plain functions over lists of numbers or categories."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

EPS = 1e-4


def psi(
    reference: Sequence[float],
    current: Sequence[float],
    bins: int = 10,
    low: float = 0.0,
    high: float = 1.0,
) -> float:
    """Population stability index of ``current`` against ``reference`` on equal-width bins
    over [low, high] (≥ 0.25 is the usual "significant shift")."""

    def shares(values: Sequence[float]) -> list[float]:
        counts = [0] * bins
        for v in values:
            i = int((min(max(v, low), high) - low) / (high - low) * bins)
            counts[min(i, bins - 1)] += 1
        n = max(1, len(values))
        return [max(c / n, EPS) for c in counts]

    r, c = shares(reference), shares(current)
    return float(sum((ci - ri) * math.log(ci / ri) for ri, ci in zip(r, c, strict=True)))


def categorical_psi(reference: Sequence[str], current: Sequence[str]) -> float:
    keys = sorted(set(reference) | set(current))
    rn, cn = max(1, len(reference)), max(1, len(current))
    rc, cc = Counter(reference), Counter(current)
    total = 0.0
    for k in keys:
        ri, ci = max(rc[k] / rn, EPS), max(cc[k] / cn, EPS)
        total += (ci - ri) * math.log(ci / ri)
    return float(total)


def ks(reference: Sequence[float], current: Sequence[float]) -> tuple[float, float]:
    """(statistic, p-value) of the two-sample KS test (1.0 p when either side is empty)."""
    if not reference or not current:
        return 0.0, 1.0
    from scipy.stats import ks_2samp

    result = ks_2samp(list(reference), list(current))
    return float(result.statistic), float(result.pvalue)


def chi_square_p(reference: Sequence[str], current: Sequence[str]) -> float:
    """p-value that both samples come from one categorical distribution."""
    keys = sorted(set(reference) | set(current))
    if len(keys) < 2 or not reference or not current:
        return 1.0
    from scipy.stats import chi2_contingency

    rc, cc = Counter(reference), Counter(current)
    table = [[rc[k] for k in keys], [cc[k] for k in keys]]
    return float(chi2_contingency(table)[1])


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return float(s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2)


def wilson(
    successes: int, n: int, z: float = 1.96
) -> tuple[float | None, float | None, float | None]:
    """(rate, low, high): the rate with its 95 % Wilson interval; None without trials."""
    if n <= 0:
        return None, None, None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return round(p, 4), round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return float(s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))])


def hotelling(
    reference: Sequence[Sequence[float]], current: Sequence[Sequence[float]]
) -> tuple[float, float]:
    """(Mahalanobis distance between the means, p-value) of Hotelling's two-sample T² test
    on vectors (the model's whitened penultimate features): (0.0, 1.0) when either side is
    too small for the dimension."""
    import numpy as np
    from scipy.stats import f as f_dist

    r, c = np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64)
    if r.ndim != 2 or c.ndim != 2 or r.shape[1] != c.shape[1] or r.shape[1] == 0:
        return 0.0, 1.0
    n1, n2, k = len(r), len(c), r.shape[1]
    if n1 + n2 - k - 1 < 1 or n1 < 2 or n2 < 2:
        return 0.0, 1.0
    pooled = ((n1 - 1) * np.cov(r, rowvar=False) + (n2 - 1) * np.cov(c, rowvar=False)) / (
        n1 + n2 - 2
    )
    pooled = np.atleast_2d(pooled)
    scale = float(np.trace(pooled)) / k
    if scale <= 0:  # every vector alike on both sides
        return 0.0, 1.0
    pooled = pooled + 1e-6 * scale * np.eye(k)  # a ridge in the data's own units
    diff = r.mean(0) - c.mean(0)
    d2 = float(diff @ np.linalg.solve(pooled, diff))
    t2 = n1 * n2 / (n1 + n2) * d2
    stat = (n1 + n2 - k - 1) / (k * (n1 + n2 - 2)) * t2
    return math.sqrt(max(d2, 0.0)), float(f_dist.sf(stat, k, n1 + n2 - k - 1))
