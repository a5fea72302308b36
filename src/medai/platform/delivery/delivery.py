"""The delivery loop: claims due outbox rows, sends each to its destination, marks the result.

Runs as threads inside ``medai serve`` (``MEDAI_OUTBOX_THREADS``) or on its own (``medai
outbox run``); several loops, in one process or many, share the work through the rows' leases.
Per row: ``delivered`` on the destination's acknowledgement (and an audit event ``export``
naming the destination); ``DestinationUnavailable`` (or an unexpected error) → retried after
the back-off; ``DestinationRejected`` or an object that cannot be built → ``failed`` for a
person to look at. A destination that was unavailable is left alone for the rest of the pass
(its other rows are not tried against a server known to be down). The clock and the random
source are injectable, so tests move time instead of waiting.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from medai.platform.access.audit import Actor, record
from medai.platform.context import Platform
from medai.platform.delivery import fhir_send, hl7_send, outbox, payloads
from medai.platform.delivery.dicom_send import (
    DestinationRejected,
    DestinationUnavailable,
    c_store,
    stow_rs,
)
from medai.platform.dicom.identity_conflicts import has_open
from medai.platform.documents.dicom_objects import DicomObjectError
from medai.platform.records.leases import worker_name
from medai.platform.records.tables import OutboxItem, Study
from medai.platform.worklist.studies import RETRACTED

log = logging.getLogger("medai.integration.outbox")
ACTOR = Actor(name="medai-outbox")
PERMANENT = (DicomObjectError, LookupError, FileNotFoundError, ValueError)
"""Errors building a message that a retry will not cure (a person must look)."""


def send(p: Platform, item: OutboxItem, dest: Any) -> int:
    """Build the row's message(s) for ``dest`` and send them; how many were acknowledged.
    Raises the destination's errors, or ``payloads.NothingToSend``."""
    parts = payloads.gather(p, item)
    retracted = item.event == outbox.RETRACTED_EVENT  # the correction of a retracted study
    if dest.kind in outbox.DICOM_KINDS:
        objects = (
            payloads.rejection(p, item, parts)
            if retracted
            else payloads.dicom_objects(p, item, parts)
        )
        if dest.kind == "dicom":
            return len(
                c_store(
                    objects,
                    dest.ae_title,
                    dest.host,
                    dest.port,
                    calling_ae=dest.calling_ae,
                    timeout=dest.timeout_s,
                )
            )
        return len(stow_rs(objects, dest.url, timeout=dest.timeout_s))
    if dest.kind == "fhir":
        bundle = fhir_send.transaction(
            payloads.fhir_bundle(parts, entered_in_error=retracted), dest.url, dest.id_prefix
        )
        return fhir_send.send(
            bundle, dest.url, where=dest.where, timeout=dest.timeout_s, token_env=dest.token_env
        )
    if dest.kind == "hl7":
        settings = payloads.settings()
        cid = outbox.control_id(item)
        message = hl7_send.oru_r01(
            parts.study,
            parts.report,
            control_id=cid,
            sending_application=dest.sending_application,
            sending_facility=dest.sending_facility or settings.institution_name,
            receiving_application=dest.receiving_application,
            receiving_facility=dest.receiving_facility,
            withdrawn=retracted,
        )
        hl7_send.mllp_send(message, dest.host, dest.port, cid, timeout=dest.timeout_s)
        return 1
    raise ValueError(f"unknown destination kind {dest.kind!r}")


class DeliveryLoop:
    """Delivers the outbox to the configured destinations (``destinations``: the settings'
    by default). ``run_once`` is one pass (tests call it with a moved clock); ``start`` runs
    passes in threads until ``stop``, woken early by ``outbox.WAKE``."""

    def __init__(
        self,
        p: Platform,
        *,
        destinations: Iterable[Any] | None = None,
        threads: int = 1,
        lease_s: float = 300.0,
        poll_s: float = 5.0,
        backoff: outbox.Backoff | None = None,
        clock: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
        after_send: Callable[[OutboxItem], None] | None = None,
        name: str = "outbox",
    ) -> None:
        self.p = p
        self.destinations = {
            d.name: d for d in (outbox.configured() if destinations is None else destinations)
        }
        self.threads, self.lease_s, self.poll_s = threads, lease_s, poll_s
        self.backoff = backoff or outbox.Backoff()
        self.clock = clock or p.clock
        self.rng = rng or random.Random()
        self.after_send = after_send  # tests: a crash between sending and marking
        self.worker = worker_name(name)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @classmethod
    def from_settings(cls, p: Platform, **options: Any) -> DeliveryLoop:
        from medai.settings import get_settings

        s = get_settings()
        options.setdefault("threads", s.outbox_threads)
        return cls(
            p,
            lease_s=s.outbox_lease_s,
            poll_s=s.outbox_poll_s,
            backoff=outbox.Backoff(s.outbox_retry_s, s.outbox_retry_max_s),
            **options,
        )

    # --- one pass -------------------------------------------------------------------------

    def run_once(self, limit: int | None = None) -> dict[str, int]:
        """Deliver due rows until none is left (or ``limit`` rows were handled); the count
        of each outcome."""
        counts: dict[str, int] = {}
        down: set[str] = set()
        while limit is None or sum(counts.values()) < limit:
            with self.p.db.session() as db:
                item = outbox.claim(
                    db,
                    self.worker,
                    self.clock(),
                    self.lease_s,
                    skip=down,
                    only=list(self.destinations),
                )
                if item is not None:
                    db.expunge(item)
            if item is None:
                break
            outcome = self.deliver(item)
            counts[outcome] = counts.get(outcome, 0) + 1
            if outcome == "retrying":
                down.add(item.destination)
        return counts

    def deliver(self, item: OutboxItem) -> str:
        """Send one claimed row and record what happened: delivered, retrying, failed or
        skipped."""
        dest = self.destinations[item.destination]
        where = f"delivery {item.id} ({item.event}, {item.kind}) to {item.destination}"
        correction = item.event == outbox.RETRACTED_EVENT
        with self.p.db.reader() as db:  # a conflict recorded since the claim: not sent
            held = not correction and has_open(db, item.study_id)
            study = db.get(Study, item.study_id)
            retracted = study is not None and study.status == RETRACTED
        if retracted and not correction:  # retracted since it was queued: never sent
            return self._final(item, "skipped", "retracted", outbox.RETRACTED_REASON, where)
        if held:
            with self.p.db.session() as db:
                outbox.mark_held(db, item.id, self.worker, self.clock())
            log.info("%s: held (the study has an open identity conflict)", where)
            return "held"
        try:
            if dest.kind in ("fhir", "hl7"):
                with self.p.db.reader() as db:
                    if outbox.superseded(db, item):
                        raise payloads.NothingToSend(
                            "superseded", "a later version already reached this destination"
                        )
            sent = send(self.p, item, dest)
        except payloads.NothingToSend as exc:
            return self._final(item, "skipped", exc.code, str(exc), where)
        except DestinationRejected as exc:
            return self._final(item, "failed", "rejected", exc.reason, where)
        except DestinationUnavailable as exc:
            return self._retry(item, "unavailable", exc.reason, where)
        except PERMANENT as exc:
            return self._final(item, "failed", "cannot_build", type(exc).__name__, where)
        except Exception as exc:  # a storage fault, a bug: kept, retried, visible to admins
            return self._retry(item, "error", type(exc).__name__, where)
        if self.after_send is not None:
            self.after_send(item)
        now = self.clock()
        with self.p.db.session() as db:
            if outbox.mark_delivered(db, item.id, self.worker, now, sent):
                record(
                    db,
                    ACTOR,
                    "export",
                    "study",
                    item.study_id,
                    format=item.kind,
                    destination=item.destination,
                    event=item.event,
                    version=item.report_version,
                    outbox=item.id,
                )
        log.info("%s: delivered (%d acknowledged, attempt %d)", where, sent, item.attempts)
        return "delivered"

    def _retry(self, item: OutboxItem, code: str, reason: str, where: str) -> str:
        delay = self.backoff.delay(item.attempts, self.rng)
        with self.p.db.session() as db:
            outbox.mark_retry(db, item.id, self.worker, self.clock(), delay, code, reason)
        log.warning(
            "%s: %s (%s); attempt %d, next in %.0f s", where, code, reason, item.attempts, delay
        )
        return "retrying"

    def _final(self, item: OutboxItem, state: str, code: str, reason: str, where: str) -> str:
        with self.p.db.session() as db:
            outbox.mark_final(db, item.id, self.worker, self.clock(), state, code, reason)
        (log.warning if state == "failed" else log.info)(
            "%s: %s (%s: %s)", where, state, code, reason
        )
        return state

    # --- threads ----------------------------------------------------------------------------

    def start(self) -> DeliveryLoop:
        for i in range(self.threads):
            t = threading.Thread(target=self._loop, name=f"medai-outbox-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        outbox.WAKE.set()
        for t in self._threads:
            t.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # database briefly away: next round
                log.error("outbox pass failed: %s", type(exc).__name__)
            outbox.WAKE.wait(self.poll_s)
            outbox.WAKE.clear()
