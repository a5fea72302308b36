"""The ``hl7`` kind: a report as an HL7 v2.5.1 ORU^R01 over MLLP, for hospitals whose
information system takes no FHIR. Its destinations take the ``signed`` event unless they name
others (``Hl7Destination.events``); a later event's message replaces the earlier result, so a
row retried after a later one reached the receiver is skipped as ``superseded``.

The message (``documents.hl7.oru.oru_r01``: built with hl7apy, and parsed back by it before it
leaves):

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

A retracted study's correction (``withdrawn``, ``platform.reading.retraction``) is the same message
of the newest version the receiver got, with result status W (withdrawn: "the result was entered
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
from typing import Any

from medai.destinations_config import Hl7Destination
from medai.platform.context import Platform
from medai.platform.delivery import payloads
from medai.platform.delivery.destinations.registry import (
    DestinationKind,
    DestinationRejected,
    DestinationUnavailable,
    register,
)
from medai.platform.documents.hl7.oru import oru_r01
from medai.platform.records.tables import OutboxItem

log = logging.getLogger("medai.integration.send")


START, END = b"\x0b", b"\x1c\x0d"


MAX_ACK_BYTES = 1 << 20


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
    except Exception:  # broad: hl7apy raises many types (DestinationUnavailable)
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
