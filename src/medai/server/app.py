"""FastAPI application factory: the API clinicians' tools (and later the web UI) call.

Models load once per process (``services.models``) and are shared read-only by all requests;
model calls run in bounded lanes (``services.runtime``); bodies are limited while streaming;
every error has one shape; complaint text and request bodies are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI
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
    uploads = ("/predict", "/heatmap", "/reports/draft")
    return MAX_UPLOAD_BYTES if path.endswith(uploads) else MAX_JSON_BYTES


def create_app(triage_model: str | None = None, cxr_model: str | None = None,
               mri_model: str | None = None, knowledge_dir: str | None = None,
               plan: CpuPlan | None = None, preload: bool = True) -> FastAPI:
    from medai.settings import get_settings

    settings = get_settings()
    plan = plan or plan_cpu(settings.workers, settings.inference_concurrency)
    apply_thread_limits(plan)
    handles = ModelHandles({"triage": triage_model, "cxr": cxr_model, "mri": mri_model},
                           threads=plan.threads, imaging_runtime=settings.imaging_runtime)

    @asynccontextmanager
    async def lifespan(app_: FastAPI):
        task = asyncio.create_task(asyncio.to_thread(_preload, app_)) if preload else None
        yield
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
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    mount_docs(app)
    # added last = outermost: Guard sees everything, then host check, headers, body limit
    app.add_middleware(BodyLimit, limit_for=body_limit)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.trusted_hosts)
    app.add_middleware(Guard)
    return app


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
