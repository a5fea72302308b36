"""The ``hl7`` kind: a report as an HL7 v2.5.1 ORU^R01 over MLLP, for hospitals whose
information system takes no FHIR. Its destinations take the ``signed`` event unless they name
others (``Hl7Destination.events``); a later event's message replaces the earlier result, so a
row retried after a later one reached the receiver is skipped as ``superseded``.

The message (built with hl7apy, and parsed back by it before it leaves):

    MSH  sending/receiving application and facility, the signing time, ORU^R01^ORU_R01, the
         message control id (derived from the event and the destination: a resend carries the
         same one, so a receiver that already took it can tell), P, 2.5.1, UNICODE UTF-8
    PID  the DICOM PatientID (MR) and the medai patient reference (PI); the patient's name,
         birth date (PID-7) and sex (PID-8) where known
    OBR  the accession number as filler order number, LOINC 18748-4, the study date, the
         result time, RAD, result status P (AI draft) / F (signed) / C (signed amendment),
         the signer (OBR-32: user name, family and given names, title as prefix)
    NTE  the report's disclosure (AI-assisted or written by hand)
    OBX  one TX line per line of each section: technique 55111-9, findings 59776-5,
         impression 19005-8, recommendation 18783-1 (TID 2000's LOINC headings)
    OBX  the findings, one CWE per label, as ``finding_states`` gives them (never re-derived):
         after sign-off the signer's only (OBX-3 the label's code, OBX-5 SNOMED CT Present or
         Absent, OBX-11 F, or C in an amendment — the whole message replaces the earlier
         result —, OBX-16 the signer, OBX-17 "stated by the signing radiologist"): the AI's
         coded suggestions are left out of a result (issue 59: a receiver that reads OBX-5
         without OBX-11 would take an AI "Present" the signer rejected for a finding; the NTE
         still says the report was AI-assisted). Before sign-off (result status P) the AI's
         suggestions, OBX-11 P and OBX-17 "AI model suggestion", OBX-5 the AI's state (Present
         / Absent / Indeterminate), an NTE with its why, probability and threshold.

A retracted study's correction (``withdrawn``, ``platform.retraction``) is the same message of
the newest version the receiver got, with result status W (withdrawn: "the result was entered
in error") in OBR-25 and in every OBX-11, under its own control id.

MLLP: the message framed by 0x0B … 0x1C 0x0D on a TCP connection; the receiver's ACK is
parsed: MSA-1 AA/CA is delivered; AR (the receiver says it cannot take messages now) is
``DestinationUnavailable``; AE/CE/CR are ``DestinationRejected``; no ACK, a closed or refused
connection, or an ACK for another message is ``DestinationUnavailable``. Nothing of the
message or of the ACK's text is logged.
"""

from __future__ import annotations

import hashlib
import logging
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from medai.core.task_registry import TaskError
from medai.core.task_registry import get as get_task
from medai.destinations_config import Hl7Destination
from medai.platform.context import Platform
from medai.platform.delivery import payloads
from medai.platform.delivery.destinations.registry import (
    DestinationKind,
    DestinationRejected,
    DestinationUnavailable,
    register,
)
from medai.platform.dicom.dicom_values import outgoing_study
from medai.platform.dicom.identity import name_parts
from medai.platform.documents import report_words as rw
from medai.platform.documents.report_words import decision_note, language
from medai.platform.records.printable import printable, printable_tree
from medai.platform.records.tables import OutboxItem

log = logging.getLogger("medai.integration.send")
START, END = b"\x0b", b"\x1c\x0d"
MAX_ACK_BYTES = 1 << 20
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
        n = name_parts(dicom["patient_name"])
        given = n["given"] + ["", ""]
        pid.pid_5 = "^".join(
            escape(x)
            for x in (n["family"], given[0], given[1], " ".join(n["suffix"]), " ".join(n["prefix"]))
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


def _ack(data: bytes, control_id: str, where: str) -> str:
    from hl7apy.parser import parse_message

    try:
        ack = parse_message(
            data.decode("utf-8", errors="replace").strip("\r\n"),
            validation_level=2,
            find_groups=False,
        )
        code = str(ack.msa.msa_1.value).strip()
        acked = str(ack.msa.msa_2.value).strip()
    except Exception:  # not an HL7 ACK at all
        raise DestinationUnavailable(where, "the answer is not an HL7 ACK") from None
    if acked != control_id:
        raise DestinationUnavailable(where, "the ACK is for another message")
    if code in ("AA", "CA"):
        return code
    if code == "AR":
        raise DestinationUnavailable(where, "negative ACK AR (receiver not taking messages)")
    raise DestinationRejected(where, f"negative ACK {code[:2] or '?'}")


def mllp_send(message: str, host: str, port: int, control_id: str, *, timeout: float = 30.0) -> str:
    """Send one message and wait for its ACK; the ACK code (AA or CA)."""
    where = f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(START + message.encode("utf-8") + END)
            buf = b""
            while END not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    raise DestinationUnavailable(where, "connection closed before the ACK")
                buf += chunk
                if len(buf) > MAX_ACK_BYTES:
                    raise DestinationRejected(where, "the answer is larger than 1 MiB")
    except (TimeoutError, OSError) as exc:
        log.warning("HL7 to %s: %s", where, type(exc).__name__)
        raise DestinationUnavailable(where, type(exc).__name__) from None
    start = buf.find(START)
    code = _ack(buf[start + 1 if start >= 0 else 0 : buf.index(END)], control_id, where)
    log.info("HL7 to %s: ACK %s", where, code)
    return code


def control_id(item: OutboxItem) -> str:
    """The message control id of a row (MSH-10, 20 characters): the same on every resend of
    the event to that destination."""
    return "MD" + hashlib.sha256(f"{item.event_key}|{item.destination}".encode()).hexdigest()[:18]


@dataclass(frozen=True)
class Oru:
    """An ORU^R01 ready to go: its ER7 text and the control id its ACK must name."""

    text: str
    control_id: str


class Hl7Mllp(DestinationKind):
    """An HL7 v2 receiver over MLLP (``Hl7Destination``)."""

    kind = "hl7"
    config = Hl7Destination
    replaced_by_later = True
    codes = (*DestinationKind.codes, "superseded")

    def build(
        self, p: Platform, item: OutboxItem, parts: payloads.Parts, dest: Any, *, correction: bool
    ) -> Oru:
        cid = control_id(item)
        text = oru_r01(
            parts.study,
            parts.report,
            control_id=cid,
            sending_application=dest.sending_application,
            sending_facility=dest.sending_facility or p.settings.outbox.institution_name,
            receiving_application=dest.receiving_application,
            receiving_facility=dest.receiving_facility,
            withdrawn=correction,
        )
        return Oru(text, cid)

    def send(self, payload: Oru, dest: Any) -> int:
        mllp_send(payload.text, dest.host, dest.port, payload.control_id, timeout=dest.timeout_s)
        return 1


KIND = register(Hl7Mllp())
