"""``medai serve``: the one API face. Every route (studies, reports, the stateless job
routes, triage, accounts, kiosks, the web UI) is a platform router mounted once on the HTTP
kernel (``server.kernel``), behind sign-in; background analysis runs in threads in this
process, or in Celery workers when a broker is set."""

from __future__ import annotations

import logging
import threading

from fastapi import FastAPI
from sqlalchemy import or_, select

from medai.platform.api.deps import sees_server_paths
from medai.platform.api.routes import (
    admin,
    approvals,
    auth,
    chat,
    conflicts,
    dicomweb,
    dicomweb_read,
    jobs,
    kiosks,
    measurements,
    model_jobs,
    model_registry,
    monitoring,
    outbox,
    reanalysis,
    report_templates,
    retraction,
    series,
    studies,
    study_labels,
    triage,
    triage_outcomes,
)
from medai.platform.boot import open_platform
from medai.platform.context import Platform
from medai.platform.delivery.delivery import DeliveryLoop
from medai.platform.intake.dicom_node import DicomNode
from medai.platform.intake.dicomweb_pull import Puller
from medai.platform.jobs import queue
from medai.platform.jobs.jobs import JobPool
from medai.platform.lifecycle import serving
from medai.platform.lifecycle.model_jobs import LocalRunner, pending
from medai.platform.ops import key_check
from medai.platform.ops.metrics import CertificateWatch, PlatformCollector
from medai.platform.records.db import utcnow
from medai.platform.records.tables import Job
from medai.platform.web import routes as web
from medai.platform.web import viewer
from medai.server.kernel import Face, build_app
from medai.settings import get_settings

log = logging.getLogger("medai.platform")


def create_platform_app(
    database_url: str | None = None,
    models: dict[str, str] | None = None,
    knowledge_dir: str | None = None,
    job_threads: int | None = None,
    broker_url: str | None = None,
    preload: bool = True,
    dicom_port: int | None = None,
    dicom_host: str | None = None,
    outbox_threads: int | None = None,
) -> FastAPI:
    """The app; ``models``: a model folder per task, over ``MEDAI_MODELS`` (the rest serve
    their bundled default). With ``dicom_port`` a DICOM node (``intake.dicom_node``) runs
    beside the API in this process, started and stopped with it, its studies dispatched like
    uploads. The settings are read once, here, and handed to the platform (``p.settings``)."""
    settings = get_settings()
    broker = broker_url if broker_url is not None else settings.storage.broker_url
    threads = settings.serving.job_threads if job_threads is None else job_threads
    senders = settings.outbox.outbox_threads if outbox_threads is None else outbox_threads
    holder: dict = {}

    def start(app: FastAPI) -> None:
        p: Platform = app.state.platform
        serving.watch(p)  # promotion and rollback reach this process without a restart
        if broker:
            _republish_unclaimed(p, broker, settings.serving.job_lease_s, holder)
        else:
            if pending(p) and "model_jobs" not in holder:  # left by a restart: go on
                holder["model_jobs"] = LocalRunner(p, settings.serving.job_lease_s).start()
        if not broker and threads > 0:
            pool = JobPool(p, threads, settings.serving.job_lease_s)
            pool.start()
            holder["pool"] = pool
        if dicom_port is not None:
            holder["dicom"] = DicomNode(
                p,
                app.state.dispatch,
                ae_title=settings.dicom.dicom_ae_title,
                host=dicom_host or settings.dicom.dicom_host,
                port=dicom_port,
                allow=settings.dicom.dicom_allow,
            ).start()
            app.state.dicom_node = holder["dicom"]
        if settings.dicom.dicomweb_pull_url:  # studies in from a PACS that does not push
            holder["pull"] = Puller(
                p,
                settings.dicom.dicomweb_pull_url,
                app.state.dispatch,
                every_s=settings.dicom.dicomweb_pull_every_s,
                lookback_days=settings.dicom.dicomweb_pull_lookback_days,
            ).start()
        if senders > 0 and settings.destinations():  # results out (delivery.delivery)
            holder["outbox"] = DeliveryLoop.from_settings(p, threads=senders).start()

    def stop(app: FastAPI) -> None:
        app.state.platform.stop_watching()
        if "model_jobs" in holder:
            holder.pop("model_jobs").stop()
        holder.get("stop", threading.Event()).set()
        if "dicom" in holder:
            holder.pop("dicom").stop()
        if "pull" in holder:
            holder.pop("pull").stop()
        if "pool" in holder:
            holder["pool"].stop()
        if "outbox" in holder:
            holder.pop("outbox").stop()

    # a real write to each (a read-only or full disk makes readiness 503 with its code); the
    # schema at this release's head (a migration job for a newer release: schema_newer); keys
    # that open the site's sealed data (else keys_missing: never ready on a key that opens none)
    app: FastAPI  # built below; the checks and collectors run once it is
    checks = {
        "database": lambda: app.state.platform.db.check_writable(),
        "schema": lambda: app.state.platform.db.check_schema(),
        "storage": lambda: app.state.platform.store.check_writable(),
        "keys": lambda: key_check.check_ready(app.state.platform),
    }
    if broker:
        checks["broker"] = lambda: queue.check_broker(broker)
    certificates = CertificateWatch.from_settings(settings)
    certificates.check()  # a certificate near its end is in the log from the start
    face = Face(
        routers=[
            auth.router,
            studies.router,
            series.router,
            retraction.router,
            reanalysis.router,
            conflicts.router,
            study_labels.router,
            measurements.router,
            jobs.router,
            dicomweb.router,
            dicomweb_read.router,
            chat.router,
            admin.router,
            model_jobs.router,
            model_registry.router,
            monitoring.router,
            approvals.router,
            outbox.router,
            kiosks.router,
            report_templates.router,
            triage.router,
            triage_outcomes.router,
            viewer.router,
            web.router,
        ],
        readiness_checks=checks,
        on_start=start,
        on_stop=stop,
        # GET /metrics: queues, outbox, alerts, models read from the database; the expiry
        # of the site's TLS certificates (checked, and warned about, at start too)
        collectors=[
            PlatformCollector(
                lambda: app.state.platform.db,
                destinations=lambda: [d.name for d in app.state.platform.settings.destinations()],
            ),
            certificates,
        ],
    )
    app = build_app(
        face,
        models=models,
        knowledge_dir=knowledge_dir,
        preload=preload,
    )
    app.mount("/ui", web.STATIC, name="ui")
    app.state.platform = open_platform(
        database_url, models=app.state.models, knowledge_dir=knowledge_dir, settings=settings
    )

    def dispatch(study_id: int, job_id: int, urgent: bool) -> None:
        if broker:
            try:
                queue.publish(broker, study_id, job_id, urgent)
            except Exception as exc:  # broad: the row stays queued for the sweeper (logged)
                log.error("publishing study %s failed: %s", study_id, type(exc).__name__)
        elif "pool" in holder:
            holder["pool"].notify()

    app.state.dispatch = dispatch
    app.state.health_detail = sees_server_paths  # model paths in readiness: admins only
    app.state.dispatch_model_job = queue.model_job_dispatch(app.state.platform, broker, holder)
    app.state.job_pool = holder
    return app


def sweep_once(p: Platform, broker: str) -> list[int]:
    """Publish again the jobs no worker holds: queued ones whose message may have been lost,
    and running ones whose worker died (lease expired). The latter go as urgent: their
    message was taken by the dead worker, and a new one at the back of a long queue would
    leave the study waiting for the whole backlog (minutes) instead of a lease. Returns the
    job ids published."""
    now = utcnow()
    with p.db.session() as db:
        rows = db.execute(
            select(Job.id, Job.study_id, Job.priority, Job.status).where(
                or_(Job.status == "queued", (Job.status == "running") & (Job.lease_until < now))
            )
        ).all()
    for job_id, study_id, priority, status in rows:
        queue.publish(broker, study_id, job_id, priority > 0 or status == "running")
    for job_id in pending(p):  # retraining, validation
        queue.publish_model_job(broker, job_id)
    return [r[0] for r in rows]


def _republish_unclaimed(p: Platform, broker: str, lease_s: float, holder: dict) -> None:
    """With a broker: every lease period, ``sweep_once``. A duplicate message is harmless:
    the job row decides who runs it."""
    stop = threading.Event()
    holder["stop"] = stop

    def sweep() -> None:
        while True:
            try:
                sweep_once(p, broker)
            except Exception as exc:  # broad: the sweeper thread outlives any round (logged)
                log.error("job sweep failed: %s", type(exc).__name__)
            if stop.wait(lease_s):
                return

    threading.Thread(target=sweep, name="medai-job-sweeper", daemon=True).start()


def platform_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (each worker process builds its own app from the
    settings: MEDAI_MODELS, and the DICOM node with MEDAI_DICOM_IN_SERVE)."""
    dicom = get_settings().dicom
    return create_platform_app(dicom_port=dicom.dicom_port if dicom.dicom_in_serve else None)
