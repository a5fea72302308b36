"""Pulling new studies from a PACS over DICOMweb (QIDO-RS to find them, WADO-RS to fetch
them), for a hospital whose PACS will not push to the DICOM node.

Every ``every_s`` seconds the puller asks the PACS for the studies of the last
``lookback_days`` days, lists each study's instances, and fetches only the instances medai
does not hold yet (by SOP Instance UID): a second pass fetches nothing, and a study that gains
a series later is completed. A fetched instance is filed exactly as a C-STORE would be
(``receive.store``: bounded, identified, routed, audited, its analysis queued). An instance
whose QIDO attributes already declare more pixels than the decoders allow is not fetched.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select

from medai.core.errors import MedaiError
from medai.platform.context import Platform
from medai.platform.intake import receive
from medai.platform.records.tables import DicomInstance, IdentityConflict
from medai.services.imaging import declared_too_large

log = logging.getLogger("medai.integration")
CALLING = "DICOMWEB"  # what the audit names as the sender of a pulled instance
Dispatch = Callable[[int, int, bool], None]
# the attributes a QIDO-RS instance search is asked for: enough to skip a bomb unfetched
SIZE_FIELDS = ("Rows", "Columns", "NumberOfFrames", "SamplesPerPixel")
_TAGS = {
    "StudyInstanceUID": "0020000D",
    "SeriesInstanceUID": "0020000E",
    "SOPInstanceUID": "00080018",
    "Rows": "00280010",
    "Columns": "00280011",
    "NumberOfFrames": "00280008",
    "SamplesPerPixel": "00280002",
}


class PullError(MedaiError, Exception):
    """The PACS could not be asked (down, refused, not DICOMweb): the pass is retried."""

    code = "pull_failed"


@dataclass
class PullReport:
    studies: int = 0
    fetched: int = 0
    known: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # reason -> count
    queued: list[int] = field(default_factory=list)  # study ids whose analysis was queued

    def as_dict(self) -> dict[str, Any]:
        return {
            "studies": self.studies,
            "fetched": self.fetched,
            "known": self.known,
            "refused": dict(self.refused),
            "queued": list(self.queued),
        }


def _value(item: dict, keyword: str) -> Any:
    values = (item.get(_TAGS[keyword]) or {}).get("Value") or [None]
    return values[0]


def declares_too_much(item: dict) -> bool:
    """Whether the instance's QIDO attributes already declare more pixels than the decoders
    allow (False when the PACS did not say: the filing checks the header itself)."""

    rows, cols = _value(item, "Rows"), _value(item, "Columns")
    if rows is None or cols is None:
        return False
    return declared_too_large(
        int(rows),
        int(cols),
        int(_value(item, "NumberOfFrames") or 1),
        int(_value(item, "SamplesPerPixel") or 1),
    )


def _client(url: str, timeout: float) -> Any:
    """No retry inside a pass: dicomweb-client retries any exception five times with
    exponential waits (a PACS that refuses connections took 30 s to report), while the puller
    already retries at its next pass and names the failure now."""
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(url, timeout=timeout)
    client.set_http_retry_params(retry=False)
    return client


class Puller:
    """One PACS, polled on a schedule (``start``/``stop``) or once (``pull``)."""

    def __init__(
        self,
        p: Platform,
        url: str,
        dispatch: Dispatch | None = None,
        *,
        every_s: float = 60.0,
        lookback_days: int = 1,
        timeout_s: float = 30.0,
        language: str = "tr",
        client: Any = None,
        today: Callable[[], date] = date.today,
    ) -> None:
        self.p, self.url, self.dispatch = p, url.rstrip("/"), dispatch
        self.every_s, self.lookback_days, self.language = every_s, lookback_days, language
        self.today = today
        self._client = client or _client(self.url, timeout_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: PullReport | None = None

    def _studies(self) -> list[str]:
        since = self.today() - timedelta(days=self.lookback_days)
        found = self._client.search_for_studies(
            search_filters={"StudyDate": f"{since:%Y%m%d}-"}, get_remaining=True
        )
        return [uid for uid in (_value(s, "StudyInstanceUID") for s in found) if uid]

    def _instances(self, study_uid: str) -> list[dict]:
        return self._client.search_for_instances(
            study_instance_uid=study_uid, fields=list(SIZE_FIELDS), get_remaining=True
        )

    def _known(self, sop_uids: Iterable[str]) -> set[str]:
        uids = [u for u in sop_uids if u]
        if not uids:
            return set()
        with self.p.db.reader() as db:  # stored, or kept aside as an identity conflict
            return set(
                db.scalars(select(DicomInstance.sop_uid).where(DicomInstance.sop_uid.in_(uids)))
            ) | set(
                db.scalars(
                    select(IdentityConflict.sop_uid).where(IdentityConflict.sop_uid.in_(uids))
                )
            )

    def _fetch(self, study_uid: str, item: dict) -> bytes:
        from pydicom import dcmwrite

        ds = self._client.retrieve_instance(
            study_uid, _value(item, "SeriesInstanceUID"), _value(item, "SOPInstanceUID")
        )
        out = io.BytesIO()
        dcmwrite(out, ds, enforce_file_format=True)
        return out.getvalue()

    def pull(self) -> PullReport:
        """One pass; raises ``PullError`` when the PACS cannot be asked."""
        report = PullReport()
        try:
            study_uids = self._studies()
        except Exception as exc:  # broad: a remote PACS's answer: many types (PullError)
            raise PullError(f"{self.url}: {type(exc).__name__}") from None
        for study_uid in study_uids:
            report.studies += 1
            try:
                items = self._instances(study_uid)
            except Exception as exc:  # broad: a remote PACS's answer: many types (PullError)
                raise PullError(f"{self.url}: {type(exc).__name__}") from None
            known = self._known(_value(i, "SOPInstanceUID") for i in items)
            for item in items:
                if _value(item, "SOPInstanceUID") in known:
                    report.known += 1
                    continue
                if declares_too_much(item):
                    report.refused["too_large"] = report.refused.get("too_large", 0) + 1
                    continue
                self._file(study_uid, item, report)
        self.last = report
        log.info(
            "dicomweb pull %s: studies=%d fetched=%d known=%d refused=%d",
            self.url,
            report.studies,
            report.fetched,
            report.known,
            sum(report.refused.values()),
        )
        return report

    def _file(self, study_uid: str, item: dict, report: PullReport) -> None:
        try:
            data = self._fetch(study_uid, item)
        except Exception as exc:  # broad: a remote PACS: next pass tries (logged)
            name = "fetch_failed"
            report.refused[name] = report.refused.get(name, 0) + 1
            log.warning(
                "dicomweb pull %s: an instance could not be fetched (%s)",
                self.url,
                type(exc).__name__,
            )
            return
        try:
            got = receive.store(self.p, data, CALLING, None, self.language)
        except receive.Refused as exc:  # its text names the rule and attribute, no value
            name = type(exc).__name__.lower()
            report.refused[name] = report.refused.get(name, 0) + 1
            log.warning(
                "dicomweb pull %s: an instance refused with 0x%04X: %s",
                self.url,
                exc.dicom_status,
                exc,
            )
            return
        report.fetched += 1
        if got.job_id is not None:
            report.queued.append(got.study_id)
            if self.dispatch is not None:
                try:
                    self.dispatch(got.study_id, got.job_id, False)
                except Exception as exc:  # broad: the row stays queued (logged)
                    log.error("dispatching study %s failed: %s", got.study_id, type(exc).__name__)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.pull()
            except PullError as exc:
                log.error("dicomweb pull failed: %s (next try in %.0f s)", exc, self.every_s)
            except Exception as exc:  # broad: the puller thread never dies silently (logged)
                log.error("dicomweb pull failed: %s", type(exc).__name__)
            self._stop.wait(self.every_s)

    def start(self) -> Puller:
        self._thread = threading.Thread(target=self._loop, name="medai-dicomweb-pull", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
