"""Liveness and readiness."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

import medai

log = logging.getLogger("medai.server")
router = APIRouter()


class Liveness(BaseModel):
    status: str
    version: str


@router.get("/api/v1/health/live", response_model=Liveness, tags=["health"])
def live() -> dict[str, Any]:
    """Liveness: the process answers (restart it when this fails)."""
    return {"status": "alive", "version": medai.__version__}


@router.get("/api/v1/health/ready", tags=["health"],
            responses={503: {"description": "A served model cannot be loaded"}})
@router.get("/api/v1/health", tags=["health"],
            responses={503: {"description": "A served model cannot be loaded"}})
async def ready(request: Request) -> JSONResponse:
    """Readiness: every served model loads (each reported with its identity or its error);
    503 until then, so a load balancer sends no traffic to a worker that would fail it."""
    report = await run_in_threadpool(request.app.state.models.readiness)
    ok = all(r["ready"] for r in report.values())
    body = {"status": "ready", "version": medai.__version__, "models": report}
    for name, check in request.app.state.readiness_checks.items():
        try:
            await run_in_threadpool(check)
            body[name] = {"ready": True}
        except Exception as exc:  # reported, never raised: readiness answers 503
            body[name] = {"ready": False, "error": type(exc).__name__}
            ok = False
    body["status"] = "ready" if ok else "not_ready"
    return JSONResponse(body, 200 if ok else 503)


