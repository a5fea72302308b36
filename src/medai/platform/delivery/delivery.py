"""The delivery loop: claims due outbox rows, sends each to its destination, marks the result.

Runs as threads inside ``medai serve`` (``MEDAI_OUTBOX_THREADS``) or on its own (``medai
outbox run``); several loops, in one process or many, share the work through the rows' leases.
Each row is built and sent by its destination's kind (``destinations``: one module per kind,
found in the registry by the config's ``kind``). Per row: ``delivered`` on the destination's
acknowledgement (and an audit event ``export`` naming the destination); a failure the kind
retries (``DestinationUnavailable``, or an unexpected error) → retried after the back-off;
one it does not (``DestinationRejected``, a message that cannot be built) → ``failed`` for a
person to look at, the row's code one of ``core.errors.CODES`` (``registry.failure_code``).
A destination that was unavailable is left alone for the rest of the pass (its other rows are
not tried against a server known to be down). The clock and the random source are
injectable, so tests move time instead of waiting.
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
from medai.platform.delivery import outbox, payloads
from medai.platform.delivery.destinations import registry
from medai.platform.dicom.identity_conflicts import has_open
from medai.platform.records.leases import worker_name
from medai.platform.records.tables import OutboxItem, Study
from medai.platform.worklist.study_state import RETRACTED

log = logging.getLogger("medai.integration.outbox")
ACTOR = Actor(name="medai-outbox")


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
            d.name: d for d in (p.settings.destinations() if destinations is None else destinations)
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
        s = p.settings.outbox
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
        correction = item.event == outbox.RETRACTED_EVENT  # a retracted study's correction
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
        kind = registry.get(dest.kind)
        try:
            if kind.replaced_by_later:
                with self.p.db.reader() as db:
                    if outbox.superseded(db, item):
                        raise payloads.NothingToSend(
                            "superseded", "a later version already reached this destination"
                        )
            parts = payloads.gather(self.p, item)
            sent = kind.send(kind.build(self.p, item, parts, dest, correction=correction), dest)
        except payloads.NothingToSend as exc:
            return self._final(item, "skipped", exc.code, str(exc), where)
        except Exception as exc:  # broad: a remote peer; the kind classifies it (logged)
            code, reason = registry.failure_code(exc), registry.failure_reason(exc)
            if kind.retryable(exc):
                return self._retry(item, code, reason, where)
            return self._final(item, "failed", code, reason, where)
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
            except Exception as exc:  # broad: the outbox thread outlives any pass (logged)
                log.error("outbox pass failed: %s", type(exc).__name__)
            outbox.WAKE.wait(self.poll_s)
            outbox.WAKE.clear()
