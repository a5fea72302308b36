"""The ``dicomweb`` kind: the ``dicom`` kind's objects sent to a DICOMweb service by STOW-RS
(dicomweb-client) in one request, with its per-object outcomes and its two failures:
``DestinationUnavailable`` for no answer or HTTP 5xx/429/408, ``DestinationRejected`` for any
other HTTP 4xx or a FailedSOPSequence. The client's own retries are off: retrying is the
outbox's."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pydicom.dataset import Dataset

from medai.destinations_config import DicomWebDestination
from medai.platform.delivery.destinations.dicom import (
    NOT_SENT,
    SUCCESS,
    DicomStore,
    StoreOutcome,
    finish,
    uids,
)
from medai.platform.delivery.destinations.registry import (
    DestinationRejected,
    DestinationUnavailable,
    register,
)

log = logging.getLogger("medai.integration.send")

STOW_FAILED = 0xC000  # a FailedSOPSequence item without a FailureReason


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
        uid, sop_class = uids(ds)
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
    except Exception as exc:  # broad: pydicom on a remote peer's body raises many types (logged)
        log.warning(
            "STOW-RS reply is not DICOM JSON (%s): no per-instance status", type(exc).__name__
        )
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
    not_sent = [StoreOutcome(*uids(ds), NOT_SENT, False) for ds in objects]
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
    return finish(url, "STOW-RS", _stow_outcomes(objects, reply))


class DicomWebStow(DicomStore):
    """A PACS over DICOMweb STOW-RS (``DicomWebDestination``): the same objects as C-STORE."""

    kind = "dicomweb"
    config = DicomWebDestination

    def send(self, payload: list[Dataset], dest: Any) -> int:
        return len(stow_rs(payload, dest.url, timeout=dest.timeout_s))


KIND = register(DicomWebStow())
