"""What a task's label space makes contradictory (issue 67, item 8): the one rule a signature's
labels are checked by (``core.label_rules``). A set that contradicts itself is named with the
labels involved; a consistent one, and every decision the AI can make, is not."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medai.core.label_rules import contradictions
from medai.core.task_registry import all_tasks, get
from medai.imaging.decision import OperatingPolicy, decide


@pytest.fixture(scope="module")
def cxr():
    return get("cxr")


@pytest.fixture(scope="module")
def mri():
    return get("mri")


def _kinds(found) -> list[tuple[str, tuple[str, ...]]]:
    return [(c.kind, c.labels) for c in found]


def test_every_label_absent_the_normal_one_included_is_a_contradiction(cxr, mri):
    said = dict.fromkeys(cxr.labels, False)
    assert _kinds(contradictions(cxr, said)) == [("nothing_present", ("No Finding",))]
    (found,) = contradictions(mri, dict.fromkeys(mri.labels, False))
    assert (found.kind, found.labels) == ("nothing_present", ("No_Tumor",))
    assert "No_Tumor is absent and no finding is present" in found.message()
    # a model reading five labels: the same, whatever the labels it does not read
    five = ("No Finding", "COVID-19", "Viral_Pneumonia", "Bacterial_Pneumonia", "Pneumonia")
    assert _kinds(contradictions(cxr, dict.fromkeys(five, False))) == [
        ("nothing_present", ("No Finding",))
    ]


def test_nothing_present_waits_for_an_undecided_label(cxr):
    said = {**dict.fromkeys(cxr.labels, False), "COVID-19": None}
    assert contradictions(cxr, said) == []
    # a set that does not state the normal label says nothing of it: stored as given
    assert contradictions(cxr, {"Pneumonia": False}) == []
    assert contradictions(cxr, {}) == []


def test_the_normal_label_beside_a_finding(cxr, mri):
    said = {**dict.fromkeys(cxr.labels, False), "No Finding": True, "Effusion": True}
    (found,) = contradictions(cxr, said)
    assert (found.kind, found.labels) == ("normal_with_finding", ("No Finding", "Effusion"))
    assert found.message() == "No Finding is present together with findings present (Effusion)"
    kinds = _kinds(contradictions(mri, {"No_Tumor": True, "Glioma": True}))
    assert kinds == [("normal_with_finding", ("No_Tumor", "Glioma"))]


def test_exclusive_siblings_one_class_and_an_implied_label_absent(cxr, mri):
    # COVID-19 is viral: beside a bacterial pneumonia the two branches are both present
    said = {
        "No Finding": False,
        "Pneumonia": True,
        "Viral_Pneumonia": True,
        "COVID-19": True,
        "Bacterial_Pneumonia": True,
    }
    (found,) = contradictions(cxr, said)
    assert found.kind == "exclusive_branches"
    assert found.labels == ("COVID-19", "Viral_Pneumonia", "Bacterial_Pneumonia")
    assert found.branches == ("Viral_Pneumonia", "Bacterial_Pneumonia")
    assert "exclude each other" in found.message()
    # brain MRI reads one class per image
    assert _kinds(contradictions(mri, {"Glioma": True, "Meningioma": True})) == [
        ("one_class", ("Glioma", "Meningioma"))
    ]
    # COVID-19 present implies viral pneumonia and pneumonia: one stated absent contradicts it
    said = {"No Finding": False, "COVID-19": True, "Viral_Pneumonia": True, "Pneumonia": False}
    assert _kinds(contradictions(cxr, said)) == [
        ("parent_absent", ("COVID-19", "Pneumonia")),
        ("parent_absent", ("Viral_Pneumonia", "Pneumonia")),
    ]
    assert (
        contradictions(cxr, said)[0].message()
        == "COVID-19 is present but Pneumonia, which it implies, is absent"
    )


def test_consistent_sets_are_not_contradictions(cxr, mri):
    assert contradictions(cxr, {**dict.fromkeys(cxr.labels, False), "No Finding": True}) == []
    said = {**dict.fromkeys(cxr.labels, False), "Effusion": True, "Pneumothorax": True}
    assert contradictions(cxr, said) == []
    said = {**said, "COVID-19": True, "Viral_Pneumonia": True, "Pneumonia": True}
    assert contradictions(cxr, said) == []
    assert contradictions(mri, {**dict.fromkeys(mri.labels, False), "Glioma": True}) == []


TASKS = list(all_tasks("imaging"))


@st.composite
def decision(draw):
    task = draw(st.sampled_from(TASKS))
    n = len(task.labels)
    if task.multilabel:
        probs = draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n))
        thr = draw(st.lists(st.floats(0.02, 0.98), min_size=n, max_size=n))
        policy = OperatingPolicy(
            thresholds=dict(zip(task.labels, thr, strict=True)),
            normal_conflict=draw(st.sampled_from(["indeterminate", "finding"])),
        )
    else:
        raw = np.array(draw(st.lists(st.floats(0.001, 1.0), min_size=n, max_size=n)))
        probs = list(raw / raw.sum())
        policy = OperatingPolicy(
            thresholds=dict.fromkeys(task.labels, 0.5),
            min_confidence=draw(st.sampled_from([0.0, 0.5, 0.8])),
            min_margin=draw(st.sampled_from([0.0, 0.1])),
        )
    return task, decide(task, dict(zip(task.labels, map(float, probs), strict=True)), policy)


@settings(max_examples=200, deadline=None)
@given(decision())
def test_the_ais_decided_states_never_contradict_each_other(case):
    """Signing endorses the AI's decided states: only the signer's choices can contradict."""
    task, d = case
    said = {r.label: None if r.state == "indeterminate" else r.state == "present" for r in d.labels}
    assert contradictions(task, said) == [], d


def test_a_follower_follows_a_sub_finding_the_signer_marked_present(cxr):
    """Undecided between "No Finding" and COVID-19, pneumonia only follows COVID-19. The signer
    adds a bacterial pneumonia and answers COVID-19 absent: pneumonia then follows the added
    finding (present), never left absent beneath it — a set the rule above would refuse."""
    from medai.imaging.decision import follow

    thresholds = {
        "Pneumonia": 0.584,
        "COVID-19": 0.089,
        "Viral_Pneumonia": 0.737,
        "Bacterial_Pneumonia": 0.41,
        "No Finding": 0.699,
    }
    probs = {
        "No Finding": 0.8,
        "COVID-19": 0.5,
        "Viral_Pneumonia": 0.3,
        "Pneumonia": 0.4,
        "Bacterial_Pneumonia": 0.05,
    }
    d = decide(cxr, probs, OperatingPolicy(thresholds=thresholds))
    ai = {r.label: r.state for r in d.labels}
    said = {lab: None if s == "indeterminate" else s == "present" for lab, s in ai.items()}
    said |= {"No Finding": False, "COVID-19": False, "Bacterial_Pneumonia": True}
    settled = follow(cxr, d.labels, said)
    assert settled["Pneumonia"] is True and settled["Viral_Pneumonia"] is False
    assert contradictions(cxr, said | settled) == []
    # answered with nothing added, the followers are absent with COVID-19
    said["Bacterial_Pneumonia"], said["No Finding"] = False, True
    assert follow(cxr, d.labels, said) == {"Viral_Pneumonia": False, "Pneumonia": False}
