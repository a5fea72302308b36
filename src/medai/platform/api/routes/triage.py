"""Triage for signed-in users (kept as their history), registered kiosks (each its own daily
quota) and anonymous clients (a small daily quota per address). Days are the hospital's
(``MEDAI_TIMEZONE``). Complaints are stored encrypted; the audit log records only that it
happened."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import Field

from medai.platform.access import audit, roles, triage_requests
from medai.platform.api.deps import Principal, deny, platform_of, principal, require
from medai.platform.api.routes.kiosks import kiosk_of
from medai.platform.api.schemas import TriageHistory
from medai.server.errors import ApiError
from medai.server.schemas import TriageRequest, error_responses
from medai.server.uploads import model_for
from medai.services import triage as triage_service
from medai.services.triage import TriageResult

router = APIRouter(prefix="/api/v1", tags=["triage"])


class TriageOut(TriageResult):
    record_id: int | None = Field(
        None,
        description=(
            "the triage's record number: staff record with it where the patient was actually "
            "sent (POST /api/v1/triage/{record_id}/outcome)"
        ),
    )


@router.post(
    "/triage",
    response_model=TriageOut,
    responses=error_responses(400, 401, 403, 413, 422, 429, 503),
)
async def triage(
    req: TriageRequest, request: Request, who: Principal = Depends(principal)
) -> TriageOut:
    """Suggest departments for a complaint; red flags override with emergency advice.
    Without a user: a registered kiosk (cookie or ``X-Kiosk-Token``; its own daily quota, 429
    ``kiosk_quota_exhausted``), else an anonymous client (a small quota per address)."""
    if who.user is not None and not roles.allowed(who.role, "triage"):
        await run_in_threadpool(deny, request, who, "triage")
        raise ApiError(403, "forbidden", f"role {who.role!r} may not use triage")
    kiosk = await run_in_threadpool(kiosk_of, request) if who.user is None else None

    async def answer() -> TriageResult:
        predictor = model_for(request, "triage")
        async with request.app.state.triage_lane.slot():
            return await run_in_threadpool(
                triage_service.triage, predictor, req.text, req.top_k, req.min_confidence
            )

    result, record_id = await triage_requests.ask(
        platform_of(request), who.user, who.actor, who.client, kiosk, req.text, answer
    )
    return TriageOut(**result.model_dump(), record_id=record_id)


@router.get("/triage/history", response_model=TriageHistory, responses=error_responses(401, 403))
def history(
    request: Request,
    who: Principal = Depends(require("triage_history")),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=10_000_000),
) -> TriageHistory:
    """Your own triage requests, newest first (a patient sees only theirs), since the
    account's last reset or role change (``accounts.own_since``)."""
    with platform_of(request).db.session() as db:
        out = triage_requests.history(db, who.signed_in, limit, offset)
        audit.record(db, who.actor, "view", "triage_history", who.signed_in.id)
    return TriageHistory(**out)
