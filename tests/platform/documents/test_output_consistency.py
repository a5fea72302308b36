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

from medai.core.model_dir import ModelRef
from medai.core.task_registry import all_tasks
from medai.imaging.decision import OperatingPolicy, decide
from medai.imaging.results import Finding, ImagingResult
from medai.platform.documents.fhir.fhir_bundle import fhir_bundle
from medai.platform.documents.words.finding_states import with_states
from medai.services.imaging import decision_of

TASKS = list(all_tasks("imaging"))
CREATED = dt.datetime(2026, 11, 26, 9, 30)
MODEL = ModelRef(
    name="tiny",
    version="1.0.0",
    content_hash="sha256:" + "ab" * 32,
    task="cxr",
    model_type="efficientnet-lite0",
)
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
        policy = OperatingPolicy(
            thresholds=dict(zip(task.labels, thr, strict=True)),
            normal_conflict=draw(st.sampled_from(["indeterminate", "finding"])),
        )
    else:
        raw = np.array(draw(st.lists(st.floats(0.001, 1.0), min_size=n, max_size=n)))
        probs = list(raw / raw.sum())
        policy = OperatingPolicy(
            min_confidence=draw(st.sampled_from([0.0, 0.5, 0.8])),
            min_margin=draw(st.sampled_from([0.0, 0.1])),
        )
    d = decide(task, dict(zip(task.labels, map(float, probs), strict=True)), policy)
    model = MODEL.model_copy(update={"task": task.name})
    payload = ImagingResult(
        status="ai_suggestion",
        task=task.name,
        refused=False,
        findings=[Finding(**r.model_dump()) for r in d.labels],
        primary=d.primary,
        decision=d,
        model=model,
    ).model_dump(mode="json")
    if not d.conflict and draw(st.booleans()):  # stored before labels had a state (and
        # before conflicts existed): the same states read back
        for row in payload["decision"]["labels"] + payload["findings"]:
            row.pop("state")
            if row["basis"] == "candidate":
                row["basis"] = "indeterminate" if row["label"] == d.candidates[0] else "not_top"
    return task, payload, {r.label: r.state for r in d.labels}


def _study(task) -> dict:
    return {
        "id": 5,
        "task": task.name,
        "modality": task.modality,
        "patient_ref": "P-9",
        "language": "tr",
    }


def _report(**kw) -> dict:
    return {
        "study_id": 5,
        "version": 1,
        "status": "preliminary",
        "findings": [],
        "sections": {"findings": "—", "impression": "—"},
        "citations": [],
        "signed_by": None,
        "signed_at": None,
        "created_at": "2026-11-26T09:31:00Z",
        "ai_assisted": True,
        **kw,
    }


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stored())
def test_the_reader_and_fhir_give_every_label_the_decisions_state(case):
    task, payload, states = case
    decision = decision_of(payload)
    assert {r["label"]: r["state"] for r in decision["labels"]} == states
    report = with_states(_report(), payload, None)
    assert {r["label"]: r["state"] for r in report["findings"]} == states
    bundle = fhir_bundle(_study(task), report, payload["model"], None, CREATED, None)
    obs = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    assert {
        o["code"]["coding"][0]["code"]: FHIR_STATE[o["interpretation"][0]["coding"][0]["code"]]
        for o in obs
    } == states
    assert all(o["status"] == "preliminary" for o in obs)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stored(), st.data())
def test_after_sign_off_fhir_states_what_the_signer_signed(case, data):
    task, payload, states = case
    labels = list(states)
    said = [
        {"label": lab, "present": data.draw(st.booleans()), "source": "text"}
        for lab in data.draw(st.lists(st.sampled_from(labels), unique=True, max_size=6))
    ]
    report = with_states(
        _report(version=2, status="final", signed_by="dr.ayse", signed_at="2026-11-26T10:00:00Z"),
        payload,
        said,
    )
    bundle = fhir_bundle(_study(task), report, payload["model"], "dr.ayse", CREATED, CREATED)
    obs = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    finals = {
        o["code"]["coding"][0]["code"]: o["valueBoolean"] for o in obs if o["status"] == "final"
    }
    # an undecided label stored absent from the text (before labels changed only by hand) was
    # no choice of the signer's: "not decided", no final Observation (issue 59)
    chosen = [
        s for s in said if s["present"] or states.get(s["label"], "absent") != "indeterminate"
    ]
    assert finals == {s["label"]: s["present"] for s in chosen}
    ai = {
        o["code"]["coding"][0]["code"]: FHIR_STATE[o["interpretation"][0]["coding"][0]["code"]]
        for o in obs
        if o["status"] == "preliminary"
    }
    assert ai == states  # the AI's suggestions stay, as suggestions


def test_an_urgent_label_the_model_could_not_rule_out_makes_the_study_urgent():
    """A pneumothorax among the candidates of a conflict is read first, like a decided one;
    one the decision ruled out is not."""
    from medai.core.task_registry import get as get_task
    from medai.platform.worklist.reading_order import urgent_labels as rule
    from medai.services.imaging import decision_of

    def urgent_labels(task, payload):  # as the analysis reads a stored result
        return rule(task, decision_of(payload))

    cxr = get_task("cxr")
    thr = {lab: 0.5 for lab in cxr.labels}
    probs = {lab: 0.02 for lab in cxr.labels} | {"No Finding": 0.9, "Pneumothorax": 0.7}
    for mode, expected in (("indeterminate", ["Pneumothorax"]), ("finding", ["Pneumothorax"])):
        d = decide(cxr, probs, OperatingPolicy(thresholds=thr, normal_conflict=mode))
        payload = {"task": "cxr", "decision": d.model_dump(mode="json")}
        assert [lab for lab, _ in urgent_labels("cxr", payload)] == expected, mode
    d = decide(cxr, probs | {"Pneumothorax": 0.3}, OperatingPolicy(thresholds=thr))
    assert urgent_labels("cxr", {"task": "cxr", "decision": d.model_dump(mode="json")}) == []


def _chat_states(text: str, task, names: dict[str, str]) -> dict[str, str]:
    """Which group of the chat's findings sentence each label is named in."""
    import re

    from medai.reporting.chat import WORDS

    w = WORDS["en"]
    text = text.split(w["conflict"].split(":")[0] + ":")[0]  # the groups, not the conflict line
    heads = {
        "present": f"{w['present']}: ",
        "indeterminate": f"{w['undecided_group']}: ",
        "absent": f"{w['absent']}: ",
    }
    where = sorted((text.index(h), state) for state, h in heads.items() if h in text)
    bounds = [
        (start, where[i + 1][0] if i + 1 < len(where) else len(text), state)
        for i, (start, state) in enumerate(where)
    ]
    out = {}
    for label, name in names.items():
        # a label whose name is a negative ("No tumour") is said on its own: "applies" / "does
        # not apply", never in the "absent:" group (a double negative)
        own = {
            state: re.search(
                re.escape(name) + r"(?: \([^)]*\))?: " + re.escape(w[f"normal_{state}"]) + r"[.;]",
                text,
            )
            for state in ("present", "absent")
        }
        if any(own.values()):
            assert sum(map(bool, own.values())) == 1, (label, name, text)
            out[label] = next(state for state, hit in own.items() if hit)
            continue
        pat = re.compile(r"(?:: |, )" + re.escape(name) + r"(?= \(|,|;|\.)")
        hits = [state for start, end, state in bounds if pat.search(text[start:end])]
        assert len(hits) == 1, (label, name, text)
        out[label] = hits[0]
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stored())
def test_the_chat_and_the_findings_sr_give_every_label_the_decisions_state(case):
    from medai.reporting.chat import StudyFacts, findings_text, label_name

    task, payload, states = case
    report = with_states(_report(), payload, None)
    facts = StudyFacts(findings=report["findings"], task=task.name, decision=report["decision"])
    names = {lab: label_name(task.name, lab, "en") for lab in states}
    assert len(set(names.values())) == len(names)
    assert _chat_states(findings_text(facts, "en"), task, names) == states


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stored(), st.sampled_from(["tr", "en"]))
def test_the_pdf_gives_every_label_the_decisions_state(case, lang):
    import io

    from pypdf import PdfReader

    from helpers.pdf_table import read_table
    from medai.platform.documents.fhir.fhir_bundle import report_pdf
    from medai.platform.documents.words import report_words as rw

    task, payload, states = case
    report = with_states(_report(), payload, None)
    assert {r["label"]: r["state"] for r in report["findings"]} == states
    pdf = report_pdf({**_study(task), "language": lang}, report, payload["model"], None, None, None)
    text = " ".join(
        " ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(pdf)).pages
    )
    words = rw.words(lang)
    heads = [words[k] for k in ("col_finding", "col_probability", "col_threshold", "col_decision")]
    # each label's own row, read by row and column: its decision cell says its state, and
    # only that (a flattened text runs one row's words into the next row's)
    rows = read_table(pdf, heads, len(report["findings"]))
    for row, (name, _p, _t, cell) in zip(report["findings"], rows, strict=True):
        assert name == rw.label_name(task.name, row["label"], lang), (name, row["label"])
        assert cell == " ".join(rw.decision(row, lang, task.name).split()), (row, cell)
    note = rw.decision_note(report["decision"], task.name, lang)
    if note:
        assert " ".join(note.split()) in text


def _source(task):
    """A small DICOM source image of the task's modality (the SR references it)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from medai.platform.documents.dicom_objects import SourceImage

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = (
        "1.2.840.10008.5.1.4.1.1.1.1" if task.multilabel else "1.2.840.10008.5.1.4.1.1.4"
    )
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = (
        generate_uid(),
        generate_uid(),
        generate_uid(),
    )
    ds.Modality = "DX" if task.multilabel else "MR"
    ds.PatientID, ds.PatientName, ds.AccessionNumber = "TR-1", "Yılmaz^Ayşe", "ACC-1"
    ds.PatientBirthDate, ds.PatientSex, ds.StudyID = "19790412", "F", "1"
    ds.StudyDate, ds.StudyTime, ds.ReferringPhysicianName = "20261126", "091000", ""
    ds.SpecificCharacterSet = "ISO_IR 192"
    return SourceImage.from_dataset(ds)


HL7_STATE = {"52101004": "present", "272519000": "absent", "82334004": "indeterminate"}


def _hl7(text: str) -> list[dict]:
    """The coded OBX of an ORU^R01, parsed with hl7apy: code, value, status, OBX-17."""
    from hl7apy.parser import parse_message

    msg = parse_message(text, validation_level=2, find_groups=True)
    out = []
    for group in msg.ORU_R01_PATIENT_RESULT.ORU_R01_ORDER_OBSERVATION.ORU_R01_OBSERVATION:
        obx = group.OBX
        if str(obx.obx_2.value) == "CWE":
            out.append(
                {
                    "code": str(obx.obx_3.value).split("^")[0],
                    "value": str(obx.obx_5.value).split("^")[0],
                    "status": str(obx.obx_11.value),
                    "methods": [str(r.value).split("^")[0] for r in obx.obx_17]
                    if obx.obx_17
                    else [],
                }
            )
    return out


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stored(), st.data())
def test_the_findings_sr_and_hl7_give_every_label_the_decisions_state(case, data):
    import io

    import pydicom

    from medai.platform.documents.dicom_objects import save_bytes
    from medai.platform.documents.hl7.oru import oru_r01
    from medai.platform.documents.sr.findings_sr import findings_sr, read_findings_sr

    task, payload, states = case
    sr = pydicom.dcmread(
        io.BytesIO(save_bytes(findings_sr(_source(task), payload, created=CREATED)))
    )
    assert {f["label"]: f["state"] for f in read_findings_sr(sr)["findings"]} == states
    codes = {task.finding_code(lab)[1]: lab for lab in states}
    report = with_states(_report(), payload, None)
    rows = _hl7(oru_r01({**_study(task), "language": "en"}, report, control_id="P1"))
    assert {codes[r["code"]]: HL7_STATE[r["value"]] for r in rows} == states
    assert all(r["status"] == "P" for r in rows)
    # signed: the final results are exactly the signer's labels
    said = [
        {"label": lab, "present": data.draw(st.booleans()), "source": "text"}
        for lab in data.draw(st.lists(st.sampled_from(list(states)), unique=True, max_size=6))
    ]
    signed = with_states(
        _report(version=2, status="final", signed_by="dr.ayse", signed_at="2026-11-26T10:00:00Z"),
        payload,
        said,
    )
    rows = _hl7(oru_r01({**_study(task), "language": "en"}, signed, control_id="S1"))
    finals = {codes[r["code"]]: HL7_STATE[r["value"]] for r in rows if r["status"] == "F"}
    chosen = [s for s in said if s["present"] or states[s["label"]] != "indeterminate"]
    assert finals == {s["label"]: "present" if s["present"] else "absent" for s in chosen}
    # after sign-off the AI's coded results are not sent beside the signer's: a receiver that
    # reads every OBX would take an AI guess for a result (issue 59)
    assert [r for r in rows if r["status"] != "F"] == []


def test_a_study_keeps_why_it_is_urgent_once_per_reason():
    import pytest

    from medai.platform.records.tables import Study
    from medai.platform.worklist.filing import add_urgency

    study = Study(urgent=False)
    add_urgency(study, "ai_possible_finding", "Pneumothorax")
    add_urgency(study, "ai_possible_finding", "Pneumothorax")  # a re-run of the analysis
    add_urgency(study, "question_red_flag")
    assert study.urgent is True
    assert study.urgent_because == [
        {"code": "ai_possible_finding", "label": "Pneumothorax"},
        {"code": "question_red_flag"},
    ]
    with pytest.raises(ValueError, match="question_red_flag"):
        add_urgency(study, "because I said so")


def test_the_default_heatmap_of_an_undecided_result_shows_a_finding_candidate():
    """A conflict between No Finding and viral pneumonia shows the pneumonia's map: a map of
    "no finding" shows a reader nothing to check."""
    from medai.core.task_registry import get as get_task
    from medai.services.study_read import heatmap_label as _heatmap_label

    cxr = get_task("cxr")
    probs = {lab: 0.02 for lab in cxr.labels} | {"No Finding": 0.95, "Viral_Pneumonia": 0.8}
    d = decide(cxr, probs, OperatingPolicy(thresholds={lab: 0.5 for lab in cxr.labels}))
    assert d.candidates[0] == "No Finding"
    result = ImagingResult(
        status="ai_suggestion",
        task="cxr",
        refused=False,
        findings=[Finding(**r.model_dump()) for r in d.labels],
        decision=d,
        model=MODEL,
    )
    assert _heatmap_label(result) == "Viral_Pneumonia"
