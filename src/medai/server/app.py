"""FastAPI application factory: the API clinicians' tools (and later the web UI) call.

Models load once per process (``services.models``) and are shared read-only by all requests;
model calls run in bounded lanes (``services.runtime``); bodies are limited while streaming;
every error has one shape; complaint text and request bodies are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.middleware.trustedhost import TrustedHostMiddleware

import medai
from medai.server import errors
from medai.server.docs import mount_docs
from medai.server.middleware import BodyLimit, Guard, SecurityHeaders
from medai.server.routes import ROUTERS
from medai.services.models import ModelHandles
from medai.services.runtime import CpuPlan, InferenceLane, apply_thread_limits, plan_cpu

log = logging.getLogger("medai.server")

MAX_JSON_BYTES = 64 * 1024  # a 5,000-character complaint is ≤ 20 KB of UTF-8
MAX_UPLOAD_BYTES = 64 * 1024 * 1024 + 256 * 1024  # one image (64 MiB) plus the form fields


def body_limit(path: str) -> int:
    uploads = ("/predict", "/heatmap", "/reports/draft", "/api/v1/studies")
    return MAX_UPLOAD_BYTES if path.endswith(uploads) else MAX_JSON_BYTES


def create_app(triage_model: str | None = None, cxr_model: str | None = None,
               mri_model: str | None = None, knowledge_dir: str | None = None,
               plan: CpuPlan | None = None, preload: bool = True,
               extension: AppExtension | None = None) -> FastAPI:
    """The stateless job API; ``extension`` (the clinical platform) adds its routers, guards
    the job routes with its dependencies, replaces routers and runs at start and stop."""
    from medai.settings import get_settings

    ext = extension or AppExtension()
    settings = get_settings()
    plan = plan or plan_cpu(settings.workers, settings.inference_concurrency)
    apply_thread_limits(plan)
    handles = ModelHandles({"triage": triage_model, "cxr": cxr_model, "mri": mri_model},
                           threads=plan.threads, imaging_runtime=settings.imaging_runtime)

    @asynccontextmanager
    async def lifespan(app_: FastAPI):
        task = asyncio.create_task(asyncio.to_thread(_preload, app_)) if preload else None
        if ext.on_start is not None:
            await asyncio.to_thread(ext.on_start, app_)
        try:
            yield
        finally:
            if ext.on_stop is not None:
                await asyncio.to_thread(ext.on_stop, app_)
            if task is not None and not task.done():
                task.cancel()

    app = FastAPI(title="medai API", version=medai.__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  description="A hospital's own medical AI. Every output is an AI suggestion "
                              "or draft for a clinician to review.")
    app.state.models = handles
    app.state.plan = plan
    app.state.knowledge_dir = knowledge_dir
    app.state.triage_lane = InferenceLane(plan.concurrency, settings.inference_queue,
                                          settings.inference_timeout_s)
    app.state.imaging_lane = InferenceLane(plan.concurrency, settings.inference_queue,
                                           settings.inference_timeout_s)
    app.state.preloaded = False
    app.state.readiness_checks = dict(ext.readiness_checks)
    errors.install(app)
    for name, router in ROUTERS.items():
        if name in ext.replace:
            continue
        deps = [] if name in ("root", "health") else list(ext.job_dependencies)
        app.include_router(router, dependencies=deps)
    for router in ext.routers:
        app.include_router(router)
    mount_docs(app)
    # added last = outermost: Guard sees everything, then host check, headers, body limit
    app.add_middleware(BodyLimit, limit_for=body_limit)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.trusted_hosts)
    app.add_middleware(Guard)
    return app


@dataclass
class AppExtension:
    routers: list[APIRouter] = field(default_factory=list)
    replace: set[str] = field(default_factory=set)  # job routers the extension serves itself
    job_dependencies: list[Any] = field(default_factory=list)  # e.g. Depends(authenticated)
    readiness_checks: dict[str, Callable[[], None]] = field(default_factory=dict)
    on_start: Callable[[FastAPI], None] | None = None
    on_stop: Callable[[FastAPI], None] | None = None


def _preload(app: FastAPI) -> None:
    """Load every served model (and warm the triage path) before the first request needs it;
    readiness reports the outcome."""
    from medai.services import triage

    report = app.state.models.readiness()
    if report["triage"]["ready"]:
        try:
            triage.warm(app.state.models.get("triage"))
        except Exception as exc:  # reported by readiness through the triage call
            log.error("triage warm-up failed: %s", type(exc).__name__)
    app.state.preloaded = True
    log.info("models: %s", {t: r["ready"] for t, r in report.items()})


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` / ``medai serve --workers N``: each worker process
    builds its own app from the environment (``MEDAI_*``)."""
    return create_app(triage_model=os.environ.get("MEDAI_SERVE_TRIAGE_MODEL") or None,
                      cxr_model=os.environ.get("MEDAI_SERVE_CXR_MODEL") or None,
                      mri_model=os.environ.get("MEDAI_SERVE_MRI_MODEL") or None)
