"""Admin: monitoring of the active models — volume, refusal and abstention, latency, output,
input and metadata drift against each model's reference, agreement with signatures, and the
alerts raised (see ``platform.lifecycle.monitoring``). Numbers only, no patient data."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from medai.platform.api.deps import Principal, platform_of, require
from medai.platform.lifecycle import monitoring
from medai.platform.records.tables import MonitorAlert
from medai.server.schemas import error_responses

router = APIRouter(prefix="/api/v1/models", tags=["models"])


@router.get("/monitoring", responses=error_responses(401, 403, 422))
async def monitoring_summary(
    request: Request,
    who: Principal = Depends(require("models_read")),
    task: str | None = Query(None, max_length=32),
) -> dict[str, Any]:
    """Per active model (of one task, or all): its monitoring numbers and alerts."""
    return await run_in_threadpool(monitoring.overview, platform_of(request), task)


@router.get("/alerts", responses=error_responses(401, 403, 422))
def monitoring_alerts(
    request: Request,
    who: Principal = Depends(require("models_read")),
    open_only: bool = Query(False, alias="open"),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    """Monitoring alerts, newest first (``open=true``: those not cleared)."""
    query = select(MonitorAlert).order_by(MonitorAlert.id.desc()).limit(limit)
    if open_only:
        query = query.where(MonitorAlert.cleared_at.is_(None))
    with platform_of(request).db.reader() as db:
        return {"items": [monitoring.as_dict(a) for a in db.scalars(query)]}
