"""`medai worker`: a Celery worker that analyses studies."""

from __future__ import annotations

from typing import Annotated

import typer

from medai.cli.common import JsonFlag, _fail
from medai.cli.operations import open_database
from medai.platform.jobs import queue
from medai.platform.jobs.queue import QUEUES, celery_app
from medai.server.logs import log_config
from medai.server.metrics import start_metrics_server
from medai.services.runtime import CpuPlan, apply_thread_limits
from medai.settings import get_settings


def _worker_logging(level: str, log_format: str = "text") -> None:
    """The worker logs like ``serve``: content-echoing libraries (pydicom decoding a study,
    fpdf) withheld, no tracebacks (Celery would otherwise install its own handlers). Applied
    at once too, so that a warning Celery raises while it starts goes through the same
    handler. With JSON logs, the lines Celery prints itself (its shutdown notice) are logged
    instead, as JSON lines like every other."""
    import logging.config

    from celery.signals import setup_logging

    @setup_logging.connect(weak=False)
    def configure(**_kwargs) -> None:
        logging.config.dictConfig(log_config(level))

    logging.config.dictConfig(log_config(level))
    if log_format == "json":
        import celery.apps.worker as celery_worker

        def say(message: str, *_args, **_kwargs) -> None:
            logging.getLogger("celery.apps.worker").warning("%s", message)

        celery_worker.safe_say = say


def worker(
    queues: Annotated[
        str,
        typer.Option(help="Comma-separated queues: cpu, gpu, training (retraining, validation)."),
    ] = "cpu",
    concurrency: Annotated[int, typer.Option(min=1, help="Analyses at once.")] = 1,
    threads: Annotated[
        int,
        typer.Option(
            min=1,
            help="Intra-op threads of each model call (torch and ONNX Runtime). Keep "
            "workers × concurrency × threads at or below the cores: one worker "
            "process per core with the default 1 uses a CPU machine fully.",
        ),
    ] = 1,
    outbox_threads: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=16,
            help="Threads delivering the outbox from this worker (default "
            "MEDAI_OUTBOX_THREADS for a cpu or gpu worker, 0 for a "
            "training-only one; 0: leave delivery to serve or `medai "
            "outbox run`, e.g. on a host that cannot reach the PACS). A "
            "study analysed here is sent the moment it commits.",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Serve GET /metrics of this worker (its model calls and "
            "process) on this port, at MEDAI_HOST, to the networks "
            "of MEDAI_METRICS_ALLOW (docs/deploy/metrics.md).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run a Celery worker that analyses studies (needs MEDAI_BROKER_URL: redis:// or
    amqp://). Messages are acknowledged late: a worker killed mid-study loses nothing."""

    settings = get_settings()
    if not settings.storage.broker_url:
        _fail(ValueError("set MEDAI_BROKER_URL (e.g. redis://localhost:6379/0)"), as_json)
    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    bad = [q for q in wanted if q not in QUEUES]
    if bad or not wanted:
        _fail(ValueError(f"unknown queues {bad}; valid: {', '.join(QUEUES)}"), as_json)

    open_database(as_json).dispose()  # migrated before the first task, or exit 2
    _worker_logging(settings.general.log_level, settings.general.log_format)
    # sized like serve's pools (runtime.plan_cpu): two workers on two cores had torch and ONNX
    # Runtime at two threads each, four busy threads fighting for two cores
    apply_thread_limits(CpuPlan(1, concurrency, threads))
    queue.WORKER_THREADS = threads
    if outbox_threads is None:  # a training-only worker analyses nothing, so sends nothing
        outbox_threads = settings.outbox.outbox_threads if {"cpu", "gpu"} & set(wanted) else 0
    if not settings.destinations():  # nowhere to send: no delivery thread is started
        outbox_threads = 0
    queue.deliver_while_working(outbox_threads)
    if metrics_port is not None and settings.general.metrics:
        try:
            start_metrics_server(
                settings.serving.host, metrics_port, settings.general.metrics_allow
            )
        except OSError as exc:
            _fail(
                ValueError(
                    f"cannot serve metrics on {settings.serving.host}:{metrics_port}: "
                    f"{exc.strerror or type(exc).__name__}"
                ),
                as_json,
            )
    app = celery_app(settings.storage.broker_url)
    # its start banner is printed, not logged: left out where the log is JSON lines
    quiet = ["--quiet"] if settings.general.log_format == "json" else []
    app.worker_main(
        [
            *quiet,
            "worker",
            "-Q",
            ",".join(wanted),
            "--concurrency",
            str(concurrency),
            "--pool",
            "threads" if concurrency > 1 else "solo",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )
