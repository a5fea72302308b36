"""Beyond one machine: Celery workers on a Redis or RabbitMQ broker (``MEDAI_BROKER_URL``).

Messages are acknowledged late and requeued when a worker dies (``acks_late``,
``reject_on_worker_lost``); the job row's lease decides who runs a job, so a redelivered or
duplicated message never runs the analysis twice at once, and the analysis is idempotent, so a
job taken over after a crash duplicates nothing. Urgent studies are published with the
broker's highest priority.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache

from sqlalchemy import select

from medai.platform.boot import open_platform
from medai.platform.context import Platform
from medai.platform.delivery.delivery import DeliveryLoop
from medai.platform.jobs.jobs import JobPool, claim, run_claimed
from medai.platform.lifecycle import model_jobs, serving
from medai.platform.records.leases import worker_name
from medai.platform.records.tables import Job

log = logging.getLogger("medai.platform.jobs.queue")
TASK_NAME = "medai.analyse_study"
MODEL_JOB_TASK = "medai.model_job"
QUEUES = ("cpu", "gpu", "training")  # training: retraining and site validation
_MAX_PRIORITY = 9
Dispatch = Callable[[int, int, bool], None]  # (study id, job id, urgent)


def broker_priority(url: str, urgent: bool) -> int:
    """Redis transports read 0 as the highest priority, AMQP reads the largest."""
    high = not url.startswith(("redis", "rediss"))
    return (_MAX_PRIORITY if urgent else 0) if high else (0 if urgent else _MAX_PRIORITY)


@lru_cache(maxsize=4)
def celery_app(broker_url: str, visibility_timeout_s: int = 300):
    from celery import Celery
    from kombu import Queue

    app = Celery("medai", broker=broker_url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue="cpu",
        task_ignore_result=True,
        task_queues=[
            Queue(q, routing_key=q, queue_arguments={"x-max-priority": 10}) for q in QUEUES
        ],
        task_queue_max_priority=10,
        task_default_priority=5,
        broker_transport_options={
            "priority_steps": list(range(10)),
            "sep": ":",
            "queue_order_strategy": "priority",
            "visibility_timeout": visibility_timeout_s,
        },
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )

    @app.task(name=TASK_NAME, bind=True, max_retries=None)
    def analyse_study(self, study_id: int, job_id: int) -> str:
        return _run(self, study_id, job_id)

    @app.task(name=MODEL_JOB_TASK)
    def model_job(job_id: int) -> str:
        """A retraining or validation (``lifecycle.model_jobs``); a job another worker holds
        is left to it (the server's sweeper republishes it if that lease runs out)."""
        p = _worker_platform()
        return model_jobs.run(p, job_id, worker_name("training"), p.settings.serving.job_lease_s)

    return app


# intra-op threads of each model call in this worker process (``medai worker --threads``):
# set before the first task; None leaves torch and ONNX Runtime at their own pools
WORKER_THREADS: int | None = None


@lru_cache(maxsize=1)
def _worker_platform():
    p = open_platform(model_threads=WORKER_THREADS)
    serving.watch(p)  # a worker follows promotions and rollbacks without a restart
    return p


def start_delivery(threads: int):
    """Delivery threads in this worker process (``medai worker --outbox-threads``), or None
    when there are none or no destination is configured. An analysis that commits here wakes
    them at once (``outbox.WAKE`` is per process), so a Celery study's SR and FHIR report leave
    as soon as it is analysed instead of at serve's next poll, and in a backlog every worker
    sends, not serve's threads alone; rows are claimed under leases, so nothing goes twice."""
    if threads <= 0:
        return None
    p = _worker_platform()
    if not p.settings.destinations():
        return None
    return DeliveryLoop.from_settings(p, threads=threads, name="celery-outbox").start()


def deliver_while_working(threads: int) -> None:
    """Start ``start_delivery`` when the Celery worker is ready (after its logging is set
    up) and stop it when the worker shuts down, so a send under way is marked before the
    process exits instead of being resent after its lease."""
    from celery.signals import worker_ready, worker_shutdown

    if threads <= 0:
        return
    holder: dict = {}

    @worker_ready.connect(weak=False)
    def _start(**_kwargs) -> None:
        holder["loop"] = start_delivery(threads)

    @worker_shutdown.connect(weak=False)
    def _stop(**_kwargs) -> None:
        loop = holder.pop("loop", None)
        if loop is not None:
            loop.stop()


def _run(task, study_id: int, job_id: int) -> str:
    p = _worker_platform()
    lease = p.settings.serving.job_lease_s
    name = worker_name("celery")
    job = claim(p, name, lease, job_id)
    if job is None:
        with p.db.session() as db:
            row = db.execute(select(Job.status, Job.not_before).where(Job.id == job_id)).first()
        status, not_before = row if row is not None else (None, None)
        if status in ("done", "failed", None):
            return status or "missing"
        if status == "queued":  # its study is still arriving: look again once it has settled
            raise task.retry(countdown=_until(p, not_before))
        # running under a live lease elsewhere: look again once that lease could have expired
        raise task.retry(countdown=max(1.0, lease / 2))
    status = run_claimed(p, job, name, lease)
    if status == "queued":  # to run again (an instance arrived meanwhile, or a retry)
        with p.db.session() as db:
            not_before = db.scalar(select(Job.not_before).where(Job.id == job_id))
        raise task.retry(countdown=_until(p, not_before))
    return status


def _until(p, when) -> float:
    """Seconds until ``when`` (at least a fraction of one: never a busy loop)."""
    return max(0.2, (when - p.clock()).total_seconds()) if when is not None else 0.2


def publish(broker_url: str, study_id: int, job_id: int, urgent: bool, queue: str = "cpu") -> None:
    celery_app(broker_url).send_task(
        TASK_NAME,
        args=[study_id, job_id],
        queue=queue,
        routing_key=queue,
        priority=broker_priority(broker_url, urgent),
    )


def publish_model_job(broker_url: str, job_id: int) -> None:
    celery_app(broker_url).send_task(
        MODEL_JOB_TASK, args=[job_id], queue="training", routing_key="training"
    )


def check_broker(broker_url: str) -> None:
    """Raise when the broker cannot be reached (readiness)."""
    with celery_app(broker_url).connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=3)


def analysis_dispatch(p: Platform) -> tuple[Dispatch, Callable[[], None]]:
    """How ``medai dicom listen`` hands a queued analysis on: to Celery when
    ``MEDAI_BROKER_URL`` is set, else to a pool of ``MEDAI_JOB_THREADS`` analysis threads of
    its own (0: none — a ``medai serve`` on the same database takes the jobs within its
    poll interval). Returns (dispatch, stop)."""
    settings = p.settings
    if settings.storage.broker_url:
        broker = settings.storage.broker_url

        def publish_job(study_id: int, job_id: int, urgent: bool) -> None:
            publish(broker, study_id, job_id, urgent)

        return publish_job, lambda: None
    if settings.serving.job_threads <= 0:
        return (lambda *_: None), (lambda: None)
    pool = JobPool(p, settings.serving.job_threads, settings.serving.job_lease_s)
    pool.start()
    serving.watch(p)  # this process analyses: it follows promotions and rollbacks

    def stop() -> None:
        pool.stop()
        p.stop_watching()

    return (lambda *_: pool.notify()), stop


def model_job_dispatch(p: Platform, broker: str | None, holder: dict) -> Callable[[int], None]:
    """How this process hands a new job on: to the ``training`` queue, or to its own
    runner (started on first use)."""

    def dispatch(job_id: int) -> None:
        if broker:
            try:
                publish_model_job(broker, job_id)
            except Exception as exc:  # broad: the row stays queued (logged)
                log.error("publishing model job %s failed: %s", job_id, type(exc).__name__)
            return
        if "model_jobs" not in holder:
            holder["model_jobs"] = model_jobs.LocalRunner(p, p.settings.serving.job_lease_s).start()
        holder["model_jobs"].submit(job_id)

    return dispatch
