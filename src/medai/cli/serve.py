"""`medai serve`: the platform's HTTP server (and, with --dicom-port, its DICOM node)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from medai.cli.common import _error
from medai.cli.operations import open_database
from medai.core.model_dir import check_tasks
from medai.server.http_timeouts import serve_options
from medai.server.logs import log_config, notice
from medai.server.metrics import multiprocess_for_serve, remove_multiprocess_dir
from medai.services.model_handles import served_tasks
from medai.services.runtime import plan_cpu
from medai.settings import get_settings


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes (default MEDAI_WORKERS or 1); each loads the models once and "
            "gets cores / workers inference threads."
        ),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            metavar="TASK=DIR",
            help="The model folder (or registered model name) a task serves, e.g. --model "
            "triage=/models/my-triage; repeat it for several tasks. Over MEDAI_MODELS; a task "
            "named by neither serves its bundled default. The registry's active model "
            "serves once there is one: a different folder named here is registered as a "
            "candidate (`medai models promote` to serve it).",
        ),
    ] = None,
    dicom_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Also receive studies over DICOM on this port (C-STORE, "
            "C-ECHO; AE title MEDAI_DICOM_AE_TITLE, allowed senders "
            "MEDAI_DICOM_ALLOW), in this process; one worker only "
            "(MEDAI_DICOM_IN_SERVE with MEDAI_DICOM_PORT does the same).",
        ),
    ] = None,
) -> None:
    """Start the platform (OpenAPI docs at /docs): the API behind sign-in, studies analysed
    in the background, review and sign-off, audit. Liveness: /api/v1/health/live; readiness
    (database, broker, every model): /api/v1/health/ready. Create the first admin with
    `medai users add NAME --role admin --password-stdin`."""
    models = served_models(model or [])  # a wrong --model exits 2 before anything starts
    # migrated once, before the worker processes start; with MEDAI_AUTO_MIGRATE=false an
    # unmigrated (or newer) database exits 2 here, before anything binds the port
    database = open_database()
    if not database.has_admin():
        notice(
            "medai: no admin yet. The triage kiosk works anonymously; for everything "
            "else create the first admin:\n  printf '%s\\n' \"$PASSWORD\" | "
            "medai users add admin --role admin --password-stdin"
        )
    database.dispose()
    import os

    import uvicorn

    settings = get_settings()
    workers = workers or settings.serving.workers
    in_serve = dicom_port is not None or settings.dicom.dicom_in_serve
    if in_serve and workers > 1:
        typer.secho(
            "error: the DICOM node runs in one process: use --workers 1 with "
            "--dicom-port (MEDAI_DICOM_IN_SERVE), or run `medai dicom listen` beside serve",
            fg="red",
            err=True,
        )
        raise typer.Exit(2)
    bind = host or settings.serving.host
    # the worker processes read their settings: the models to serve, and the DICOM node
    env = {"MEDAI_WORKERS": str(workers), "MEDAI_MODELS": json.dumps(models)}
    if dicom_port is not None:  # on serve's bind address
        env |= {"MEDAI_DICOM_IN_SERVE": "true", "MEDAI_DICOM_PORT": str(dicom_port)}
        env["MEDAI_DICOM_HOST"] = bind

    plan = plan_cpu(workers, settings.serving.inference_concurrency)
    # OpenMP pools (torch, and the e5 engine behind the red-flag detector) read these when they
    # start, in each worker: without them every worker spun up a thread per core and two
    # workers fought over two cores (triage got slower with more workers)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.setdefault(var, os.environ.get(var) or str(plan.threads))
    if bind not in ("0.0.0.0", "::") and bind not in settings.serving.trusted_hosts:
        env["MEDAI_TRUSTED_HOSTS"] = json.dumps([*settings.serving.trusted_hosts, bind])
    os.environ.update(env)  # worker processes build their app from the environment
    get_settings.cache_clear()

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # must exist before prometheus_client
        os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)  # is imported

    # several workers: GET /metrics on any of them reports them all, through a private
    # folder of value files (PROMETHEUS_MULTIPROC_DIR; docs/deploy/metrics.md)
    metrics_dir = multiprocess_for_serve(workers)
    # medai's access log (route templates, no query strings) replaces uvicorn's; libraries
    # that can quote content are quietened and their messages withheld (server.logs); a
    # request that trickles in is answered 408 and closed (MEDAI_HTTP_READ_TIMEOUT_S)
    try:
        uvicorn.run(
            "medai.platform.app:platform_app_from_env",
            factory=True,
            host=bind,
            port=port or settings.serving.port,
            workers=workers,
            log_level=settings.general.log_level,
            log_config=log_config(settings.general.log_level),
            server_header=False,
            access_log=False,
            **proxy_options(settings.serving.trusted_proxies),
            **serve_options(),
        )
    finally:
        remove_multiprocess_dir(metrics_dir)


def served_models(values: list[str]) -> dict[str, str]:
    """``MEDAI_MODELS`` with each ``--model TASK=DIR`` over it: the mapping ``medai serve``
    hands its worker processes. A value that is not TASK=DIR, or a task serve does not serve,
    exits 2 naming the tasks it serves."""

    def refuse(message: str) -> None:
        _error(message, "BadParameter", False, 2)

    tasks = ", ".join(served_tasks())
    models = {task: str(folder) for task, folder in get_settings().models.models.items()}
    try:
        check_tasks(models, "MEDAI_MODELS")
    except ValueError as exc:
        refuse(str(exc))
    given: dict[str, str] = {}
    for value in values:
        task, sep, folder = (part.strip() for part in value.partition("="))
        if not (sep and task and folder):
            refuse(f"--model {value!r}: give TASK=DIR, e.g. triage=/models/my-triage ({tasks})")
        elif task not in served_tasks():
            refuse(f"--model {value!r}: unknown task {task!r}; medai serve serves {tasks}")
        elif task in given:
            refuse(f"--model: task {task!r} is given twice")
        given[task] = folder
    return models | given


def proxy_options(trusted: list[str]) -> dict:
    """uvicorn's proxy options from ``MEDAI_TRUSTED_PROXIES``: forwarded headers are believed
    only from those peers. uvicorn's own default trusts 127.0.0.1 (and FORWARDED_ALLOW_IPS),
    so any local process could forge X-Forwarded-For and reset the anonymous triage quota and
    the sign-in throttle; with none listed, no forwarded header is read at all."""
    if not trusted:
        return {"proxy_headers": False, "forwarded_allow_ips": ""}
    return {"proxy_headers": True, "forwarded_allow_ips": list(trusted)}
