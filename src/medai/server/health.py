"""Liveness and readiness."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

import medai
from medai.core.faults import classify

log = logging.getLogger("medai.server")
router = APIRouter()


class Liveness(BaseModel):
    status: str
    version: str


@router.get("/api/v1/health/live", response_model=Liveness, tags=["health"])
def live() -> dict[str, Any]:
    """Liveness: the process answers (restart it when this fails)."""
    return {"status": "alive", "version": medai.__version__}


_READY_503: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "A served model cannot be loaded, the database or the "
        "file storage cannot be written, or the database's schema "
        "is not this release's (``code`` names why: "
        "``storage_read_only``, ``storage_full``, "
        "``schema_behind``, ``schema_newer``, ``keys_missing``: the "
        "configured keys open none of the site's sealed data, ...)"
    }
}


@router.get("/api/v1/health/ready", tags=["health"], responses=_READY_503)
@router.get("/api/v1/health", tags=["health"], responses=_READY_503)
async def ready(request: Request) -> JSONResponse:
    """Readiness: every served model loads (each reported with its identity or its error) and
    every platform check passes (the database and the file storage take a real write); 503
    until then, so a load balancer sends no traffic to a worker that would fail it."""
    report = await run_in_threadpool(request.app.state.models.readiness)
    if not await _shows_paths(request):
        report = without_paths(report)
    ok = all(r["ready"] for r in report.values())
    body: dict[str, Any] = {"status": "ready", "version": medai.__version__, "models": report}
    codes = []
    for name, check in request.app.state.readiness_checks.items():
        try:
            await run_in_threadpool(check)
            body[name] = {"ready": True}
            _note(request, name, None, None)
        except Exception as exc:  # broad: a readiness probe reports any failure, never raises (503)
            fault = classify(exc)
            # a check's own named failure (the schema's ``schema_behind``) carries its code
            code = fault.code if fault else getattr(exc, "code", None)
            body[name] = {"ready": False, "error": type(exc).__name__}
            if isinstance(code, str):
                body[name]["code"] = code
                codes.append(code)
            _note(
                request,
                name,
                code if isinstance(code, str) else type(exc).__name__,
                f"{fault.where} is {fault.reason} ({fault.cause or '-'})"
                if fault
                else str(exc)
                if isinstance(code, str)
                else f"check failed: {type(exc).__name__}",
            )
            ok = False
    body["status"] = "ready" if ok else "not_ready"
    if not ok:  # also an ErrorOut: detail and code
        failing = [n for n, r in report.items() if not r["ready"]]
        failing += [n for n in request.app.state.readiness_checks if not body[n]["ready"]]
        body["detail"] = "not ready: " + ", ".join(failing)
        body["code"] = codes[0] if codes else "not_ready"
    return JSONResponse(body, 200 if ok else 503)


async def _shows_paths(request: Request) -> bool:
    """Whether this caller may read the server's file paths: the face decides
    (``app.state.health_detail``, the platform's: an admin); without one, nobody. Readiness
    is anonymous (load balancers probe it), and a path names the host's layout."""
    decide = getattr(request.app.state, "health_detail", None)
    return bool(decide is not None and await run_in_threadpool(decide, request))


# an absolute path inside a message ("model '/srv/medai/models/x': ..."), not a URL's path
_ABSOLUTE = re.compile(r"(?<![\w:/.~])~?/(?:[^\s'\"/:,;()\[\]]+/)*([^\s'\"/:,;()\[\]]*)")


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _ABSOLUTE.sub(lambda m: m.group(1) or "…", value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if k != "path"}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def without_paths(report: dict[str, Any]) -> dict[str, Any]:
    """The readiness report with no filesystem path: each model's ``path`` dropped and any
    path in an error reduced to its last part (names, versions and hashes stay)."""
    return _scrub(report)


def _note(request: Request, name: str, state: str | None, why: str | None) -> None:
    """One log line when a check starts failing (saying which path and why), changes reason
    or recovers — not one per probe."""
    seen = getattr(request.app.state, "readiness_seen", None)
    if seen is None:
        seen = request.app.state.readiness_seen = {}
    if seen.get(name) == state:
        return
    if state is None:
        if name in seen:
            log.info("readiness: %s recovered", name)
    else:
        log.error("readiness: %s not ready: %s", name, why)
    seen[name] = state
