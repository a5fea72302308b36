"""Filing a DICOM instance received by the node: bounded, stored, identified, routed, filed
(``filing.file_study``, the same as a browser upload), audited; the analysis is only queued.

Each refusal is named so that the node answers the sender with the matching DICOM failure
status instead of crashing or storing something no one can read: a decompression or size
bomb (``TooLarge``: "Refused: Out of Resources"), a header that lacks its UIDs or whose UIDs
are none (``Unacceptable``: "Data Set does not match SOP Class"), one that cannot be read or
another identity attribute that breaks its VR (``Refused``: "Cannot understand").
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from medai.core.errors import MedaiError
from medai.platform.access import audit
from medai.platform.access.accounts import DICOM_ACCOUNT, internal_account
from medai.platform.context import Platform
from medai.platform.dicom import identity as dicom
from medai.platform.dicom.arrival import Arrival
from medai.platform.dicom.dicom_values import InvalidUID
from medai.platform.intake import orders
from medai.platform.intake.question import flags_of
from medai.platform.intake.routing import route
from medai.platform.records.tables import User
from medai.platform.worklist import filing, held_blobs
from medai.services import imaging as imaging_service

log = logging.getLogger("medai.integration")
ACCOUNT = DICOM_ACCOUNT
"""The account a DICOM-received study is uploaded by: inactive, without a password, so
nobody can sign in as it (a study names a user; the audit names the calling AE title)."""
DICOM_TYPE = "application/dicom"


class Refused(MedaiError, Exception):
    """An instance the node does not file; ``dicom_status`` is the C-STORE failure status
    (never an HTTP answer: STOW-RS names it in its failed SOP sequence)."""

    code = "dicom_refused"
    dicom_status = 0xC000  # Error: Cannot understand


class TooLarge(Refused):
    dicom_status = 0xA700  # Refused: Out of Resources


class Unacceptable(Refused):
    dicom_status = 0xA900  # Error: Data Set does not match SOP Class


class Quarantined(Refused):
    """Kept aside as an identity conflict (``platform.dicom.identity_conflicts``): not merged into
    the study it names, not analysed. The sender gets a failure (its log shows it, and a
    person at the modality or RIS can correct the instance); ``conflict_id`` and ``fields``
    (the disagreeing DICOM keywords) say why."""

    code = "identity_conflict"
    dicom_status = 0xC001  # Error: Cannot understand (C000-CFFF): identity conflict

    def __init__(self, conflict_id: int, study_id: int, reason: str, fields: list[str]) -> None:
        super().__init__(
            f"identity conflict {conflict_id} with study {study_id}: {reason} ({', '.join(fields)})"
        )
        self.conflict_id, self.study_id, self.reason, self.fields = (
            conflict_id,
            study_id,
            reason,
            fields,
        )

    @property
    def comment(self) -> str:
        """The DICOM ErrorComment (LO, at most 64 characters): keywords, never values; the
        reason where no field differs (an instance of a retracted study: ``retracted_study``)."""
        return f"identity conflict: {' '.join(self.fields) or self.reason}"[:64]


@dataclass(frozen=True)
class Received:
    study_id: int
    job_id: int | None
    outcome: str  # new | joined | routed | duplicate | conflict
    task: str | None
    conflict: tuple[int, str, list[str]] | None = None  # id, reason, fields


def account(db) -> User:
    """The node's uploading account, made on first use (inactive, no password)."""
    return internal_account(db, ACCOUNT)


def _sop_name(uid: str) -> str:
    """A SOP class for the log: its name (never an instance's UID or patient attribute)."""
    from pydicom.uid import UID

    try:
        return UID(uid).name or "unknown SOP class"
    except (TypeError, ValueError):  # a UID that does not validate, or not a string
        return "unknown SOP class"


def store(
    p: Platform, data: bytes, calling_ae: str, client: str | None = None, language: str = "tr"
) -> Received:
    """File one received instance (Part 10 bytes: preamble, file meta, dataset)."""
    if len(data) > imaging_service.MAX_BYTES:
        raise TooLarge(f"the instance is larger than {imaging_service.MAX_BYTES:,} bytes")
    try:  # checked before anything is stored
        ident = dicom.checked_read(data)
    except imaging_service.ImageTooLarge as exc:
        raise TooLarge(str(exc)) from None
    except InvalidUID as exc:  # as unidentifiable as an absent UID: the same status
        raise Unacceptable(str(exc)) from None
    except dicom.IdentityError as exc:
        raise Refused(str(exc)) from None
    if ident is None:
        raise Refused("not a DICOM dataset")
    if ident.missing():
        raise Unacceptable(f"the dataset lacks {', '.join(ident.missing())}")
    sha = hashlib.sha256(data).hexdigest()
    existed = p.store.exists(sha)
    p.store.put_bytes(data)
    try:
        got = _file(p, sha, len(data), ident, calling_ae, client, language)
    except BaseException:  # broad: the new blob discarded on any exit, re-raised
        if not existed:  # only the caller that created the blob may take it away
            held_blobs.discard_unnamed(p, sha, "a refused instance")
        raise
    if got.conflict is not None:  # recorded (committed): the sender is told it failed
        raise Quarantined(got.conflict[0], got.study_id, got.conflict[1], got.conflict[2])
    if got.outcome == "new":  # an order that came first (HL7, ``orders``) finds its study
        orders.match_study(p, got.study_id)
    if got.outcome == "duplicate" and not existed:
        # the same instance in other bytes (another transfer syntax): the stored copy is kept,
        # these bytes are not
        held_blobs.discard_unnamed(p, sha, "a resent instance")
    return got


def _file(
    p: Platform,
    sha: str,
    size: int,
    ident: dicom.DicomIdentity,
    calling_ae: str,
    client: str | None,
    language: str,
) -> Received:
    chosen = route(ident)
    question = ident.clinical_question or None
    flags = flags_of(p, question)
    for attempt in range(3):  # a concurrent first instance of the same study wins once
        try:
            with p.db.session() as db:
                user = account(db)
                actor = audit.Actor(
                    name=f"dicom:{calling_ae}"[:64], id=user.id, role=user.role, client=client
                )
                arrival = Arrival(
                    sha=sha,
                    size=size,
                    content_type=DICOM_TYPE,
                    task=chosen.task,
                    uploaded_by=user.id,
                    identity=ident,
                    source="dicom",
                    calling_ae=calling_ae,
                    received_at=p.clock(),
                    stable_s=p.settings.serving.study_stable_s,
                    no_model_reason=chosen.reason,
                    language=language,
                    # the order's question as the modality copied it into the header: kept
                    # sealed, its red flags rank the study, the draft states it
                    question=question,
                    urgent=bool(flags),
                    red_flags=flags,
                )
                filed = filing.receive(
                    db,
                    p.store,
                    actor,
                    arrival,
                    audit_detail=lambda f: {
                        "source": "dicom",
                        "task": f.study.task or None,
                        "filed": f.outcome,
                        "sop_class": ident.sop_class,
                        "bytes": size,
                    },
                )
                conflict = filed.conflict
                out = Received(
                    filed.study.id,
                    filed.job.id if filed.job else None,
                    filed.outcome,
                    filed.study.task or None,
                    (conflict.id, conflict.reason, list(conflict.fields)) if conflict else None,
                )
            break
        except IntegrityError:
            if attempt == 2:
                raise
            log.info(
                "C-STORE from %s: another association filed this study or instance "
                "first; filing again",
                calling_ae,
            )
    if out.conflict is not None:
        log.warning(
            "C-STORE from %s: instance quarantined as identity conflict %s with study %s (%s: %s)",
            calling_ae,
            out.conflict[0],
            out.study_id,
            out.conflict[1],
            ", ".join(out.conflict[2]),
        )
    else:
        log.info(
            "C-STORE from %s: study %s %s (%s, %s)",
            calling_ae,
            out.study_id,
            out.outcome,
            _sop_name(ident.sop_class),
            out.task or "no model",
        )
    return out
