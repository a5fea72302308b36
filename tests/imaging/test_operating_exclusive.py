"""The exclusive (brain MRI) operating point is chosen for both coverage and answered accuracy."""

import numpy as np

from medai.core.task_registry import all_tasks
from medai.imaging.decision import decide_array
from medai.imaging.operating import MIN_COVERAGE, TARGET_ACCURACY, choose_exclusive

MRI = next(t for t in all_tasks("imaging") if t.name == "mri")
LABELS = list(MRI.labels)


def _images(groups: list[tuple[int, float, float, bool]], seed: int = 0):
    """(count, top-1 probability, runner-up probability, top-1 correct) groups → one-hot
    targets and probabilities (a wrong image's truth is its runner-up)."""
    rng = np.random.default_rng(seed)
    targets, probs = [], []
    for count, top, runner, right in groups:
        for _ in range(count):
            y = int(rng.integers(0, 4))
            first, second = (y, (y + 1) % 4) if right else ((y + 1) % 4, y)
            p = np.full(4, (1 - top - runner) / 2)
            p[first], p[second] = top, runner
            targets.append(np.eye(4)[y])
            probs.append(p)
    return np.array(targets), np.array(probs)


def test_both_constraints_reachable_chooses_a_point_meeting_both_with_room_to_spare():
    # every image answered: 96 % correct (both met, but at the edge of the accuracy target);
    # leaving out the four unsure images: 96 % answered, all correct — more room on both
    targets, probs = _images([(96, 0.97, 0.01, True), (4, 0.6, 0.3, False)])
    policy, rep = choose_exclusive(MRI, LABELS, targets, probs, n_boot=200)
    assert rep["met"] is True and rep["failed"] == []
    assert rep["validation_coverage"] >= MIN_COVERAGE
    assert rep["validation_answered_accuracy"] >= TARGET_ACCURACY
    # today's rule (the least abstaining point at >= 95 %) answered everything at 0.96
    assert rep["validation_coverage"] == 0.96 and rep["validation_answered_accuracy"] == 1.0
    for key in ("validation_coverage", "validation_answered_accuracy", "validation_accuracy"):
        lo, hi = rep[f"{key}_ci95"]
        assert lo <= rep[key] <= hi
    assert rep["min_coverage"] == MIN_COVERAGE and rep["target_accuracy"] == TARGET_ACCURACY
    # served through the decision: the four unsure images are undecided, naming both candidates
    undecided = [
        (d, t)
        for d, t in zip(decide_array(MRI, LABELS, probs, policy), targets, strict=True)
        if d.state == "indeterminate"
    ]
    assert len(undecided) == 4
    assert all(
        LABELS[int(t.argmax())] in d.candidates and len(d.candidates) == 2 for d, t in undecided
    )


def test_unreachable_constraints_are_recorded_not_met_and_say_which_failed():
    # 70 sure and right; 30 unsure, half of them wrong: 95 % answered accuracy needs leaving
    # out all 30 (coverage 0.70); answering >= 90 % means 85 % answered accuracy
    targets, probs = _images([(70, 0.97, 0.01, True), (15, 0.6, 0.3, True), (15, 0.6, 0.3, False)])
    policy, rep = choose_exclusive(MRI, LABELS, targets, probs, n_boot=200)
    assert rep["met"] is False
    assert rep["failed"] == ["answered_accuracy"]
    assert "not reachable" in rep["rule"]
    # documented fallback: the most accurate point that still answers >= 90 %
    assert rep["validation_coverage"] >= MIN_COVERAGE
    assert abs(rep["validation_answered_accuracy"] - 0.85) < 1e-9
    assert rep["frontier"] == {
        "max_coverage_at_target_accuracy": 0.7,
        "max_answered_accuracy_at_min_coverage": 0.85,
    }
    lo, hi = rep["validation_answered_accuracy_ci95"]
    assert lo <= 0.85 <= hi
    assert policy.min_confidence <= 0.6 and policy.min_margin <= 0.3
