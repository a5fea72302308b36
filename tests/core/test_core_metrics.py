import numpy as np

from medai.core.metrics import auroc_with_ci, binary_at_threshold, youden_threshold


def test_auroc_ci_brackets_the_estimate():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    score = y * 0.6 + rng.normal(0, 0.5, 400)
    r = auroc_with_ci(y, score, n_boot=300)
    assert 0.7 < r["auroc"] < 0.9 and r["ci_low"] < r["auroc"] < r["ci_high"]
    assert auroc_with_ci(np.ones(5), np.ones(5))["auroc"] is None


def test_threshold_and_counts():
    y = np.array([0, 0, 0, 1, 1, 1])
    score = np.array([0.1, 0.2, 0.6, 0.55, 0.8, 0.9])
    t = youden_threshold(y, score)
    m = binary_at_threshold(y, score, t)
    assert m["tp"] + m["fn"] == 3 and m["tn"] + m["fp"] == 3
    assert m["sensitivity"] + m["specificity"] - 1 >= 2 / 3 - 1e-9
    perfect = binary_at_threshold(y, np.array([0, 0, 0, 1, 1, 1]), 0.5)
    assert perfect["f1"] == 1.0 and perfect["specificity"] == 1.0
