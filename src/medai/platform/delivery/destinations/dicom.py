"""The ``dicom`` kind: DICOM objects C-STOREd to a PACS (pynetdicom) in one association.

What goes is ``payloads``' DICOM objects of the row's event (the findings SR and heatmap, the
signed report's SR and key image note; after a later reading's own objects, the IOCM
rejection note over the earlier readings' that the PACS got, ``payloads.superseding``), or for
a retracted study's correction the IOCM rejection note over what the PACS got; they are filed under the study's DICOM identity, so a
study without one (an uploaded PNG) has nothing for a PACS. ``dicomweb`` sends the same
objects over STOW-RS and shares this module's per-object outcomes.

One call sends a batch and answers one ``StoreOutcome`` per object. Failures are the
registry's two:

- ``DestinationUnavailable``: nothing answered, the connection was lost or the peer asked us
  to come back later (connection refused, timeout, aborted association, transient
  association rejection).
- ``DestinationRejected``: the peer answered and refused (permanent association rejection,
  no accepted presentation context for an object's SOP class, a failure C-STORE status).

Both carry the outcomes known so far (objects stored before the failure stay stored; the
deterministic UIDs of ``dicom_objects`` make a resend of them harmless). Log lines name the
destination and counts, never an object's patient attributes or UIDs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from pydantic import BaseModel
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from medai.destinations_config import DicomDestination
from medai.platform.context import Platform
from medai.platform.delivery import payloads
from medai.platform.delivery.destinations.registry import (
    DestinationKind,
    DestinationRejected,
    DestinationUnavailable,
    register,
)
from medai.platform.records.tables import OutboxItem

log = logging.getLogger("medai.integration.send")

SUCCESS = 0x0000
NOT_SENT = -1  # no accepted presentation context, or the batch stopped before this object


@dataclass(frozen=True)
class StoreOutcome:
    """What the destination said about one object."""

    sop_instance_uid: str
    sop_class_uid: str
    status: int  # DICOM status (0x0000 success, 0xB000/0xB007/0xB006 warnings), or NOT_SENT
    stored: bool

    @property
    def warning(self) -> bool:
        return self.stored and self.status != SUCCESS


def _stored(status: int) -> bool:
    # PS3.7 C.4.2.1.4: success 0x0000; warnings 0x0001, 0xB000, 0xB006, 0xB007 are stored
    return status == SUCCESS or status == 0x0001 or (status & 0xF000) == 0xB000


def uids(ds: Dataset) -> tuple[str, str]:
    return str(ds.SOPInstanceUID), str(ds.SOPClassUID)


def _transfer_syntax(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    return str(getattr(meta, "TransferSyntaxUID", "") or ExplicitVRLittleEndian)


def _rejection_seen(results: list[int]) -> Callable[[Any], None]:
    """An EVT_PDU_RECV handler noting each A-ASSOCIATE-RJ's result (1 permanent, 2
    transient). pynetdicom's requestor can miss a rejection that arrives, and closes the
    connection, before it looks (under load it then reports an abort); the PDU itself is
    still seen here, in the reader's thread, so a refusal is never mistaken for an outage."""
    from pynetdicom.pdu import A_ASSOCIATE_RJ

    def handler(event: Any) -> None:
        if isinstance(event.pdu, A_ASSOCIATE_RJ):
            results.append(int(cast(int, event.pdu.result)))  # a rejection always has a result

    return handler


def c_store(
    objects: Sequence[Dataset],
    ae_title: str,
    host: str,
    port: int,
    *,
    calling_ae: str = "MEDAI",
    timeout: float = 30.0,
) -> list[StoreOutcome]:
    """C-STORE ``objects`` to ``ae_title@host:port`` in one association.

    Returns one outcome per object when all were stored (warnings included); raises
    ``DestinationUnavailable`` / ``DestinationRejected`` otherwise."""
    from pynetdicom import AE, evt

    where = f"{ae_title}@{host}:{port}"
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = timeout
    wanted: dict[str, list[str]] = {}
    for ds in objects:
        syntaxes = wanted.setdefault(str(ds.SOPClassUID), [])
        for ts in (_transfer_syntax(ds), ExplicitVRLittleEndian, ImplicitVRLittleEndian):
            if ts not in syntaxes:
                syntaxes.append(ts)
    if len(wanted) > 128:
        raise ValueError("more than 128 SOP classes in one association")
    for sop_class, syntaxes in wanted.items():
        ae.add_requested_context(sop_class, syntaxes)
    rejections: list[int] = []
    assoc = ae.associate(
        host,
        port,
        ae_title=ae_title,
        evt_handlers=[(evt.EVT_PDU_RECV, _rejection_seen(rejections))],
    )
    not_sent = [StoreOutcome(*uids(ds), NOT_SENT, False) for ds in objects]
    if not assoc.is_established:
        if rejections:  # every rejection, including those pynetdicom's is_rejected misses
            permanent = rejections[0] == 0x01
            log.warning(
                "C-STORE to %s: association rejected (%s)",
                where,
                "permanent" if permanent else "transient",
            )
            kind = DestinationRejected if permanent else DestinationUnavailable
            raise kind(where, "association rejected", not_sent)
        if assoc.rejected_contexts and not assoc.accepted_contexts:
            log.warning("C-STORE to %s: no SOP class of the batch accepted", where)
            raise DestinationRejected(where, "no SOP class of the batch is accepted", not_sent)
        log.warning("C-STORE to %s: no association (down, or aborted)", where)
        raise DestinationUnavailable(where, "could not associate (down or aborted)", not_sent)
    outcomes: list[StoreOutcome] = []
    try:
        accepted = {str(cx.abstract_syntax) for cx in assoc.accepted_contexts}
        for i, ds in enumerate(objects):
            uid, sop_class = uids(ds)
            if sop_class not in accepted:
                outcomes.append(StoreOutcome(uid, sop_class, NOT_SENT, False))
                continue
            reply = assoc.send_c_store(ds)
            status = reply.get("Status") if reply is not None else None
            if status is None:  # no answer: the association was aborted or timed out
                outcomes += not_sent[i:]
                log.warning(
                    "C-STORE to %s: connection lost after %d of %d objects", where, i, len(objects)
                )
                raise DestinationUnavailable(where, "connection lost during C-STORE", outcomes)
            outcomes.append(StoreOutcome(uid, sop_class, int(status), _stored(int(status))))
    finally:
        if assoc.is_established:
            assoc.release()
    return finish(where, "C-STORE", outcomes)


def finish(where: str, how: str, outcomes: list[StoreOutcome]) -> list[StoreOutcome]:
    """``outcomes`` when every object was stored (warnings included); else
    ``DestinationRejected`` naming the statuses of those refused."""
    refused = [o for o in outcomes if not o.stored]
    log.info(
        "%s to %s: %d stored, %d refused", how, where, len(outcomes) - len(refused), len(refused)
    )
    if refused:
        codes = sorted({f"0x{o.status:04X}" if o.status >= 0 else "not sent" for o in refused})
        raise DestinationRejected(
            where, f"{len(refused)} object(s) refused: {', '.join(codes)}", outcomes
        )
    return outcomes


class DicomStore(DestinationKind):
    """A PACS over DICOM C-STORE (``DicomDestination``)."""

    kind = "dicom"
    config: type[BaseModel] = DicomDestination  # DICOMweb's kind has its own
    needs_dicom_identity = True
    codes = (
        *DestinationKind.codes,
        "no_dicom_identity",
        "no_ai_result",
        "nothing_sent",
        "superseded",
    )

    def build(
        self, p: Platform, item: OutboxItem, parts: payloads.Parts, dest: Any, *, correction: bool
    ) -> list[Dataset]:
        if correction:
            return payloads.rejection(p, item, parts)
        if payloads.superseded_reading(p, item):
            raise payloads.NothingToSend(
                "superseded", "a later reading of the study already reached this PACS"
            )
        objects = payloads.dicom_objects(p, item, parts)
        return objects + payloads.superseding(p, item, parts, objects)

    def send(self, payload: list[Dataset], dest: Any) -> int:
        stored = c_store(
            payload,
            dest.ae_title,
            dest.host,
            dest.port,
            calling_ae=dest.calling_ae,
            timeout=dest.timeout_s,
        )
        return len(stored)


KIND = register(DicomStore())
