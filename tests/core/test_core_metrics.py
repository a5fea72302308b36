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


def test_calibration_bins_and_ece_say_how_far_probabilities_are_from_frequencies():
    from medai.core.metrics import binary_calibration

    # a score of 0.9 on images of which half have the label: 0.4 too sure
    y = np.array([1, 0] * 50)
    over = binary_calibration(y, np.full(100, 0.9))
    (only,) = over["bins"]
    assert abs(only["mean_score"] - 0.9) < 1e-9 and only["fraction_positive"] == 0.5
    assert only["n"] == 100
    assert abs(over["ece"] - 0.4) < 1e-9
    honest = binary_calibration(y, np.full(100, 0.5))
    assert honest["ece"] < 1e-9
    assert binary_calibration(np.array([]), np.array([]))["ece"] is None
    # a score of exactly 1.0 falls in the last bin, not past it
    assert binary_calibration(np.array([1]), np.array([1.0]))["bins"][0]["n"] == 1


def test_average_precision_rewards_ranking_the_rare_positives_first():
    from medai.core.metrics import average_precision

    y = np.array([0] * 18 + [1, 1])
    assert average_precision(y, np.arange(20) / 20) == 1.0  # positives scored highest
    assert average_precision(y, np.arange(20)[::-1] / 20) < 0.2
    assert average_precision(np.zeros(5), np.arange(5)) is None
