"""The findings of an HL7 ORU^R01 (``documents.hl7.oru.oru_r01``), parsed back with hl7apy as a
receiver does: after sign-off the signer's labels are the results (OBX-11 F, C in an
amendment) and the AI's suggestions stay beside them as preliminary (P) OBX marked as the AI
model's (OBX-17) with the signer's verdict; before sign-off the AI's alone, preliminary. A
finding the signer rejected is never a final present result (issue 46)."""

from __future__ import annotations

from helpers.outbox_peers import unescape
from medai.core.results import ModelRef
from medai.core.task_registry import get as get_task
from medai.imaging.decision import OperatingPolicy, decide
from medai.imaging.results import Finding, ImagingResult
from medai.platform.documents.hl7.oru import oru_r01
from medai.platform.documents.words.finding_states import with_states

PRESENT, ABSENT, UNDECIDED = "52101004", "272519000", "82334004"
STUDY = {
    "id": 7,
    "task": "cxr",
    "language": "en",
    "patient_ref": "P-7",
    "dicom": {"patient_id": "TR-1", "accession": "ACC-7", "study_date": "20240305"},
}
REPORT = {
    "study_id": 7,
    "version": 2,
    "status": "final",
    "signed_by": "rad1",
    "signed_at": "2024-03-05T10:02:03Z",
    "created_at": "2024-03-05T09:40:00Z",
    "sections": {"findings": "Akciğer alanları olağan.", "impression": "Normal akciğer grafisi."},
    "ai_assisted": True,
    "ai_disclosure": "Drafted with AI assistance (medai).",
}


def result(task_name: str, probs: dict[str, float], policy: OperatingPolicy) -> dict:
    """An imaging result as the platform stores it (ImagingResult JSON)."""
    task = get_task(task_name)
    decision = decide(task, {lab: 0.02 for lab in task.labels} | probs, policy)
    return ImagingResult(
        status="ai_suggestion",
        task=task_name,
        refused=False,
        findings=[Finding(**r.model_dump()) for r in decision.labels],
        primary=decision.primary,
        decision=decision,
        model=ModelRef(
            name=f"{task_name}-tiny",
            version="1.0.0",
            content_hash="sha256:" + "5e" * 32,
            task=task_name,
            model_type="efficientnet-lite0",
        ),
    ).model_dump(mode="json")


BACTERIAL = result("cxr", {"Bacterial_Pneumonia": 0.88, "No Finding": 0.10}, OperatingPolicy())
UNDECIDED_MRI = result(
    "mri",
    {"Pituitary": 0.408, "Meningioma": 0.361, "Glioma": 0.15, "No_Tumor": 0.081},
    OperatingPolicy(min_confidence=0.5, min_margin=0.15),
)


def signed_as(report: dict, payload: dict, present: set[str], task: str = "cxr") -> dict:
    labels = [
        {"label": lab, "present": lab in present, "source": "text", "ai_positive": None}
        for lab in get_task(task).labels
    ]
    return with_states(report, payload, labels)


def parse(text: str):
    from hl7apy.parser import parse_message

    return parse_message(text, validation_level=2, find_groups=True)


def findings(msg) -> list[dict]:
    """Each coded OBX (the findings; the sections are TX): code, value, status, methods."""
    out = []
    for group in msg.ORU_R01_PATIENT_RESULT.ORU_R01_ORDER_OBSERVATION.ORU_R01_OBSERVATION:
        obx = group.OBX
        if str(obx.obx_2.value) != "CWE":
            continue
        methods = [str(rep.value) for rep in obx.obx_17] if obx.obx_17 else []
        notes = [unescape(str(n.nte_3.value)) for n in group.children if n.name == "NTE"]
        out.append(
            {
                "code": str(obx.obx_3.value).split("^")[0],
                "value": str(obx.obx_5.value).split("^")[0],
                "status": str(obx.obx_11.value),
                "sub": str(obx.obx_4.value),
                "methods": [m.split("^")[0] for m in methods],
                "notes": notes,
                "observer": str(obx.obx_16.value) if obx.obx_16 else "",
            }
        )
    return out


def code(label: str, task: str = "cxr") -> str:
    return get_task(task).finding_code(label)[1]


def test_after_sign_off_no_final_result_states_the_rejected_ai_finding():
    msg = parse(oru_r01(STUDY, signed_as(REPORT, BACTERIAL, {"No Finding"}), control_id="T1"))
    rows = findings(msg)
    bacterial = [r for r in rows if r["code"] == code("Bacterial_Pneumonia")]
    # no final (or corrected) OBX says bacterial pneumonia present
    assert not [
        r
        for r in rows
        if r["status"] in ("F", "C")
        and r["code"] == code("Bacterial_Pneumonia")
        and r["value"] == PRESENT
    ]
    signer = [r for r in bacterial if r["status"] == "F"]
    assert [(r["value"], r["methods"], r["observer"]) for r in signer] == [
        (ABSENT, ["SIGNER"], "rad1")
    ]
    # issue 59: after sign-off the coded OBX are the signer's alone; the AI's "Present" the
    # signer rejected is not sent beside it for a receiver that reads OBX-5 without OBX-11
    assert not [r for r in rows if "AI-SUGGESTION" in r["methods"] or r["status"] == "P"]
    normal = {r["status"]: r["value"] for r in rows if r["code"] == code("No Finding")}
    assert normal == {"F": PRESENT}
    assert all(r["methods"] == ["SIGNER"] for r in rows if r["status"] == "F")
    assert {r["code"] for r in rows if r["status"] == "F"} == {
        code(lab) for lab in get_task("cxr").labels
    }


def test_an_amendment_sends_the_amendments_labels_corrected():
    amended = {**REPORT, "version": 4, "status": "amended"}
    msg = parse(
        oru_r01(
            STUDY,
            signed_as(amended, BACTERIAL, {"Bacterial_Pneumonia", "Pneumonia"}),
            control_id="T2",
        )
    )
    rows = findings(msg)
    assert str(msg.ORU_R01_PATIENT_RESULT.ORU_R01_ORDER_OBSERVATION.OBR.obr_25.value) == "C"
    signer = {r["code"]: r["value"] for r in rows if r["methods"] == ["SIGNER"]}
    assert {r["status"] for r in rows if r["methods"] == ["SIGNER"]} == {"C"}
    assert signer[code("Bacterial_Pneumonia")] == PRESENT
    assert signer[code("No Finding")] == ABSENT
    assert not [r for r in rows if r["status"] == "P"]  # the AI's: not in a result


def test_a_signature_without_labels_codes_no_finding():
    """Signed with no label stored: no coded finding at all, the AI's neither (issue 59)."""
    rows = findings(parse(oru_r01(STUDY, with_states(REPORT, BACTERIAL, []), control_id="T3")))
    assert rows == []


def test_before_sign_off_the_ai_alone_is_sent_preliminary():
    report = with_states(
        {**REPORT, "status": "preliminary", "signed_by": None, "signed_at": None},
        BACTERIAL,
        None,
    )
    rows = findings(parse(oru_r01(STUDY, report, control_id="T3")))
    assert rows and {r["status"] for r in rows} == {"P"}
    assert all(r["methods"] == ["AI-SUGGESTION"] for r in rows)  # no verdict claimed
    assert {r["value"] for r in rows if r["code"] == code("Bacterial_Pneumonia")} == {PRESENT}


def test_an_undecided_result_names_its_candidates():
    study = {**STUDY, "task": "mri"}
    draft = {**REPORT, "status": "preliminary", "signed_by": None, "signed_at": None}
    rows = findings(
        parse(text := oru_r01(study, with_states(draft, UNDECIDED_MRI, None), control_id="T4"))
    )
    states = {r["code"]: r["value"] for r in rows}
    assert states[code("Pituitary", "mri")] == states[code("Meningioma", "mri")] == UNDECIDED
    assert states[code("Glioma", "mri")] == ABSENT
    order = parse(text).ORU_R01_PATIENT_RESULT.ORU_R01_ORDER_OBSERVATION
    notes = [unescape(str(n.nte_3.value)) for n in order.children if n.name == "NTE"]
    assert "The AI was undecided between: Pituitary tumour, Meningioma" in notes


def test_the_patient_segment_carries_sex_and_birth_date_where_known():
    """PID-7 and PID-8 from the study's patient context (the DICOM header or the upload form);
    left empty when unknown, never guessed."""
    known = {**STUDY, "patient": {"sex": "F", "birth_date": "1971-03-12", "age_years": 53}}
    pid = parse(oru_r01(known, REPORT, control_id="T9")).oru_r01_patient_result.oru_r01_patient.pid
    assert (pid.pid_7.value, pid.pid_8.value) == ("19710312", "F")
    bare = parse(oru_r01(STUDY, REPORT, control_id="T10")).oru_r01_patient_result.oru_r01_patient
    assert (bare.pid.pid_7.value, bare.pid.pid_8.value) == ("", "")
