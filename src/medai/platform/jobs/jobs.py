"""Background jobs with their state in the database, so nothing is lost when a process dies.

A worker claims a job with one conditional UPDATE (queued, or running with an expired lease →
running, its name, a new lease); only one claimer's UPDATE matches. While it works it renews
the lease; if it dies, the lease runs out and another worker — or the restarted server — takes
the job over. The analysis itself is idempotent (``analysis``), so a taken-over job finishes
the work without duplicating it. Urgent studies carry a higher priority and are claimed first.

Two runners share this: ``JobPool`` (threads inside ``medai serve``, the embedded default) and
the Celery task in ``queue`` (``medai worker`` processes on other machines).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import cast

from sqlalchemy import CursorResult, or_, select, update

from medai.core.faults import classify
from medai.platform.context import Platform
from medai.platform.reading import analysis
from medai.platform.records.leases import claim_first, worker_name
from medai.platform.records.tables import Job, Study
from medai.platform.worklist.study_state import set_status

log = logging.getLogger("medai.platform.jobs.jobs")
MAX_ATTEMPTS = 3


def _why(exc: BaseException) -> str:
    """The exception's type and, for a read-only or full disk, which path and why (an
    exception's message is never logged: it can quote patient text)."""
    fault = classify(exc)
    return type(exc).__name__ + (f" ({fault})" if fault is not None else "")


def _claimable(now):
    """Queued and due (a DICOM study's job waits until its instances have settled:
    ``not_before``), or running under a lease that ran out."""
    due = or_(Job.not_before.is_(None), Job.not_before <= now)
    return or_((Job.status == "queued") & due, (Job.status == "running") & (Job.lease_until < now))


def claim(p: Platform, worker: str, lease_s: float, job_id: int | None = None) -> Job | None:
    """Claim one job (the given one, or the most urgent, oldest claimable one)."""
    with p.db.session() as db:
        now = p.clock()
        q = select(Job.id).where(_claimable(now))
        if job_id is not None:
            q = q.where(Job.id == job_id)
        candidates = db.scalars(q.order_by(Job.priority.desc(), Job.id).limit(8)).all()
        jid = claim_first(
            db,
            Job,
            candidates,
            _claimable(now),
            {
                "status": "running",
                "worker": worker,
                "attempts": Job.attempts + 1,
                "lease_until": now + timedelta(seconds=lease_s),
                "started_at": now,
            },
        )
        return db.get(Job, jid) if jid is not None else None


def renew(p: Platform, job_id: int, worker: str, lease_s: float) -> bool:
    with p.db.session() as db:
        done = db.execute(
            update(Job)
            .where(Job.id == job_id, Job.worker == worker, Job.status == "running")
            .values(lease_until=p.clock() + timedelta(seconds=lease_s))
        )
        return cast(CursorResult, done).rowcount == 1  # an UPDATE's result is a CursorResult


def finish(p: Platform, job: Job, worker: str, error: Exception | None = None) -> str:
    """Mark the job done, or requeue it (failed after ``MAX_ATTEMPTS``). A job an instance
    arrived for while it ran (``again``) is queued once more: it read the study without that
    instance (``filing.defer_analysis``)."""
    with p.db.session() as db:
        # the job being finished: its row is there
        row = cast(Job, db.get(Job, job.id, with_for_update=True, populate_existing=True))
        if row.worker != worker or row.status != "running":
            return row.status  # taken over meanwhile: the other worker reports
        row.finished_at = p.clock()
        if error is None and row.again:
            row.status, row.error, row.again, row.attempts = "queued", None, False, 0
        elif error is None:
            row.status, row.error = "done", None
        else:
            row.error = f"{type(error).__name__}"[:400]
            row.status = "failed" if row.attempts >= MAX_ATTEMPTS else "queued"
            if row.status == "failed":
                study = cast(Study, db.get(Study, row.study_id))  # the job's study (foreign key)
                set_status(study, "failed", f"analysis failed: {row.error}")
        return row.status


def run_claimed(p: Platform, job: Job, worker: str, lease_s: float) -> str:
    """Run a claimed job while a heartbeat renews its lease."""
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(lease_s / 3):
            if not renew(p, job.id, worker, lease_s):
                return

    beat = threading.Thread(target=heartbeat, name=f"lease-{job.id}", daemon=True)
    beat.start()
    try:
        analysis.analyse_study(p, job.study_id)  # through the module: tests replace it
    except Exception as exc:  # broad: any failure recorded on the job (logged)
        log.error("job %s for study %s failed: %s", job.id, job.study_id, _why(exc))
        return finish(p, job, worker, exc)
    finally:
        stop.set()
        beat.join(timeout=5)
    return finish(p, job, worker)


def counts(p: Platform) -> dict[str, int]:
    from sqlalchemy import func

    with p.db.session() as db:
        return dict(db.execute(select(Job.status, func.count()).group_by(Job.status)).all())


class JobPool:
    """Analysis threads inside ``medai serve``: woken at once by ``notify`` after an upload,
    and polling so that a job whose worker died (lease expired) is taken over."""

    def __init__(self, p: Platform, threads: int, lease_s: float, poll_s: float = 1.0) -> None:
        self.p, self.threads, self.lease_s, self.poll_s = p, threads, lease_s, poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self.threads):
            t = threading.Thread(target=self._loop, name=f"medai-job-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def notify(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)

    def _loop(self) -> None:
        name = worker_name()
        while not self._stop.is_set():
            try:
                job = claim(self.p, name, self.lease_s)
            except Exception as exc:  # broad: the worker thread outlives any claim failure (logged)
                log.error("job claim failed: %s", _why(exc))
                job = None
            if job is None:
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            run_claimed(self.p, job, name, self.lease_s)

    def drain(self, timeout: float = 120.0) -> bool:
        """Wait until no job is queued or running (tests, benchmarks)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            c = counts(self.p)
            if not c.get("queued") and not c.get("running"):
                return True
            time.sleep(0.1)
        return False
