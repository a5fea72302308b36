"""The HTTP kernel: what every route shares, around the routers a face mounts.

Models load once per process (``services.model_handles``) and are shared read-only by all requests;
model calls run in bounded lanes (``services.runtime``); bodies are limited while streaming;
every error has one shape; complaint text and request bodies are never logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI

import medai
from medai.server import contract, errors, health
from medai.server.docs import mount_docs
from medai.server.inputs import HostCheck, UrlGuard
from medai.server.metrics import MetricsEndpoint, RequestMetrics, process_exiting
from medai.server.middleware import BodyLimit, ConcretePaths, Guard, SecurityHeaders
from medai.services.model_handles import ModelHandles
from medai.services.runtime import CpuPlan, InferenceLane, apply_thread_limits, plan_cpu
from medai.settings import get_settings

log = logging.getLogger("medai.server")

MAX_JSON_BYTES = 64 * 1024  # a 5,000-character complaint is ≤ 20 KB of UTF-8
MAX_UPLOAD_BYTES = 64 * 1024 * 1024 + 256 * 1024  # one image (64 MiB) plus the form fields


# a report's five sections (technique, findings, measurements, impression, recommendation) of
# up to 20,000 characters each, every one sent as a JSON surrogate-pair escape (12 bytes),
# still fits: the schema's limits and this one agree (tests/platform/api/test_api_face.py)
MAX_REPORT_JSON_BYTES = 3 * 512 * 1024


def body_limit(path: str) -> int:
    uploads = (
        "/predict",
        "/heatmap",
        "/reports/draft",
        "/api/v1/studies",
        "/api/v1/dicomweb/studies",
    )
    if path.endswith(uploads):
        return MAX_UPLOAD_BYTES
    # a report's text travels; so does a report template's (its sections)
    report = ("/report", "/report/sign", "/labels/suggest", "/report-templates")
    return MAX_REPORT_JSON_BYTES if path.endswith(report) else MAX_JSON_BYTES


@dataclass
class Face:
    """What a face (the platform) brings to the kernel: its routers, its readiness checks
    (each raises when its part is not ready) and what runs at start and stop."""

    routers: list[APIRouter] = field(default_factory=list)
    readiness_checks: dict[str, Callable[[], None]] = field(default_factory=dict)
    # read at each GET /metrics (server.metrics): each has a ``name`` and a ``collect()``
    # yielding Prometheus metric families, e.g. what the database says (platform.ops.metrics)
    collectors: list[Any] = field(default_factory=list)
    on_start: Callable[[FastAPI], None] | None = None
    on_stop: Callable[[FastAPI], None] | None = None


def build_app(
    face: Face,
    models: dict[str, str] | None = None,
    knowledge_dir: str | None = None,
    plan: CpuPlan | None = None,
    preload: bool = True,
) -> FastAPI:
    """The kernel around a face's routers: model handles and bounded inference lanes, one
    error shape, body limits, security headers, the access log, docs and health. The kernel
    serves no job route of its own: every route is the face's, mounted once. ``models``: a
    model folder (or registered name) per task, over ``MEDAI_MODELS`` (``ModelHandles``)."""

    settings = get_settings()
    plan = plan or plan_cpu(settings.serving.workers, settings.serving.inference_concurrency)
    apply_thread_limits(plan)
    handles = ModelHandles(
        models,
        threads=plan.threads,
        imaging_runtime=settings.serving.imaging_runtime,
    )

    @asynccontextmanager
    async def lifespan(app_: FastAPI):
        task = asyncio.create_task(asyncio.to_thread(_preload, app_)) if preload else None
        if face.on_start is not None:
            await asyncio.to_thread(face.on_start, app_)
        try:
            yield
        finally:
            if face.on_stop is not None:
                await asyncio.to_thread(face.on_stop, app_)
            if task is not None and not task.done():
                task.cancel()
            process_exiting()  # its requests in flight leave the other workers' /metrics

    app = FastAPI(
        title="medai API",
        version=medai.__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description="A hospital's own medical AI. Every output is an AI suggestion "
        "or draft for a clinician to review.",
    )
    app.state.models = handles
    app.state.plan = plan
    app.state.knowledge_dir = knowledge_dir
    app.state.triage_lane = InferenceLane(
        plan.concurrency, settings.serving.inference_queue, settings.serving.inference_timeout_s
    )
    app.state.imaging_lane = InferenceLane(
        plan.concurrency, settings.serving.inference_queue, settings.serving.inference_timeout_s
    )
    app.state.preloaded = False
    app.state.readiness_checks = dict(face.readiness_checks)
    errors.install(app)
    contract.install(app)
    app.include_router(health.router)
    for router in face.routers:
        app.include_router(router)
    mount_docs(app)
    # added last = outermost: security headers on every response (the Guard's 500 and the
    # host check's 400 included), then the Guard (access log and request metrics, no
    # tracebacks), GET /metrics (before the host check: Prometheus names a pod by address),
    # host check, body limit, the URL check, and innermost a parameterless path's own methods
    app.add_middleware(ConcretePaths, routes=app.router.routes)
    app.add_middleware(UrlGuard)
    app.add_middleware(BodyLimit, limit_for=body_limit)
    app.add_middleware(HostCheck, allowed_hosts=settings.serving.trusted_hosts)
    app.add_middleware(
        MetricsEndpoint,
        collectors=face.collectors,
        enabled=settings.general.metrics,
        allow=settings.general.metrics_allow,
    )
    app.add_middleware(Guard, metrics=RequestMetrics())
    app.add_middleware(SecurityHeaders)
    return app


def _preload(app: FastAPI) -> None:
    """Load every served model (and run each task's warm-up, ``Task.warm``) before the first
    request needs it; readiness reports the outcome."""
    report = app.state.models.readiness()
    for task, entry in report.items():
        if not entry["ready"]:
            continue
        try:
            app.state.models.warm(task)
        except Exception as exc:  # broad: readiness reports it on the next call (logged)
            log.error("%s warm-up failed: %s", task, type(exc).__name__)
    app.state.preloaded = True
    log.info("models: %s", {t: r["ready"] for t, r in report.items()})
