"""The evaluation of a one-class task (brain MRI) reports each class as the decision gives it:
its per-label figures at a threshold of 0.0 read sensitivity 1.0 / specificity 0.0 for every
class, which said nothing of the model's answers."""

from __future__ import annotations

import numpy as np

from medai.imaging.evaluate import evaluate_arrays

LABELS = ["Glioma", "Meningioma", "Pituitary", "No_Tumor"]


def test_each_class_has_the_decisions_precision_recall_and_support():
    truth = [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5
    answer = [0] * 5 + [1] * 4 + [0] + [2] * 5 + [3] * 5  # one meningioma read as glioma
    targets = np.eye(4)[truth]
    probs = np.full((20, 4), 0.02)
    probs[np.arange(20), answer] = 0.94
    metrics = evaluate_arrays("mri", LABELS, targets, probs, dict.fromkeys(LABELS, 0.0), n_boot=0)
    per_class = metrics["per_class"]
    meningioma = per_class["Meningioma"]
    assert meningioma["precision"] == 1.0 and meningioma["recall"] == 0.8
    assert meningioma["support"] == 5
    assert per_class["Glioma"]["precision"] == 5 / 6 and per_class["Glioma"]["recall"] == 1.0
    assert per_class["No_Tumor"]["f1"] == 1.0
    assert "rows: the true class" in metrics["confusion_matrix_axes"]
    assert metrics["per_label"]["Glioma"]["calibration"]["ece"] is not None


def test_a_class_without_test_images_has_no_figures_rather_than_zeros():
    truth = [0] * 4 + [3] * 4  # no meningioma, no pituitary in this set
    targets = np.eye(4)[truth]
    probs = np.full((8, 4), 0.02)
    probs[np.arange(8), truth] = 0.94
    metrics = evaluate_arrays("mri", LABELS, targets, probs, dict.fromkeys(LABELS, 0.0), n_boot=0)
    assert metrics["accuracy"] == 1.0
    absent = metrics["per_class"]["Meningioma"]
    assert absent == {"precision": None, "recall": None, "f1": None, "support": 0}
    assert metrics["per_class"]["Glioma"]["f1"] == 1.0
