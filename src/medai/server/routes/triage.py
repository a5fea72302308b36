"""Complaint triage."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from medai.server.errors import ApiError
from medai.server.routes.common import model_for
from medai.server.schemas import TriageRequest, error_responses
from medai.services import triage as triage_service
from medai.services.triage import TextInputError, TriageResult

log = logging.getLogger("medai.server")
router = APIRouter()


@router.post("/api/v1/triage", response_model=TriageResult, tags=["triage"],
             responses=error_responses(400, 413, 422, 503))
async def triage(req: TriageRequest, request: Request) -> TriageResult:
    """Suggest departments for a complaint; red flags override with emergency advice."""
    predictor = model_for(request, "triage")
    try:
        async with request.app.state.triage_lane.slot():
            result = await run_in_threadpool(triage_service.triage, predictor, req.text,
                                             req.top_k, req.min_confidence)
    except TextInputError as exc:
        raise ApiError(422, "invalid", str(exc)) from None
    log.info("triage chars=%d urgent=%s abstained=%s", len(req.text), result.urgent,
             result.abstained)
    return result


