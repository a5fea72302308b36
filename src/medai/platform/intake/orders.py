"""Imaging orders from the hospital's RIS/HIS: HL7 v2 ORM^O01 and OMI^O23 (issue 69 §3).

In a hospital the clinical question comes with the order: the RIS sends it before the images
arrive, and not every modality copies it into the DICOM header. An order is kept (sealed) per
accession number and matched to the study of the same accession whichever arrives first:

- the order first: it waits (``waiting``); the study's first instance finds it
  (``match_study``, called by the DICOM intake once the instance is filed);
- the images first: the order finds the study when it comes (``receive_order``).

Both sides try the match after their own transaction commits, so two arriving at the same
moment cannot each miss the other: whichever commits second sees the first. Applying is done
once, under the order row's lock (``waiting`` → ``matched``).

What applying does: the study's question is the order's when the study has none (a question
the modality copied into the header, or the upload form's, is kept); its red flags rank the
study as a header question's do (``question.flags_of``); a STAT priority (HL7 table 0027
``S``) ranks it with them (``reading_order.ORDER_STAT``); the AI's own unsigned draft gains the
clinical information line (a person's edit is never touched: the question shows beside it on
the study page). A study that names another patient than the order's PID-3 gets nothing
(``patient_mismatch``; the log says so, never the IDs).

Where values are read (IHE Radiology's Scheduled Workflow placement first):

- accession: OMI's IPC-1, else OBR-18 (placer field 1), else the filler order number (ORC-3,
  OBR-3): at most 16 characters (DICOM SH) or the message is refused (AE);
- question: OBR-31 (reason for study: each repetition's text, else its code), then OBR-13
  (relevant clinical information), joined with "; ";
- priority: TQ1-9, else ORC-7's or OBR-27's sixth component (HL7 table 0027);
- ordering physician: ORC-12, else OBR-16, as "title given family";
- patient: PID-3's first identifier.

An order control of CA, OC, DC or OD (ORC-1) cancels the order: a waiting one is not applied
to a study that arrives later; one already applied is left as it is (the study's question
was true when it was asked), and the log says so.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medai.core.errors import MedaiError
from medai.platform.access import audit
from medai.platform.access.accounts import internal_account
from medai.platform.context import Platform
from medai.platform.dicom.identity import unseal
from medai.platform.intake.question import flags_of
from medai.platform.reading.review import ai_redraft
from medai.platform.records.db import utcnow
from medai.platform.records.printable import printable
from medai.platform.records.tables import ImagingOrder, Study
from medai.platform.worklist import reading_order
from medai.platform.worklist.versions import current
from medai.services.reports import with_question

log = logging.getLogger("medai.integration")

ACCEPTED = {("ORM", "O01"), ("OMI", "O23")}
CANCELS = frozenset({"CA", "OC", "DC", "OD"})  # ORC-1: the order is cancelled or discontinued
CONTROLS = frozenset({"NW", "XO", "SC", "SN", "RO", "RP", "XX", *CANCELS})
PRIORITIES = ("S", "A", "R", "P", "C", "T")  # HL7 table 0027: stat, asap, routine, …
STAT = "S"
ACCESSION_CHARS = 16  # DICOM SH: what a study's accession can be
QUESTION_CHARS = 2000  # as the upload form's
STATES = ("waiting", "matched", "patient_mismatch", "cancelled")


class OrderError(MedaiError):
    """The message cannot be taken: ``ack`` is the HL7 acknowledgement code it gets (AR: the
    message is not one this receiver takes; AE: this message has an error), ``text`` what the
    sender reads in MSA-3 (never patient data)."""

    def __init__(self, ack: str, text: str) -> None:
        super().__init__(text)
        self.ack, self.text = ack, text


@dataclass(frozen=True)
class Order:
    """One order of a message, as read (``parse``)."""

    message_type: str  # "ORM^O01" | "OMI^O23"
    control_id: str  # MSH-10
    sender: str  # MSH-3^MSH-4 (application^facility), what the allow-list names
    order_control: str  # ORC-1
    accession: str
    patient_id: str | None
    question: str | None
    priority: str | None
    ordering_physician: str | None

    @property
    def cancels(self) -> bool:
        return self.order_control in CANCELS


@dataclass(frozen=True)
class Filed:
    """What became of an order: its row's id, state (``STATES``) and study, if matched."""

    order_id: int
    accession: str
    state: str
    study_id: int | None


# --- reading the message ---------------------------------------------------------------------

_ESCAPES = {"F": "|", "S": "^", "T": "&", "R": "~", "E": "\\"}


def _unescape(text: str) -> str:
    """HL7 escape sequences undone (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\); formatting and hex ones
    (\\H\\, \\X0D\\, …) dropped; what a reader cannot see but a renderer obeys removed."""
    out = re.sub(r"\\([A-Z])([0-9A-F]*)\\", lambda m: _ESCAPES.get(m.group(1), ""), text)
    return printable(out).strip()


class Segment:
    """One segment's fields by position, split with the message's own separators (MSH-1 and
    MSH-2), for messages of any 2.x version (hl7apy has already parsed and checked it)."""

    def __init__(self, er7: str, seps: str) -> None:
        self.name = er7[:3]
        self.seps = seps  # component, repetition, escape, subcomponent
        fields = er7.split(er7[3]) if len(er7) > 3 else [self.name]
        if self.name == "MSH":  # MSH-1 is the field separator itself
            fields = [fields[0], er7[3], *fields[1:]]
        self.fields = fields

    def reps(self, n: int) -> list[str]:
        raw = self.fields[n] if n < len(self.fields) else ""
        return [r for r in raw.split(self.seps[1])] if raw else []

    def comps(self, n: int, rep: int = 0) -> list[str]:
        reps = self.reps(n)
        if rep >= len(reps):
            return []
        return [_unescape(c.split(self.seps[3])[0]) for c in reps[rep].split(self.seps[0])]

    def comp(self, n: int, c: int = 1, rep: int = 0) -> str:
        parts = self.comps(n, rep)
        return parts[c - 1] if c - 1 < len(parts) else ""


def decode(data: bytes) -> str:
    """The message's text in the character set its MSH-18 names: UTF-8 (also when none is
    named), ISO 8859-9 (Latin-5, Turkish) or ISO 8859-1; any other is refused (AR)."""
    head = data.split(b"\r", 1)[0].decode("latin-1")
    charset = ""
    if head.startswith("MSH") and len(head) > 3:
        fields = head.split(head[3])
        charset = fields[17].strip().upper() if len(fields) > 17 else ""
    codec = {
        "": "utf-8",
        "UNICODE UTF-8": "utf-8",
        "UNICODE": "utf-8",
        "ASCII": "utf-8",
        "8859/9": "iso-8859-9",
        "8859/1": "iso-8859-1",
    }.get(charset.split("~")[0])
    if codec is None:
        raise OrderError("AR", f"character set {charset[:20]!r} is not one this receiver reads")
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        raise OrderError("AR", f"the message is not valid {codec}") from None


def parse(text: str) -> list[Order]:
    """The orders of an ORM^O01 or OMI^O23 (one per ORC), each with its OBR (and IPC, TQ1)."""
    from hl7apy.parser import parse_message

    text = text.replace("\r\n", "\r").replace("\n", "\r").strip("\r")
    if not text.startswith("MSH") or len(text) < 8:
        raise OrderError("AR", "not an HL7 v2 message (no MSH segment)")
    try:  # hl7apy checks the structure: separators, segment names, the version's fields
        parse_message(text, validation_level=2, find_groups=False)
    except Exception as exc:  # broad: hl7apy raises many kinds on the sender's text (OrderError AR)
        raise OrderError("AR", f"the message cannot be parsed ({type(exc).__name__})") from None
    seps = text[4:8]
    segments = [Segment(s, seps) for s in text.split("\r") if len(s) >= 3]
    msh = segments[0]
    kind = (msh.comp(9, 1).upper(), msh.comp(9, 2).upper())
    if kind not in ACCEPTED:
        raise OrderError(
            "AR", f"message type {'^'.join(kind)} is not taken here: ORM^O01 or OMI^O23"
        )
    control_id = msh.comp(10)[:64]
    if not control_id:
        raise OrderError("AR", "MSH-10 (message control id) is empty")
    sender = "^".join((msh.comp(3, 1), msh.comp(4, 1)))[:96]
    patient = next((s for s in segments if s.name == "PID"), None)
    patient_id = (patient.comp(3, 1) if patient else "") or None
    orders: list[dict[str, Any]] = []
    for seg in segments[1:]:
        if seg.name == "ORC":
            orders.append({"ORC": seg})
        elif seg.name in ("OBR", "IPC", "TQ1") and orders:
            orders[-1].setdefault(seg.name, seg)
        elif seg.name == "OBR":  # an OBR without an ORC (some 2.3 senders)
            orders.append({"OBR": seg})
    if not orders:
        raise OrderError("AE", "the message holds no order (ORC/OBR)")
    return [
        _order(o, "^".join(kind), control_id, sender, patient_id and patient_id[:64])
        for o in orders
    ]


def _order(
    segs: dict[str, Segment], kind: str, control_id: str, sender: str, patient_id: str | None
) -> Order:
    orc, obr, ipc, tq1 = (segs.get(k) for k in ("ORC", "OBR", "IPC", "TQ1"))
    control = (orc.comp(1) if orc else "NW").upper() or "NW"
    if control not in CONTROLS:
        raise OrderError("AE", f"order control {control[:2]!r} is not one of {sorted(CONTROLS)}")
    accession = next(
        (
            a
            for a in (
                ipc.comp(1) if ipc else "",
                obr.comp(18) if obr else "",
                orc.comp(3) if orc else "",
                obr.comp(3) if obr else "",
            )
            if a
        ),
        "",
    )
    if not accession:
        raise OrderError("AE", "the order has no accession number (IPC-1, OBR-18, ORC-3, OBR-3)")
    if len(accession) > ACCESSION_CHARS:
        raise OrderError(
            "AE", f"the accession number is longer than {ACCESSION_CHARS} characters (DICOM SH)"
        )
    return Order(
        message_type=kind,
        control_id=control_id,
        sender=sender,
        order_control=control,
        accession=accession,
        patient_id=patient_id,
        question=_question(obr),
        priority=_priority(orc, obr, tq1),
        ordering_physician=_physician(orc, obr),
    )


def _question(obr: Segment | None) -> str | None:
    if obr is None:
        return None
    said: list[str] = []
    for rep in range(len(obr.reps(31))):  # CWE: code, text, system, …, original text (9)
        c = obr.comps(31, rep) + [""] * 9
        said.append(c[8] or c[1] or c[0])
    said.append(obr.comp(13))
    parts: list[str] = []
    for s in (" ".join(x.split()) for x in said):
        if s and s not in parts:
            parts.append(s)
    text = "; ".join(parts)
    return text[:QUESTION_CHARS] or None


def _priority(orc: Segment | None, obr: Segment | None, tq1: Segment | None) -> str | None:
    for got in (
        tq1.comp(9) if tq1 else "",
        orc.comp(7, 6) if orc else "",
        obr.comp(27, 6) if obr else "",
    ):
        code = got.strip().upper()[:1]
        if code in PRIORITIES:
            return code
    return None


def _physician(orc: Segment | None, obr: Segment | None) -> str | None:
    for seg, n in ((orc, 12), (obr, 16)):
        if seg is None:
            continue
        c = seg.comps(n) + [""] * 6  # XCN: id, family, given, middle, suffix, prefix
        name = " ".join(x for x in (c[5], c[2], c[3], c[1]) if x) or c[0]
        if name:
            return name[:200]
    return None


# --- filing and matching -------------------------------------------------------------------


def _actor(db: Session, sender: str) -> audit.Actor:
    user = internal_account(db)
    return audit.Actor(name=f"hl7:{sender}"[:64], id=user.id, role=user.role, client=None)


def receive_order(p: Platform, order: Order) -> Filed:
    """Keep the order (a new row, or the accession's row updated by a later message of the
    same order), then match it to its study if that has come."""
    for attempt in range(3):  # two messages of one new accession at once: the second updates
        try:
            with p.db.session() as db:
                row = db.scalar(
                    select(ImagingOrder)
                    .where(ImagingOrder.accession == order.accession)
                    .with_for_update()
                )
                if row is None:
                    row = ImagingOrder(accession=order.accession, state="waiting")
                    db.add(row)
                elif row.state == "matched" and order.cancels:
                    log.warning(
                        "HL7 order %s from %s cancelled after it was applied to study %s: the "
                        "study keeps its question",
                        order.control_id,
                        order.sender,
                        row.study_id,
                    )
                if row.state != "matched":
                    row.state = "cancelled" if order.cancels else "waiting"
                row.patient_key = order.patient_id
                row.question = order.question
                row.priority = order.priority
                row.ordering_physician = order.ordering_physician
                row.order_control = order.order_control
                row.message_type = order.message_type
                row.control_id = order.control_id
                row.sender = order.sender
                row.updated_at = utcnow()
                db.flush()
                audit.record(
                    db,
                    _actor(db, order.sender),
                    "order",
                    "order",
                    row.id,
                    control=order.order_control,
                    message=order.message_type,
                    question=bool(order.question),
                    priority=order.priority,
                )
                order_id = row.id
            break
        except IntegrityError:
            if attempt == 2:
                raise
    return match(p, order.accession) or Filed(order_id, order.accession, "waiting", None)


def match_study(p: Platform, study_id: int) -> Filed | None:
    """A study's instance was filed: the waiting order of its accession, if any, applied."""
    with p.db.reader() as db:
        study = db.get(Study, study_id)
        accession = study.accession if study is not None else None
    return match(p, accession) if accession else None


def match(p: Platform, accession: str) -> Filed | None:
    """Apply the accession's waiting order to the study of that accession, once; None when
    there is no order. Safe to call from both sides at once (see the module)."""
    with p.db.reader() as db:
        row = db.scalar(select(ImagingOrder).where(ImagingOrder.accession == accession))
        if row is None:
            return None
        question, state = row.question, row.state
        found = row.id, row.study_id
    if state != "waiting":
        return Filed(found[0], accession, state, found[1])
    flags = flags_of(p, question)  # the red-flag engine, outside the transaction
    with p.db.session() as db:
        row = cast(  # the order found above
            ImagingOrder,
            db.scalar(
                select(ImagingOrder).where(ImagingOrder.accession == accession).with_for_update()
            ),
        )
        study = db.scalar(
            select(Study).where(Study.accession == accession).order_by(Study.id).limit(1)
        )
        if row.state != "waiting" or study is None:
            return Filed(row.id, accession, row.state, row.study_id)
        db.refresh(study, with_for_update=True)
        actor = _actor(db, row.sender)
        named = unseal(study.patient_key, study.id)
        if row.patient_key and named and named != row.patient_key:
            row.state, row.updated_at = "patient_mismatch", utcnow()
            log.warning(
                "HL7 order %s (accession of study %s) names another patient than the study: "
                "not applied",
                row.control_id,
                study.id,
            )
            audit.record(db, actor, "order", "study", study.id, order=row.id, state=row.state)
            return Filed(row.id, accession, row.state, study.id)
        _apply(db, row, study, flags if row.question == question else flags_of(p, row.question))
        audit.record(
            db,
            actor,
            "order",
            "study",
            study.id,
            order=row.id,
            state=row.state,
            question=bool(study.clinical_question),
            priority=row.priority,
        )
        log.info("HL7 order %s applied to study %s", row.control_id, study.id)
        return Filed(row.id, accession, row.state, study.id)


def _apply(db: Session, row: ImagingOrder, study: Study, flags: tuple[dict[str, Any], ...]) -> None:
    row.state, row.study_id, row.updated_at = "matched", study.id, utcnow()
    reasons = list(study.urgent_because or [])
    if row.question and not (study.clinical_question or "").strip():
        study.clinical_question = row.question
        reasons += [f for f in flags if f not in reasons]
        _question_line(db, study, row.question)
    if row.priority == STAT:
        stat = {"code": reading_order.ORDER_STAT}
        reasons += [stat] if stat not in reasons else []
    if reasons != list(study.urgent_because or []):
        study.urgent_because, study.urgent = reasons, True
    reading_order.refresh(db, study)


def _question_line(db: Session, study: Study, question: str) -> None:
    """The AI's own unsigned draft, made before the order came, gains the clinical
    information line (a new AI version; ``ai_redraft`` keeps a person's edit and a signed
    report as they are)."""
    cur = current(db, study.id)
    if cur is None or cur.source != "ai" or cur.signed_by is not None:
        return
    sections = with_question(dict(cur.sections or {}), question, study.language)
    if sections != cur.sections:
        ai_redraft(
            db,
            study,
            sections,
            list(cur.citations or []),
            list(cur.findings or []),
            cur.ai_result_id,
        )
