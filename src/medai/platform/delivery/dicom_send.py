"""Send DICOM objects to a PACS: C-STORE (pynetdicom) or STOW-RS (dicomweb-client).

One call sends a batch and answers one ``StoreOutcome`` per object. Failures are named so
that the outbox (which owns retries) can tell the two cases apart:

- ``DestinationUnavailable``: nothing answered, the connection was lost or the peer asked us
  to come back later (connection refused, timeout, aborted association, transient
  association rejection, HTTP 5xx/429/408). Retrying later may succeed.
- ``DestinationRejected``: the peer answered and refused (permanent association rejection,
  no accepted presentation context for an object's SOP class, a failure C-STORE status,
  HTTP 4xx, a STOW-RS FailedSOPSequence). Resending the same object will not help; a
  person must look.

Both carry the outcomes known so far (objects stored before the failure stay stored; the
deterministic UIDs of ``dicom_objects`` make a resend of them harmless). Log lines name the
destination and counts, never an object's patient attributes or UIDs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from medai.core.errors import MedaiError

log = logging.getLogger("medai.integration.send")

SUCCESS = 0x0000
NOT_SENT = -1  # no accepted presentation context, or the batch stopped before this object
STOW_FAILED = 0xC000  # a FailedSOPSequence item without a FailureReason


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


@dataclass
class SendError(MedaiError, Exception):
    """A batch that did not fully arrive; ``outcomes`` lists what is known per object."""

    code = "send_failed"

    destination: str
    reason: str
    outcomes: list[StoreOutcome] = field(default_factory=list)

    def __str__(self) -> str:
        stored = sum(o.stored for o in self.outcomes)
        return f"{self.destination}: {self.reason} ({stored}/{len(self.outcomes)} stored)"


class DestinationUnavailable(SendError):
    """The destination is down or lost the connection: try again later."""

    code = "destination_unavailable"


class DestinationRejected(SendError):
    """The destination answered and refused an object or the association."""

    code = "destination_rejected"


def _stored(status: int) -> bool:
    # PS3.7 C.4.2.1.4: success 0x0000; warnings 0x0001, 0xB000, 0xB006, 0xB007 are stored
    return status == SUCCESS or status == 0x0001 or (status & 0xF000) == 0xB000


def _uids(ds: Dataset) -> tuple[str, str]:
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
            results.append(int(event.pdu.result))

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
    not_sent = [StoreOutcome(*_uids(ds), NOT_SENT, False) for ds in objects]
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
            uid, sop_class = _uids(ds)
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
    return _finish(where, "C-STORE", outcomes)


def _finish(where: str, how: str, outcomes: list[StoreOutcome]) -> list[StoreOutcome]:
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


def _stow_outcomes(objects: Sequence[Dataset], reply: Dataset | None) -> list[StoreOutcome]:
    """Per-object outcomes from a STOW-RS response (PS3.18 Table 10.5.3-1): referenced items
    are stored (a WarningReason kept as their status), failed items carry FailureReason,
    objects the response does not mention were not stored."""
    status: dict[str, int] = {}
    for item in getattr(reply, "ReferencedSOPSequence", None) or []:
        status[str(item.ReferencedSOPInstanceUID)] = int(item.get("WarningReason", SUCCESS))
    failed: dict[str, int] = {}
    for item in getattr(reply, "FailedSOPSequence", None) or []:
        failed[str(item.ReferencedSOPInstanceUID)] = int(item.get("FailureReason", STOW_FAILED))
    outcomes = []
    for ds in objects:
        uid, sop_class = _uids(ds)
        if uid in failed:
            outcomes.append(StoreOutcome(uid, sop_class, failed[uid], False))
        elif uid in status:
            outcomes.append(StoreOutcome(uid, sop_class, status[uid], True))
        else:
            outcomes.append(StoreOutcome(uid, sop_class, NOT_SENT, False))
    return outcomes


def _reply_dataset(response) -> Dataset | None:
    try:
        return Dataset.from_json(response.json())
    except Exception:  # not DICOM JSON (an HTML error page, empty body)
        return None


def stow_rs(
    objects: Sequence[Dataset], url: str, *, timeout: float = 30.0, session=None
) -> list[StoreOutcome]:
    """STOW-RS ``objects`` to the DICOMweb service at ``url`` (its root, e.g.
    ``http://pacs/dicom-web``) in one request; outcomes and errors as ``c_store``. The
    client's own retries are off: retrying is the outbox's."""
    import requests
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(url, session=session, timeout=timeout)
    client.set_http_retry_params(retry=False)
    not_sent = [StoreOutcome(*_uids(ds), NOT_SENT, False) for ds in objects]
    try:
        reply = client.store_instances(list(objects))
    except requests.HTTPError as exc:
        response = exc.response
        code = response.status_code if response is not None else 0
        outcomes = (
            _stow_outcomes(objects, _reply_dataset(response)) if response is not None else not_sent
        )
        log.warning("STOW-RS to %s: HTTP %d", url, code)
        if code >= 500 or code in (408, 429):
            raise DestinationUnavailable(url, f"HTTP {code}", outcomes) from None
        raise DestinationRejected(url, f"HTTP {code}", outcomes) from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        log.warning("STOW-RS to %s: %s", url, type(exc).__name__)
        raise DestinationUnavailable(url, type(exc).__name__, not_sent) from None
    return _finish(url, "STOW-RS", _stow_outcomes(objects, reply))
