"""The report as an HL7 v2.5.1 ORU^R01 (hl7apy builds and checks it), for a HIS without FHIR:
the report text per section, each finding as an OBX with its one state and who stated it (the
AI, or the signer after sign-off), a retraction as a withdrawn result. The one HL7 escaping of
the project (``escape``); sending it over MLLP is ``delivery.destinations.hl7``'s."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from medai.core.task_registry import TaskError
from medai.core.task_registry import get as get_task
from medai.platform.dicom.dicom_values import outgoing_study
from medai.platform.dicom.identity import name_parts
from medai.platform.documents.words import report_words as rw
from medai.platform.documents.words.report_words import decision_note, language
from medai.platform.records.printable import printable, printable_tree

VERSION = "2.5.1"


SECTION_CODES = {
    "technique": ("55111-9", "Current imaging procedure descriptions"),
    "findings": ("59776-5", "Procedure findings"),
    "measurements": ("18782-3", "Radiology Study observation (narrative)"),
    "impression": ("19005-8", "Radiology Impression"),
    "recommendation": ("18783-1", "Radiology Study recommendation"),
}


RESULT_STATUS = {"preliminary": "P", "final": "F", "amended": "C"}


WITHDRAWN = "W"  # HL7 table 0123 / 0085: the result was entered in error and is withdrawn


STATE_CODES = {
    "present": "52101004^Present^SCT",
    "absent": "272519000^Absent^SCT",
    "indeterminate": "82334004^Indeterminate^SCT",
}


AI_METHOD = "AI-SUGGESTION^AI model suggestion (not a diagnosis)^99MEDAI"


SIGNER_METHOD = "SIGNER^Stated by the signing radiologist^99MEDAI"


VERDICT_CODES = {
    "confirmed": "CONFIRMED^Confirmed by the signer^99MEDAI",
    "rejected": "REJECTED^Rejected by the signer^99MEDAI",
    "added": "ADDED^Added by the signer^99MEDAI",
    "decided": "DECIDED^Decided by the signer (AI undecided)^99MEDAI",
}


def escape(text: str) -> str:
    """HL7 escaping of the separators, bidi and control characters dropped (``printable``)."""
    text = printable(str(text))
    for raw, esc in (
        ("\\", "\\E\\"),
        ("|", "\\F\\"),
        ("^", "\\S\\"),
        ("&", "\\T\\"),
        ("~", "\\R\\"),
    ):
        text = text.replace(raw, esc)
    return text


def _ts(when: datetime | str | None) -> str:
    if when is None:
        return ""
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    if when.tzinfo:
        when = when.astimezone(UTC)
    return when.strftime("%Y%m%d%H%M%S") + "+0000"


def oru_r01(
    study: dict[str, Any],
    report: dict[str, Any],
    *,
    control_id: str,
    sending_application: str = "MEDAI",
    sending_facility: str = "",
    receiving_application: str = "",
    receiving_facility: str = "",
    when: datetime | None = None,
    withdrawn: bool = False,
) -> str:
    """The ER7 text of the report version's ORU^R01 (segments separated by CR); with
    ``withdrawn``, every result status W (a retracted study's correction)."""
    from hl7apy.core import Message
    from hl7apy.parser import parse_message

    study, report = outgoing_study(study), printable_tree(report)
    status = RESULT_STATUS.get(str(report.get("status")), "P")
    if status != "P" and not report.get("signed_by"):
        status = "P"  # an unsigned amendment is not a result yet
    at = _ts(when or report.get("signed_at") or report.get("created_at"))
    dicom = study.get("dicom") or {}
    m = Message("ORU_R01", version=VERSION, validation_level=2)
    m.msh.msh_3 = escape(sending_application)
    m.msh.msh_4 = escape(sending_facility)
    m.msh.msh_5 = escape(receiving_application)
    m.msh.msh_6 = escape(receiving_facility)
    m.msh.msh_7 = at
    m.msh.msh_9 = "ORU^R01^ORU_R01"
    m.msh.msh_10 = control_id
    m.msh.msh_11 = "P"
    m.msh.msh_12 = VERSION
    m.msh.msh_18 = "UNICODE UTF-8"
    result = m.add_group("ORU_R01_PATIENT_RESULT")
    ids = []
    if dicom.get("patient_id"):
        ids.append(f"{escape(dicom['patient_id'])}^^^^MR")
    if study.get("patient_ref"):
        ids.append(f"{escape(study['patient_ref'])}^^^MEDAI^PI")
    ids = ids or [f"study-{study['id']}^^^MEDAI^PI"]
    pid = result.add_group("ORU_R01_PATIENT").add_segment("PID")
    for value in ids:  # one repetition each
        pid.add_field("pid_3").value = value
    if dicom.get("patient_name"):
        parts = name_parts(dicom["patient_name"])
        given = parts["given"] + ["", ""]
        pid.pid_5 = "^".join(
            escape(x)
            for x in (
                parts["family"],
                given[0],
                given[1],
                " ".join(parts["suffix"]),
                " ".join(parts["prefix"]),
            )
        )
    context = study.get("patient") or {}
    if context.get("birth_date"):  # the upload form's or the DICOM header's (patient_context)
        pid.pid_7 = context["birth_date"].replace("-", "")
    if context.get("sex") in ("M", "F", "O"):  # HL7 table 0001 shares DICOM's letters
        pid.pid_8 = context["sex"]
    order = result.add_group("ORU_R01_ORDER_OBSERVATION")
    order.obr.obr_1 = "1"
    order.obr.obr_3 = escape(dicom.get("accession") or f"MEDAI-{study['id']}")
    order.obr.obr_4 = "18748-4^Diagnostic imaging study^LN"
    date = dicom.get("study_date") or ""
    order.obr.obr_7 = date if len(date) == 8 else _ts(study.get("created_at"))
    order.obr.obr_22 = at
    order.obr.obr_24 = "RAD"
    order.obr.obr_25 = status
    if report.get("signed_by"):  # NDL: the name (CNN) in subcomponents
        order.obr.obr_32 = signer_name(report, "&")
    notes = [report.get("ai_disclosure"), _decision_note(study, report)]
    for k, note in enumerate([x for x in notes if x], start=1):
        nte = order.add_segment("NTE")
        nte.nte_1 = str(k)
        nte.nte_3 = escape(note)
    n = 0
    for sub, name in enumerate(SECTION_CODES, start=1):
        code, meaning = SECTION_CODES[name]
        for line in ((report.get("sections") or {}).get(name) or "").strip().splitlines():
            n += 1
            obs = order.add_group("ORU_R01_OBSERVATION")
            obs.obx.obx_1 = str(n)
            obs.obx.obx_2 = "TX"
            obs.obx.obx_3 = f"{code}^{meaning}^LN"
            obs.obx.obx_4 = str(sub)
            obs.obx.obx_5 = escape(line)
            obs.obx.obx_11 = status
    _finding_obx(order, study, report, status, n)
    if withdrawn:  # the whole result, the AI's suggestions included, entered in error
        order.obr.obr_25 = WITHDRAWN
        for obs in order.children:
            if obs.name == "ORU_R01_OBSERVATION":
                obs.obx.obx_11 = WITHDRAWN
    text = m.to_er7()
    parse_message(text, validation_level=2, find_groups=True)  # raises on a malformed message
    return text


def signer_name(report: dict[str, Any], sep: str) -> str:
    """The signer as HL7 names a person (XCN with ``^``, OBR-32's CNN with ``&``): user name
    (the ID), family name, given names, -, -, title (prefix); the user name alone when no
    full name is set (``report_words.signer_parts``)."""
    who = rw.signer_parts(report)
    if who is None:
        return ""
    parts = [who["username"], who["family"], " ".join(who["given"]), "", "", who["title"]]
    return sep.join(escape(x) for x in parts).rstrip(sep)


def _decision_note(study: dict[str, Any], report: dict[str, Any]) -> str:
    """The line naming an undecided AI result's candidates or its conflict ('' otherwise)."""
    return decision_note(report.get("decision"), study.get("task"), language(study))


def _code(task: Any, label: str) -> str:
    """OBX-3 of a label: its code (the task's, as the DICOM objects have it) as CWE."""
    scheme, value, meaning = (
        task.finding_code(label) if task is not None else ("99MEDAI", label, label)
    )
    return "^".join(escape(x) for x in (value, meaning, scheme))


def _finding_obx(
    order: Any, study: dict[str, Any], report: dict[str, Any], status: str, n: int
) -> None:
    """The findings' OBX after the sections' (see the module doc): the signer's, once the
    signature stated labels and the message is a result (F / C); the AI's (always P) only in
    a message that is no result yet."""
    try:
        task = get_task(str(study["task"])) if study.get("task") else None
    except TaskError:
        task = None
    lang = rw.language(study)
    signed = status != "P" and bool(report.get("signed_labels"))
    rows = [
        f
        for f in report.get("findings") or []
        if isinstance(f, dict) and str(f.get("label") or "").strip()
    ]

    def obx(sub: int, label: str, value: str, result: str, methods: list[str]) -> Any:
        nonlocal n
        n += 1
        obs = order.add_group("ORU_R01_OBSERVATION")
        obs.obx.obx_1 = str(n)
        obs.obx.obx_2 = "CWE"
        obs.obx.obx_3 = _code(task, label)
        obs.obx.obx_4 = str(sub)
        obs.obx.obx_5 = value
        obs.obx.obx_11 = result
        for method in methods:  # one repetition each
            obs.obx.add_field("obx_17").value = method
        return obs

    for i, f in enumerate(rows, start=len(SECTION_CODES) + 1):
        label = str(f["label"])
        if signed and f.get("signer") is not None:
            obs = obx(
                i,
                label,
                STATE_CODES["present" if f["signer"] else "absent"],
                status,
                [SIGNER_METHOD],
            )
            if report.get("signed_by"):
                obs.obx.obx_16 = signer_name(report, "^")
        if f.get("state") in STATE_CODES and status == "P":  # a result carries the signer's
            verdict = VERDICT_CODES.get(str(f.get("verdict"))) if signed else None
            obs = obx(
                i, label, STATE_CODES[f["state"]], "P", [AI_METHOD, *([verdict] if verdict else [])]
            )
            words = [f"{rw.words(lang)['col_decision']}: {rw.decision(f, lang, study.get('task'))}"]
            if verdict:
                words.append(rw.verdict(f, lang, study.get("task")))
            for key in ("probability", "threshold"):
                if f.get(key) is not None:
                    words.append(f"{rw.words(lang).get('col_' + key, key)} {float(f[key]):.4f}")
            nte = obs.add_segment("NTE")
            nte.nte_1 = "1"
            nte.nte_3 = escape("; ".join(words))
