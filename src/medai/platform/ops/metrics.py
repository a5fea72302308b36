"""What the database says, for ``GET /metrics`` (``server.metrics``): read at each scrape, so
every replica of ``serve`` reports the same truth and nothing here is kept per process.

- the job queues: analysis jobs (``jobs``, the ``cpu`` queue) and retraining and validation
  runs (``model_jobs``, the ``training`` queue) queued, running and failed, running ones whose
  lease ran out (their worker died: another takes them over), the oldest queued one's age;
- the outbox per destination: rows waiting (queued, retrying, held by an identity conflict,
  being sent), failed ones (a person must look: the dead letters), the oldest waiting row's
  age and the most attempts a waiting row has had;
- open drift alerts (``monitor_alerts``) per task and kind;
- the registry's active and shadow models (task, name, version, short content hash);
- apart from the database: the expiry of the site's TLS certificates (``CertificateWatch``).

Counts and ids only, never patient data. A few small ``COUNT … GROUP BY`` queries on indexed
states (delivered outbox rows and finished jobs, which only grow, are not counted). They run in
a thread bounded by ``timeout_s`` (and, on PostgreSQL, a statement timeout): a database that is
down or slow makes ``medai_database_up`` 0 and leaves these metrics out, and the scrape still
answers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select, text

from medai.platform.dicom.identity_conflicts import open_conflict_clause
from medai.platform.records.db import Database, utcnow
from medai.platform.records.tables import Job, ModelJob, OutboxItem
from medai.platform.records.tables_lifecycle import MonitorAlert, RegisteredModel
from medai.settings import Settings

log = logging.getLogger("medai.platform.ops.metrics")

JOB_STATES = ("queued", "running", "failed")
OUTBOX_STATES = ("queued", "retrying", "held", "sending", "failed")
ALERT_KINDS = ("input", "output", "metadata", "agreement")
# the Celery queue each table's jobs are published on (platform.jobs.queue)
QUEUE_OF = {"jobs": "cpu", "model_jobs": "training"}


@dataclass
class Snapshot:
    """One scrape's reading of the database."""

    jobs: dict[tuple[str, str], int] = field(default_factory=dict)  # (queue, state) → n
    expired: dict[str, int] = field(default_factory=dict)  # queue → running, lease ran out
    oldest_queued: dict[str, float] = field(default_factory=dict)  # queue → seconds
    outbox: dict[tuple[str, str], int] = field(default_factory=dict)  # (destination, state)
    outbox_oldest: dict[str, float] = field(default_factory=dict)
    outbox_attempts: dict[str, int] = field(default_factory=dict)
    destinations: list[str] = field(default_factory=list)
    alerts: dict[tuple[str, str], int] = field(default_factory=dict)  # (task, kind) → n
    models: list[tuple[str, str, str, str, str]] = field(default_factory=list)


def _age(now: datetime, then: datetime | None) -> float:
    return max(0.0, (now - then).total_seconds()) if then is not None else 0.0


def _jobs(db, snap: Snapshot, now: datetime) -> None:
    for table, model in (("jobs", Job), ("model_jobs", ModelJob)):
        queue = QUEUE_OF[table]
        for state in JOB_STATES:
            snap.jobs[(queue, state)] = 0
        for state, n, oldest in db.execute(
            select(model.status, func.count(), func.min(model.created_at))
            .where(model.status.in_(JOB_STATES))
            .group_by(model.status)
        ):
            snap.jobs[(queue, state)] = n
            if state == "queued":
                snap.oldest_queued[queue] = _age(now, oldest)
        snap.oldest_queued.setdefault(queue, 0.0)
        snap.expired[queue] = (
            db.scalar(
                select(func.count())
                .select_from(model)
                .where(model.status == "running", model.lease_until < now)
            )
            or 0
        )


def _outbox(db, snap: Snapshot, now: datetime, destinations: Callable[[], Iterable[str]]) -> None:
    try:
        snap.destinations = list(destinations())
    except Exception as exc:  # broad: settings' many types: a scrape never fails (logged)
        log.error("metrics: destinations unreadable: %s", type(exc).__name__)
    for name in snap.destinations:
        for state in OUTBOX_STATES:
            snap.outbox[(name, state)] = 0
        snap.outbox_oldest[name], snap.outbox_attempts[name] = 0.0, 0
    held = open_conflict_clause(OutboxItem.study_id)
    rows = db.execute(
        select(
            OutboxItem.destination,
            OutboxItem.state,
            OutboxItem.attempts,
            held,
            func.count(),
            func.min(OutboxItem.created_at),
        )
        .where(OutboxItem.state.in_(("queued", "sending", "failed")))
        .group_by(OutboxItem.destination, OutboxItem.state, OutboxItem.attempts, held)
    )
    for name, state, attempts, is_held, n, oldest in rows:
        shown = (
            "held"
            if state == "queued" and is_held
            else "retrying"
            if state == "queued" and attempts > 0
            else state
        )
        for st in OUTBOX_STATES:
            snap.outbox.setdefault((name, st), 0)
        snap.outbox[(name, shown)] += n
        if state != "failed":
            snap.outbox_oldest[name] = max(snap.outbox_oldest.get(name, 0.0), _age(now, oldest))
            snap.outbox_attempts[name] = max(snap.outbox_attempts.get(name, 0), attempts or 0)
        else:
            snap.outbox_oldest.setdefault(name, 0.0)
            snap.outbox_attempts.setdefault(name, 0)


def _lifecycle(db, snap: Snapshot) -> None:
    snap.models = [
        (task, name, version, (content_hash or "")[:19], state)
        for task, name, version, content_hash, state in db.execute(
            select(
                RegisteredModel.task,
                RegisteredModel.name,
                RegisteredModel.version,
                RegisteredModel.content_hash,
                RegisteredModel.state,
            )
            .where(RegisteredModel.state.in_(("active", "shadow")))
            .order_by(RegisteredModel.task, RegisteredModel.id)
        )
    ]
    for task in {m[0] for m in snap.models if m[4] == "active"}:
        for kind in ALERT_KINDS:
            snap.alerts[(task, kind)] = 0
    for task, kind, n in db.execute(
        select(MonitorAlert.task, MonitorAlert.kind, func.count())
        .where(MonitorAlert.cleared_at.is_(None))
        .group_by(MonitorAlert.task, MonitorAlert.kind)
    ):
        snap.alerts[(task, kind)] = n


def read(
    database: Database,
    statement_timeout_s: float = 5.0,
    destinations: Callable[[], Iterable[str]] = tuple,
) -> Snapshot:
    """One consistent-enough reading (one read-only transaction); ``destinations``: the names
    of the destinations configured here (``settings.destinations()``), read at each scrape."""
    snap = Snapshot()
    with database.reader() as db:
        if db.get_bind().dialect.name == "postgresql":
            db.execute(text(f"SET LOCAL statement_timeout = {int(statement_timeout_s * 1000)}"))
        now = utcnow()
        _jobs(db, snap, now)
        _outbox(db, snap, now, destinations)
        _lifecycle(db, snap)
    return snap


class PlatformCollector:
    """A ``Face.collectors`` entry: the database's metrics, read at each scrape in a thread
    that may take at most ``timeout_s``. While an earlier reading still hangs (the database
    stopped answering), a scrape does not start another: it reports the database down."""

    name = "database"

    def __init__(
        self,
        database: Callable[[], Database],
        timeout_s: float = 5.0,
        destinations: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self.database, self.timeout_s, self.destinations = database, timeout_s, destinations
        self._busy: threading.Thread | None = None
        self._lock = threading.Lock()

    def _reading(self) -> tuple[Snapshot | None, float]:
        start = time.perf_counter()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["snap"] = read(self.database(), self.timeout_s, self.destinations)
            except Exception as exc:  # broad: reported as down by the caller (logged)
                box["error"] = exc

        with self._lock:
            if self._busy is not None and self._busy.is_alive():
                log.error("metrics: the database has not answered an earlier scrape yet")
                return None, time.perf_counter() - start
            thread = threading.Thread(target=run, name="medai-metrics-db", daemon=True)
            self._busy = thread
            thread.start()
        thread.join(self.timeout_s)
        if thread.is_alive():
            log.error("metrics: the database did not answer within %.0f s", self.timeout_s)
        elif "error" in box:
            log.error("metrics: reading the database failed: %s", type(box["error"]).__name__)
        return box.get("snap"), time.perf_counter() - start

    def collect(self) -> Iterator[Metric]:
        snap, seconds = self._reading()
        up = GaugeMetricFamily(
            "medai_database_up",
            "1: the database answered this scrape's "
            "queries; 0: it did not (its metrics are left out)",
        )
        up.add_metric([], 1 if snap is not None else 0)
        took = GaugeMetricFamily(
            "medai_database_scrape_seconds", "Time this scrape's database queries took"
        )
        took.add_metric([], seconds)
        yield up
        yield took
        if snap is not None:
            yield from families(snap)


def families(snap: Snapshot) -> Iterator[Metric]:
    jobs = GaugeMetricFamily(
        "medai_queue_jobs",
        "Jobs per queue and state (queued, running, failed), from the database",
        labels=["queue", "state"],
    )
    for (queue, state), n in sorted(snap.jobs.items()):
        jobs.add_metric([queue, state], n)
    expired = GaugeMetricFamily(
        "medai_queue_jobs_lease_expired",
        "Running jobs whose worker stopped renewing its lease (taken over by another worker)",
        labels=["queue"],
    )
    oldest = GaugeMetricFamily(
        "medai_queue_oldest_queued_seconds",
        "Age of the oldest queued job (0: none queued)",
        labels=["queue"],
    )
    for queue in sorted(snap.expired):
        expired.add_metric([queue], snap.expired[queue])
        oldest.add_metric([queue], snap.oldest_queued.get(queue, 0.0))
    outbox = GaugeMetricFamily(
        "medai_outbox_items",
        "Outbox rows per destination and state: queued, retrying (after "
        "a failed attempt), held (an open identity conflict), sending, failed (a person must "
        "look: retry or give up)",
        labels=["destination", "state"],
    )
    for (name, state), n in sorted(snap.outbox.items()):
        outbox.add_metric([name, state], n)
    out_oldest = GaugeMetricFamily(
        "medai_outbox_oldest_pending_seconds",
        "Age of the oldest row waiting to be delivered (0: none)",
        labels=["destination"],
    )
    attempts = GaugeMetricFamily(
        "medai_outbox_attempts_max",
        "The most delivery attempts a waiting row has had",
        labels=["destination"],
    )
    for name in sorted(snap.outbox_oldest):
        out_oldest.add_metric([name], snap.outbox_oldest[name])
        attempts.add_metric([name], snap.outbox_attempts.get(name, 0))
    configured = GaugeMetricFamily(
        "medai_outbox_destination_configured",
        "1: the destination is configured here; 0: only rows left",
        labels=["destination"],
    )
    for name in sorted({n for n, _ in snap.outbox} | set(snap.destinations)):
        configured.add_metric([name], 1 if name in snap.destinations else 0)
    alerts = GaugeMetricFamily(
        "medai_monitor_alerts_open",
        "Open drift and agreement alerts per task and kind (input, output, metadata, agreement)",
        labels=["task", "kind"],
    )
    for (task, kind), n in sorted(snap.alerts.items()):
        alerts.add_metric([task, kind], n)
    models = GaugeMetricFamily(
        "medai_model_info",
        "The registry's active and shadow models (1): task, name, version, content hash (short)",
        labels=["task", "name", "version", "hash", "state"],
    )
    for task, name, version, short, state in snap.models:
        models.add_metric([task, name, version, short, state], 1)
    return iter([jobs, expired, oldest, outbox, out_oldest, attempts, configured, alerts, models])


# --- the site's TLS certificates ----------------------------------------------------------------

DAY_S = 86400.0


@dataclass(frozen=True)
class CertificateState:
    """One watched certificate file, as read now: its leaf's notAfter (Unix time) and subject
    common name, or why it could not be read."""

    path: str
    not_after: float | None = None
    subject: str = ""
    error: str | None = None


def read_certificate(path: Path) -> CertificateState:
    """The first certificate of a PEM file (the leaf of a chain, as nginx and medai's DICOM
    node read it); a file that is missing or holds no certificate says so in ``error``."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        certs = x509.load_pem_x509_certificates(Path(path).read_bytes())
    except OSError as exc:
        return CertificateState(
            str(path), error=f"unreadable ({exc.strerror or type(exc).__name__})"
        )
    except ValueError:
        return CertificateState(str(path), error="no PEM certificate in it")
    leaf = certs[0]
    names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return CertificateState(
        str(path),
        not_after=leaf.not_valid_after_utc.timestamp(),
        subject=str(names[0].value)[:128] if names else "",
    )


class CertificateWatch:
    """A ``Face.collectors`` entry: the expiry of the site's certificates
    (``MEDAI_TLS_WATCH_CERTS``, and the DICOM node's ``MEDAI_DICOM_TLS_CERT``), read from
    their files at each scrape, so a renewed certificate shows at once. A certificate that
    expires within ``warn_days`` (or has expired, or cannot be read) is logged as a WARNING at
    start and at scrapes, once a day per file, so the log says it even where nobody alerts on
    the metric. Nothing else watches it: nginx serves an expired certificate without a word."""

    name = "certificates"

    def __init__(
        self, paths: Sequence[Path], warn_days: int = 30, clock: Callable[[], float] = time.time
    ) -> None:
        self.paths = list(dict.fromkeys(Path(p) for p in paths))
        self.warn_days, self.clock = warn_days, clock
        self._said: dict[str, int] = {}  # path -> the day (clock // DAY_S) last warned
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> CertificateWatch:
        """The files of ``MEDAI_TLS_WATCH_CERTS`` and the DICOM node's certificate."""
        general, dicom = settings.general, settings.dicom
        paths = [
            *general.tls_watch_certs,
            *([dicom.dicom_tls_cert] if dicom.dicom_tls_cert else []),
        ]
        return cls(paths, general.tls_warn_days)

    def check(self) -> list[CertificateState]:
        """Read every file; log what needs a person (once a day per file)."""
        now, states = self.clock(), [read_certificate(p) for p in self.paths]
        for st in states:
            if st.error is not None:
                why = f"cannot be read: {st.error}"
            elif st.not_after is not None and st.not_after - now <= self.warn_days * DAY_S:
                left = (st.not_after - now) / DAY_S
                when = datetime.fromtimestamp(st.not_after, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
                why = (
                    f"(CN {st.subject or '?'}) expired on {when}"
                    if left <= 0
                    else f"(CN {st.subject or '?'}) expires in {left:.0f} days, on {when}: renew it"
                )
            else:
                continue
            day = int(now // DAY_S)
            with self._lock:
                if self._said.get(st.path) == day:
                    continue
                self._said[st.path] = day
            log.warning("TLS certificate %s %s", st.path, why)
        return states

    def collect(self) -> Iterator[Metric]:
        states = self.check()
        expiry = GaugeMetricFamily(
            "medai_tls_certificate_expiry_timestamp_seconds",
            "notAfter of each watched TLS certificate (Unix time; alert when it is near: "
            "time() + 30 * 86400 > this)",
            labels=["path", "subject"],
        )
        readable = GaugeMetricFamily(
            "medai_tls_certificate_readable",
            "1: the watched certificate file was read; 0: missing or not a PEM certificate",
            labels=["path"],
        )
        for st in states:
            readable.add_metric([st.path], 0 if st.error else 1)
            if st.not_after is not None:
                expiry.add_metric([st.path, st.subject], st.not_after)
        return iter([expiry, readable])
