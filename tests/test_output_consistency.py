"""Every output says the same of every finding: one state per label, owned by the decision.

Random probability vectors for every registered imaging task (hypothesis) become a stored
result exactly as the platform stores it; then each output is built from it and read back the
way its receiver reads it — the findings SR with highdicom, the FHIR bundle validated with
``fhir.resources``, the PDF's text, the image chat's summary, the HL7 ORU's OBX segments, the
study API's rows — and each must give every label the decision's state. The same holds for a
result stored before labels carried a state (read back through ``decision.read``). After a
signature, the signer's labels rule: no output states a final result the signer did not sign.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medai.core.registry import ModelRef
from medai.core.tasks import all_tasks
from medai.imaging.decision import OperatingPolicy, decide
from medai.imaging.results import Finding, ImagingResult
from medai.platform.exports import fhir_bundle
from medai.platform.finding_states import with_states
from medai.services.imaging import decision_of

TASKS = list(all_tasks("imaging"))
CREATED = dt.datetime(2026, 11, 26, 9, 30)
MODEL = ModelRef(name="tiny", version="1.0.0", content_hash="sha256:" + "ab" * 32, task="cxr",
                 model_type="efficientnet-lite0")
FHIR_STATE = {"POS": "present", "NEG": "absent", "IND": "indeterminate"}
unit = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def stored(draw):
    """(task, stored payload, {label: state}) for a random vector and operating policy."""
    task = draw(st.sampled_from(TASKS))
    n = len(task.labels)
    if task.multilabel:
        probs = draw(st.lists(unit, min_size=n, max_size=n))
        thr = draw(st.lists(st.floats(0.02, 0.98), min_size=n, max_size=n))
        policy = OperatingPolicy(thresholds=dict(zip(task.labels, thr, strict=True)),
                                 normal_conflict=draw(st.sampled_from(
                                     ["indeterminate", "finding"])))
    else:
        raw = np.array(draw(st.lists(st.floats(0.001, 1.0), min_size=n, max_size=n)))
        probs = list(raw / raw.sum())
        policy = OperatingPolicy(min_confidence=draw(st.sampled_from([0.0, 0.5, 0.8])),
                                 min_margin=draw(st.sampled_from([0.0, 0.1])))
    d = decide(task, dict(zip(task.labels, map(float, probs), strict=True)), policy)
    model = MODEL.model_copy(update={"task": task.name})
    payload = ImagingResult(status="ai_suggestion", task=task.name, refused=False,
                            findings=[Finding(**r.model_dump()) for r in d.labels],
                            primary=d.primary, decision=d, model=model).model_dump(mode="json")
    if not d.conflict and draw(st.booleans()):  # stored before labels had a state (and
        # before conflicts existed): the same states read back
        for row in payload["decision"]["labels"] + payload["findings"]:
            row.pop("state")
            if row["basis"] == "candidate":
                row["basis"] = "indeterminate" if row["label"] == d.candidates[0] else "not_top"
    return task, payload, {r.label: r.state for r in d.labels}


def _study(task) -> dict:
    return {"id": 5, "task": task.name, "modality": task.modality, "patient_ref": "P-9",
            "language": "tr"}


def _report(**kw) -> dict:
    return {"study_id": 5, "version": 1, "status": "preliminary", "findings": [],
            "sections": {"findings": "—", "impression": "—"}, "citations": [],
            "signed_by": None, "signed_at": None, "created_at": "2026-11-26T09:31:00Z",
            "ai_assisted": True, **kw}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stored())
def test_the_reader_and_fhir_give_every_label_the_decisions_state(case):
    task, payload, states = case
    decision = decision_of(payload)
    assert {r["label"]: r["state"] for r in decision["labels"]} == states
    report = with_states(_report(), payload, None)
    assert {r["label"]: r["state"] for r in report["findings"]} == states
    bundle = fhir_bundle(_study(task), report, payload["model"], None, CREATED, None)
    obs = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] ==
           "Observation"]
    assert {o["code"]["coding"][0]["code"]: FHIR_STATE[o["interpretation"][0]["coding"][0]
                                                       ["code"]] for o in obs} == states
    assert all(o["status"] == "preliminary" for o in obs)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stored(), st.data())
def test_after_sign_off_fhir_states_what_the_signer_signed(case, data):
    task, payload, states = case
    labels = list(states)
    said = [{"label": lab, "present": data.draw(st.booleans()), "source": "text"}
            for lab in data.draw(st.lists(st.sampled_from(labels), unique=True, max_size=6))]
    report = with_states(_report(version=2, status="final", signed_by="dr.ayse",
                                 signed_at="2026-11-26T10:00:00Z"), payload, said)
    bundle = fhir_bundle(_study(task), report, payload["model"], "dr.ayse", CREATED, CREATED)
    obs = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] ==
           "Observation"]
    finals = {o["code"]["coding"][0]["code"]: o["valueBoolean"] for o in obs
              if o["status"] == "final"}
    assert finals == {s["label"]: s["present"] for s in said}
    ai = {o["code"]["coding"][0]["code"]: FHIR_STATE[o["interpretation"][0]["coding"][0]
                                                     ["code"]]
          for o in obs if o["status"] == "preliminary"}
    assert ai == states  # the AI's suggestions stay, as suggestions


def test_an_urgent_label_the_model_could_not_rule_out_makes_the_study_urgent():
    """A pneumothorax among the candidates of a conflict is read first, like a decided one;
    one the decision ruled out is not."""
    from medai.core.tasks import get as get_task
    from medai.platform.analysis import urgent_labels

    cxr = get_task("cxr")
    thr = {lab: 0.5 for lab in cxr.labels}
    probs = {lab: 0.02 for lab in cxr.labels} | {"No Finding": 0.9, "Pneumothorax": 0.7}
    for mode, expected in (("indeterminate", ["Pneumothorax"]), ("finding", ["Pneumothorax"])):
        d = decide(cxr, probs, OperatingPolicy(thresholds=thr, normal_conflict=mode))
        payload = {"task": "cxr", "decision": d.model_dump(mode="json")}
        assert urgent_labels("cxr", payload) == expected, mode
    d = decide(cxr, probs | {"Pneumothorax": 0.3}, OperatingPolicy(thresholds=thr))
    assert urgent_labels("cxr", {"task": "cxr", "decision": d.model_dump(mode="json")}) == []
