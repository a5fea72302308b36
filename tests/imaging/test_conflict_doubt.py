"""Conflicts only where there is doubt (issue 67, item 6).

Adult no-finding films read "Çelişki": No Finding 99.5 % beside COVID-19 13.5 %, just above its
8.9 % threshold, and the sign dialog then asked Var / Yok for four labels, two of them at
0.1 %. A normal label far ahead of a barely passing finding settles the film as normal
(``normal_lead``, chosen on validation for a stated cost); a close call stays undecided, and
only the labels in real doubt are questions for the signer."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from medai.core.task_registry import get as get_task
from medai.imaging import operating
from medai.imaging.decision import OperatingPolicy, decide, follow, questions, read
from medai.imaging.operating import choose_normal_lead, decision_cost, load_policy

CXR = get_task("cxr")
LABELS = ["Pneumonia", "COVID-19", "Viral_Pneumonia", "Bacterial_Pneumonia", "No Finding"]
# the bundled cxr-default's thresholds (operating_points.json)
THR = {
    "Pneumonia": 0.584,
    "COVID-19": 0.0892,
    "Viral_Pneumonia": 0.737,
    "Bacterial_Pneumonia": 0.41,
    "No Finding": 0.699,
}
# the film of the issue: normal by a wide margin, COVID-19 just over its low threshold
FAR = {
    "No Finding": 0.995,
    "COVID-19": 0.135,
    "Viral_Pneumonia": 0.001,
    "Pneumonia": 0.001,
    "Bacterial_Pneumonia": 0.001,
}
# a real close call (an adult normal film of the validation split): both well above
CLOSE = {
    "No Finding": 0.953,
    "COVID-19": 0.523,
    "Viral_Pneumonia": 0.001,
    "Pneumonia": 0.141,
    "Bacterial_Pneumonia": 0.001,
}


def test_a_normal_label_far_ahead_of_a_barely_passing_finding_reads_normal():
    d = decide(CXR, FAR, OperatingPolicy(thresholds=THR, normal_lead=2.0))
    assert d.state == "normal" and d.positives == ["No Finding"], d
    assert d.conflict == [] and d.candidates == []  # no "Çelişki" on any face
    covid = next(r for r in d.labels if r.label == "COVID-19")
    assert (covid.state, covid.basis) == ("absent", "outweighed")  # said, not hidden
    assert questions(d.labels) == []
    # without a lead (the policy before): the same film is a conflict, as the issue saw
    before = decide(CXR, FAR, OperatingPolicy(thresholds=THR))
    assert before.state == "indeterminate" and before.conflict == ["No Finding", "COVID-19"]


def test_a_close_call_stays_a_conflict_and_asks_only_the_labels_in_doubt():
    d = decide(CXR, CLOSE, OperatingPolicy(thresholds=THR, normal_lead=2.0))
    assert d.state == "indeterminate" and d.conflict == ["No Finding", "COVID-19"]
    # COVID-19's parents are undecided with it, but follow it: they are no question
    rows = {r.label: r for r in d.labels}
    assert rows["Viral_Pneumonia"].state == "indeterminate"
    assert rows["Viral_Pneumonia"].implied_by == "COVID-19"
    assert rows["Pneumonia"].implied_by == "COVID-19"
    assert questions(d.labels) == ["No Finding", "COVID-19"]
    # stored and read back (what the server asks from): the same questions
    stored = read({"task": "cxr", "decision": d.model_dump(mode="json")}, CXR)
    assert questions(stored.labels) == ["No Finding", "COVID-19"]
    assert questions([r.model_dump(mode="json") for r in d.labels]) == ["No Finding", "COVID-19"]


@pytest.mark.parametrize(
    "said, expected",
    [
        ({"COVID-19": True, "No Finding": False}, True),
        ({"COVID-19": False, "No Finding": True}, False),
        ({"No Finding": True}, None),  # COVID-19 not answered yet
    ],
)
def test_a_parent_that_follows_is_settled_by_the_answer_about_its_sub_finding(said, expected):
    d = decide(CXR, CLOSE, OperatingPolicy(thresholds=THR))
    assert follow(CXR, d.labels, said) == {"Viral_Pneumonia": expected, "Pneumonia": expected}


def test_a_label_far_from_its_threshold_is_never_asked():
    """Every undecided result's questions pass their own threshold (a conflict's sides) or are
    an exclusive task's candidates: a label at 0.1 % is never a question."""
    rng = np.random.default_rng(0)
    for _ in range(400):
        probs = dict(zip(LABELS, rng.uniform(0, 1, len(LABELS)) ** 2, strict=True))
        probs[LABELS[rng.integers(len(LABELS))]] = 0.001
        for lead in (None, 2.0):
            d = decide(CXR, probs, OperatingPolicy(thresholds=THR, normal_lead=lead))
            for lab in questions(d.labels):
                assert probs[lab] >= THR[lab], (lab, probs)
    mri = get_task("mri")
    d = decide(
        mri,
        {"Glioma": 0.5, "Meningioma": 0.45, "Pituitary": 0.049, "No_Tumor": 0.001},
        OperatingPolicy(thresholds=dict.fromkeys(mri.labels, 0.6), min_confidence=0.6),
    )
    assert d.state == "indeterminate" and questions(d.labels) == ["Glioma", "Meningioma"]


def _films(rows):
    """targets, probs in LABELS order from (truth labels, probabilities) rows."""
    targets = np.array([[1.0 if lab in truth else 0.0 for lab in LABELS] for truth, _ in rows])
    probs = np.array([[p[lab] for lab in LABELS] for _, p in rows])
    return targets, probs


def _film(normal: float, covid: float) -> dict[str, float]:
    return {
        "No Finding": normal,
        "COVID-19": covid,
        "Viral_Pneumonia": 0.001,
        "Pneumonia": 0.001,
        "Bacterial_Pneumonia": 0.001,
    }


def test_the_lead_is_chosen_for_the_cost_and_never_buys_a_missed_finding():
    covid = {"COVID-19", "Viral_Pneumonia", "Pneumonia"}
    rows = [
        ({"No Finding"}, FAR),  # the normal label leads by 3.98 (log-odds over thresholds)
        ({"No Finding"}, _film(0.99, 0.2)),  # leads by 2.81
        (covid, _film(0.99, 0.6)),  # a COVID-19 film the normal label leads by 1.02
        ({"No Finding"}, _film(0.95, 0.9)),  # a close call: undecided whatever the lead
    ]
    targets, probs = _films(rows)
    policy = OperatingPolicy(thresholds=THR)
    chosen, report = choose_normal_lead(CXR, LABELS, targets, probs, policy)
    # 2.0 settles both normal films and not the COVID-19 one (1.5 ties: the larger wins); 3.0
    # leaves one more film undecided; 1.0 reads the COVID-19 film normal: a miss costs
    # MISS_COST films
    assert chosen.normal_lead == 2.0, report["normal_lead_table"]
    cost = decision_cost(CXR, LABELS, targets, probs, chosen)
    assert (cost["missed_findings"], cost["undecided"]) == (0, 2)
    lower = decision_cost(
        CXR, LABELS, targets, probs, chosen.model_copy(update={"normal_lead": 1.0})
    )
    assert lower["missed_findings"] == 1 and lower["cost"] > cost["cost"]
    # ties go to the larger lead (the fewest films settled): 1.5, 2.0 and 3.0 on these two
    two = [rows[0], rows[2]]
    chosen, _ = choose_normal_lead(CXR, LABELS, *_films(two), policy)
    assert chosen.normal_lead == 3.0
    # a cheap miss (C = 0.5) would buy settled normal films: the cost is what decides
    chosen, _ = choose_normal_lead(CXR, LABELS, targets, probs, policy, miss_cost=0.5)
    assert chosen.normal_lead is not None and chosen.normal_lead < 2.0


def test_the_operating_points_carry_the_lead_and_the_cost_they_were_chosen_for(tmp_path):
    rng = np.random.default_rng(1)
    rows = []
    for _ in range(40):
        rows.append(({"No Finding"}, _film(0.99, float(rng.uniform(0.01, 0.2)))))
        rows.append(({"COVID-19", "Viral_Pneumonia", "Pneumonia"}, _film(0.1, 0.9)))
    targets, probs = _films(rows)
    report = operating.choose_policy(CXR, LABELS, targets, probs, THR, n_boot=0)
    assert report["miss_cost"] == operating.MISS_COST
    assert {"normal_lead", "normal_lead_table", "validation_cost"} <= report.keys()
    (tmp_path / operating.POLICY_FILE).write_text(json.dumps({**report, "normal_lead": 2.0}))

    card = SimpleNamespace(thresholds={})
    assert load_policy(tmp_path, card, LABELS).normal_lead == 2.0
