"""The one decision per imaging result, for every registered imaging task, over random
probability vectors (hypothesis): valid for the task's kind, and the template draft states
exactly the decided findings in Turkish and in English."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medai.core.task_registry import all_tasks
from medai.imaging.decision import OperatingPolicy, ancestors, decide, from_labels, read
from medai.reporting.consistency import contradictions
from medai.reporting.draft import draft_report
from medai.reporting.draft_input import Finding

TASKS = [t for t in all_tasks("imaging")]
unit = st.floats(0.0, 1.0, allow_nan=False)


def _valid(task, d) -> None:
    pos = set(d.positives)
    if not task.multilabel:
        assert len(pos) == 1 or (d.state == "indeterminate" and not pos)
        if pos:
            assert d.primary == max(d.labels, key=lambda r: r.probability).label
        return
    if task.normal is not None:
        assert not (task.normal in pos and len(pos) > 1), d
        if d.state == "indeterminate":  # only a conflict leaves a multi-label task undecided
            assert d.indeterminate_reason == "conflict" and not pos, d
            assert task.normal in d.candidates and task.normal in d.conflict, d
        else:
            assert pos, "a task with a normal label decides normal, a finding or a conflict"
        assert (d.state == "normal") == (pos == {task.normal})
        passing = {r.label for r in d.labels if r.probability >= r.threshold}
        if d.conflict:  # the normal label passed beside a finding: never settled silently
            assert task.normal in passing and task.normal in d.conflict, d
            assert all(r.basis == "conflict" for r in d.labels if r.label in d.conflict), d
        elif task.normal in passing:  # a lead settled it: the findings said outweighed
            assert pos == {task.normal}, d
            outweighed = {r.label for r in d.labels if r.basis == "outweighed"}
            assert outweighed == passing - {task.normal} - excluded_of(d), d
    undecided = {r.label for r in d.labels if r.state == "indeterminate"}
    assert undecided >= set(d.candidates), d
    assert bool(undecided) == (d.state == "indeterminate"), d
    for lab in pos:
        assert set(ancestors(task, lab)) & set(task.labels) <= pos, (lab, d)
    for group in task.siblings:
        branches = [m for m in group if any(lab == m or m in ancestors(task, lab) for lab in pos)]
        assert len(branches) <= 1, d
    assert {r.label for r in d.labels if r.positive} == pos
    assert {r.label for r in d.labels if r.state == "present"} == pos


def excluded_of(d) -> set[str]:
    return {r.label for r in d.labels if r.basis == "excluded"}


@st.composite
def case(draw):
    task = draw(st.sampled_from(TASKS))
    n = len(task.labels)
    if task.multilabel:
        probs = draw(st.lists(unit, min_size=n, max_size=n))
        thr = draw(st.lists(st.floats(0.02, 0.98), min_size=n, max_size=n))
        policy = OperatingPolicy(
            thresholds=dict(zip(task.labels, thr, strict=True)),
            normal_conflict=draw(st.sampled_from(["indeterminate", "finding"])),
            normal_lead=draw(st.sampled_from([None, 0.0, 2.0])),
        )
    else:
        raw = np.array(draw(st.lists(st.floats(0.001, 1.0), min_size=n, max_size=n)))
        probs = list(raw / raw.sum())
        policy = OperatingPolicy(
            thresholds={lab: 0.5 for lab in task.labels},
            min_confidence=draw(st.sampled_from([0.0, 0.5, 0.8])),
            min_margin=draw(st.sampled_from([0.0, 0.1])),
        )
    return task, dict(zip(task.labels, map(float, probs), strict=True)), policy


@settings(max_examples=300, deadline=None)
@given(case())
def test_every_decision_is_valid_for_its_task(c):
    task, probs, policy = c
    _valid(task, decide(task, probs, policy))


@settings(max_examples=120, deadline=None)
@given(case(), st.sampled_from(["tr", "en"]))
def test_the_draft_states_exactly_the_decided_findings(c, lang):
    task, probs, policy = c
    d = decide(task, probs, policy)
    findings = [Finding(r.label, r.positive, r.probability, r.threshold) for r in d.labels]
    out = draft_report(findings, None, task=task.name, lang=lang, decision=d)
    # why it did not decide, and that it found none of its labels: the AI note's (issue 69)
    assert contradictions(out["sections"], d, task.name, lang, out["ai_note"]) == [], (
        out["sections"],
        out["ai_note"],
    )
    assert out["decision"]["positives"] == d.positives


def test_a_normal_label_beside_a_finding_is_a_conflict_never_settled_silently():
    cxr = next(t for t in TASKS if t.name == "cxr")
    thr = {
        "Pneumonia": 0.58,
        "COVID-19": 0.089,
        "Viral_Pneumonia": 0.74,
        "Bacterial_Pneumonia": 0.41,
        "No Finding": 0.70,
    }
    film = {
        "No Finding": 0.969,
        "COVID-19": 0.913,
        "Pneumonia": 0.3,
        "Viral_Pneumonia": 0.2,
        "Bacterial_Pneumonia": 0.01,
    }
    # indeterminate (what the bundled model's validation chose): both are the candidates
    d = decide(cxr, film, OperatingPolicy(thresholds=thr))
    assert d.state == "indeterminate" and d.indeterminate_reason == "conflict"
    assert d.positives == [] and d.candidates == ["No Finding", "COVID-19"]
    states = {r.label: (r.state, r.basis) for r in d.labels}
    assert states["No Finding"] == ("indeterminate", "conflict")
    assert states["COVID-19"] == ("indeterminate", "conflict")
    assert states["Viral_Pneumonia"] == ("indeterminate", "candidate")  # with its child
    assert states["Bacterial_Pneumonia"] == ("absent", "below_threshold")
    for lang in ("tr", "en"):
        tr = draft_report(
            [Finding(r.label, r.positive, r.probability, r.threshold) for r in d.labels],
            None,
            task="cxr",
            lang=lang,
            decision=d,
        )
        text = tr["sections"]["impression"] + tr["sections"]["findings"]
        assert "Belirgin bulgu yok" not in text and "No definite finding" not in text
    # the finding with the conflict flag: COVID-19 present, the normal label absent because
    # of the conflict (its basis says so), the flag on the decision
    d = decide(cxr, film, OperatingPolicy(thresholds=thr, normal_conflict="finding"))
    assert d.state == "abnormal" and d.conflict == ["No Finding", "COVID-19"]
    assert set(d.positives) == {"COVID-19", "Viral_Pneumonia", "Pneumonia"}
    states = {r.label: (r.state, r.basis) for r in d.labels}
    assert states["No Finding"] == ("absent", "conflict")
    assert states["COVID-19"] == ("present", "conflict")
    # neither normal nor a disease passes: the most likely, said with low confidence
    pol = OperatingPolicy(thresholds=thr)
    d = decide(
        cxr,
        {
            "No Finding": 0.5,
            "COVID-19": 0.01,
            "Pneumonia": 0.5,
            "Viral_Pneumonia": 0.1,
            "Bacterial_Pneumonia": 0.39,
        },
        pol,
    )
    assert d.low_confidence and d.state == "abnormal" and "Bacterial_Pneumonia" in d.positives
    assert "Pneumonia" in d.positives and d.stated == ["Bacterial_Pneumonia"]
    assert not d.conflict
    # COVID-19 implies viral pneumonia and pneumonia; bacterial is the excluded sibling
    d = decide(
        cxr,
        {
            "No Finding": 0.01,
            "COVID-19": 0.9,
            "Pneumonia": 0.9,
            "Viral_Pneumonia": 0.2,
            "Bacterial_Pneumonia": 0.5,
        },
        pol,
    )
    assert set(d.positives) == {"COVID-19", "Viral_Pneumonia", "Pneumonia"}
    assert {r.label: r.basis for r in d.labels}["Bacterial_Pneumonia"] == "excluded"


def test_an_undecided_mri_keeps_both_candidates_undecided_and_old_rows_read_the_same():
    mri = next(t for t in TASKS if t.name == "mri")
    probs = {"Pituitary": 0.408, "Meningioma": 0.361, "Glioma": 0.2, "No_Tumor": 0.031}
    d = decide(mri, probs, OperatingPolicy(min_confidence=0.5))
    states = {r.label: r.state for r in d.labels}
    assert states == {
        "Pituitary": "indeterminate",
        "Meningioma": "indeterminate",
        "Glioma": "absent",
        "No_Tumor": "absent",
    }
    # a result stored before labels had a state: the runner-up said basis "not_top" then,
    # and must read back undecided (the candidates say so), not absent
    old = d.model_dump(mode="json")
    for row in old["labels"]:
        row.pop("state")
        row["basis"] = {"candidate": "indeterminate"}.get(row["basis"], row["basis"])
    old["labels"][1]["basis"] = "not_top"
    back = read({"task": "mri", "decision": old, "findings": old["labels"]}, mri)
    assert {r.label: r.state for r in back.labels} == states
    assert read({"task": "mri", "refused": True}, mri) is None
    # a result stored before decisions existed: its positive flags
    legacy = read(
        {
            "task": "mri",
            "findings": [
                {"label": "Glioma", "probability": 0.9, "threshold": 0.5, "positive": True},
                {"label": "No_Tumor", "probability": 0.1, "threshold": 0.5, "positive": False},
            ],
        },
        mri,
    )
    assert legacy.state == "abnormal" and legacy.primary == "Glioma"
    assert [r.state for r in legacy.labels] == ["present", "absent"]


def test_an_exclusive_task_answers_one_class_or_indeterminate():
    mri = next(t for t in TASKS if t.name == "mri")
    probs = {"Glioma": 0.802, "Meningioma": 0.1, "Pituitary": 0.05, "No_Tumor": 0.048}
    assert decide(mri, probs, OperatingPolicy()).positives == ["Glioma"]
    unsure = decide(mri, probs, OperatingPolicy(min_confidence=0.9))
    assert unsure.state == "indeterminate" and unsure.positives == []
    assert unsure.indeterminate_reason == "low_confidence"
    assert unsure.candidates == ["Glioma", "Meningioma"]
    close = decide(
        mri,
        {"Glioma": 0.45, "Meningioma": 0.43, "Pituitary": 0.1, "No_Tumor": 0.02},
        OperatingPolicy(min_margin=0.1),
    )
    assert close.indeterminate_reason == "close_call"
    for lang in ("tr", "en"):
        out = draft_report(
            [Finding(r.label, r.positive, r.probability, r.threshold) for r in unsure.labels],
            None,
            task="mri",
            lang=lang,
            decision=unsure,
        )
        text = out["sections"]["findings"] + out["sections"]["impression"]
        assert "Belirgin bulgu yok" not in text and "No definite finding" not in text
        # undecided: no impression of the AI's in the report; the note says why (issue 69)
        assert out["sections"]["impression"] == ""
        said = "karar veremedi" if lang == "tr" else "could not decide"
        assert any(said in line for line in out["ai_note"]), out["ai_note"]


def test_findings_a_person_names_are_checked():
    cxr = next(t for t in TASKS if t.name == "cxr")
    assert set(from_labels(cxr, ["COVID-19"]).positives) == {
        "COVID-19",
        "Viral_Pneumonia",
        "Pneumonia",
    }
    with pytest.raises(ValueError, match="No Finding"):
        from_labels(cxr, ["No Finding", "Effusion"])
    with pytest.raises(ValueError, match="exclude each other"):
        from_labels(cxr, ["Bacterial_Pneumonia", "COVID-19"])


def test_operating_points_are_chosen_through_the_decision_and_flag_few_positives():
    from medai.imaging.operating import choose_policy, decided_matrix

    rng = np.random.default_rng(0)
    cxr = next(t for t in TASKS if t.name == "cxr")
    labels = ["Pneumonia", "COVID-19", "Viral_Pneumonia", "Bacterial_Pneumonia", "No Finding"]
    n = 120
    kind = rng.integers(0, 3, n)  # 0 normal, 1 bacterial, 2 COVID-19 (only 6 of them)
    kind[kind == 2] = 1
    kind[:6] = 2
    t = np.zeros((n, 5))
    t[kind == 0, 4] = 1
    t[np.ix_(kind == 1, [0, 3])] = 1
    t[np.ix_(kind == 2, [0, 1, 2])] = 1
    p = np.clip(t * 0.7 + rng.uniform(0, 0.3, t.shape), 0, 1)
    report = choose_policy(cxr, labels, t, p, {lab: 0.5 for lab in labels}, n_boot=50)
    # six COVID-19 images (and so six viral pneumonias) decided those two operating points
    assert report["few_positives"] == ["COVID-19", "Viral_Pneumonia"]
    assert report["per_label"]["COVID-19"]["validation_positives"] == 6
    assert report["chosen_on"] == "validation" and report["n_validation"] == n
    lo, hi = report["per_label"]["No Finding"]["sensitivity_ci95"]
    assert lo <= report["per_label"]["No Finding"]["sensitivity"] <= hi
    decided = decided_matrix(cxr, labels, p, OperatingPolicy(thresholds=report["thresholds"]))
    assert not (decided[:, 4].astype(bool) & decided[:, :4].any(axis=1)).any()

    mri = next(tk for tk in TASKS if tk.name == "mri")
    y = rng.integers(0, 4, 200)
    logits = np.eye(4)[y] * rng.uniform(0.2, 3.0, (200, 1)) + rng.normal(0, 0.6, (200, 4))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    rep = choose_policy(mri, list(mri.labels), np.eye(4)[y], probs, {}, n_boot=20)
    assert rep["kind"] == "exclusive" and 0 < rep["validation_coverage"] <= 1
    assert rep["validation_answered_accuracy"] >= 0.95 or not rep["met"]


def test_the_operating_points_file_is_part_of_the_model_hash(tmp_path):
    from medai.core.results import directory_hash
    from medai.imaging.operating import POLICY_FILE

    (tmp_path / "weights.bin").write_bytes(b"w")
    (tmp_path / POLICY_FILE).write_text('{"thresholds": {"Glioma": 0.5}}')
    before = directory_hash(tmp_path)
    (tmp_path / POLICY_FILE).write_text('{"thresholds": {"Glioma": 0.6}}')
    assert directory_hash(tmp_path) != before


@settings(max_examples=80, deadline=None)
@given(case(), st.sampled_from(["tr", "en"]))
def test_the_draft_says_nothing_of_what_no_model_label_reads(c, lang):
    """The chest models read lung findings: a normal draft once said "the heart size and
    mediastinal contours are within normal limits", which no model label decides."""
    task, probs, policy = c
    d = decide(task, probs, policy)
    findings = [Finding(r.label, r.positive, r.probability, r.threshold) for r in d.labels]
    text = " ".join(
        draft_report(findings, None, task=task.name, lang=lang, decision=d)["sections"].values()
    ).lower()
    for unread in (
        "heart size",
        "mediastinal contours",
        "kalp boyutu",
        "mediasten konturları",
        "cardiopulmonary",
        "kardiyopulmoner",
    ):
        assert unread not in text


def test_an_undecided_mri_is_drafted_from_its_candidates_not_from_no_tumour():
    from medai.reporting.knowledge import builtin_chunks
    from medai.reporting.retrieve import HybridRetriever

    mri = next(t for t in TASKS if t.name == "mri")
    unsure = decide(
        mri,
        {"Glioma": 0.2, "Meningioma": 0.656, "Pituitary": 0.04, "No_Tumor": 0.104},
        OperatingPolicy(min_confidence=0.8),
    )
    assert unsure.state == "indeterminate"
    retriever = HybridRetriever(builtin_chunks(), use_embeddings=False)
    for lang in ("tr", "en"):
        out = draft_report(
            [Finding(r.label, r.positive, r.probability, r.threshold) for r in unsure.labels],
            retriever,
            task="mri",
            lang=lang,
            decision=unsure,
        )
        label_of = {c.id: c.label for c in builtin_chunks()}
        cited = {label_of[c["id"]] for c in out["citations"]}
        assert cited and cited <= set(unsure.candidates) and "No_Tumor" not in cited, cited
        # no candidate's advice taken: each candidate's passage is named, in the AI note, as a
        # source for the differential (issue 69: never in the report's recommendation)
        assert out["sections"]["recommendation"] == ""
        sources = "Ayırıcı tanı kaynakları" if lang == "tr" else "Sources for the differential"
        assert any(line.startswith(sources) for line in out["ai_note"]), out["ai_note"]


@settings(max_examples=120, deadline=None)
@given(case(), st.sampled_from(["tr", "en"]))
def test_the_signature_labels_read_back_the_decision_from_the_draft(c, lang):
    """Signing a draft unchanged stores what the decision holds: its findings, normal only when
    it decided normal, and nothing normal from an undecided draft (whose sentence names
    "tümör yok" among the classes it could not separate)."""
    from medai.reporting.findings import denied_labels, named_labels, stated_labels, states_normal

    task, probs, policy = c
    d = decide(task, probs, policy)
    findings = [Finding(r.label, r.positive, r.probability, r.threshold) for r in d.labels]
    sections = draft_report(findings, None, task=task.name, lang=lang, decision=d)["sections"]
    text = f"{sections['findings']}\n{sections['impression']}"
    said = stated_labels(text) & set(task.labels) - {task.normal}
    assert set(d.stated) - {task.normal} <= said
    if d.state == "normal":  # says normal, or (issue 69's register) denies every finding it
        # names ("Gliom, menenjiom ve hipofiz tümörü izlenmedi.")
        named = named_labels(text) & set(task.labels) - {task.normal}
        assert states_normal(text) or (named and named <= denied_labels(text)), text
        assert not said
    if d.state == "indeterminate":
        assert not states_normal(text) and not said


def test_named_findings_are_stated_in_the_tasks_order_in_every_process():
    """Findings a person names tie at 1.0: their order (the draft's sentences, the primary
    finding) follows the task's labels, not a set's hash order, which differs per process."""
    import os
    import subprocess
    import sys

    from medai.imaging.decision import from_labels
    from medai.imaging.labels import space

    task = space("cxr")
    named = ["Edema", "Consolidation", "Effusion"]
    want = [lab for lab in task.labels if lab in named]
    assert from_labels(task, named).stated == want
    assert from_labels(task, list(reversed(named))).stated == want
    code = (
        "from medai.imaging.decision import from_labels;"
        "from medai.imaging.labels import space;"
        "d = from_labels(space('cxr'), ['Edema', 'Consolidation', 'Effusion']);"
        "print(d.stated, d.primary, d.positives)"
    )
    seen = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in range(4)
    }
    assert len(seen) == 1, seen
