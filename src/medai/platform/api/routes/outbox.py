"""Admin: where results went. Per destination, how many deliveries are queued, being sent,
retrying (with the next attempt), delivered, failed (with the destination's reason) or skipped;
the deliveries themselves; and a retry of a failed one. Ids, destinations and states only: no
patient data (the admin role reads none)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from medai.platform.api.deps import Principal, platform_of, require
from medai.platform.delivery import outbox
from medai.server.inputs import RowId
from medai.server.schemas import error_responses

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
State = Literal["queued", "retrying", "held", "sending", "delivered", "failed", "skipped"]


class Counts(BaseModel):
    queued: int
    retrying: int
    held: int = 0  # queued for a study with an open identity conflict
    sending: int
    delivered: int
    failed: int
    skipped: int


class Problem(BaseModel):
    id: int
    state: str
    code: str | None
    reason: str | None
    at: str | None


class DestinationOut(BaseModel):
    name: str
    kind: str | None  # dicom | dicomweb | fhir | hl7 (None: no longer configured)
    where: str | None
    configured: bool
    events: list[str]
    counts: Counts
    next_attempt_at: str | None
    last_problem: Problem | None


class DeliveryOut(BaseModel):
    id: int
    event: str
    destination: str
    kind: str
    study_id: int
    report_version: int | None
    state: State
    attempts: int
    next_attempt_at: str | None
    code: str | None
    reason: str | None
    sent: int | None
    created_at: str | None
    updated_at: str | None
    delivered_at: str | None


class OutboxOut(BaseModel):
    destinations: list[DestinationOut]
    items: list[DeliveryOut]
    total: int


@router.get("/outbox", response_model=OutboxOut, responses=error_responses(401, 403, 422))
def outbox_status(
    request: Request,
    who: Principal = Depends(require("outbox_manage")),
    destination: str | None = Query(None, max_length=32),
    state: State | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=10_000_000),
) -> OutboxOut:
    """Each destination's deliveries by state, and the deliveries (newest first)."""
    p = platform_of(request)
    with p.db.reader() as db:
        return OutboxOut(
            **outbox.status(db, p.settings.destinations(), destination, state, limit, offset)
        )


@router.post(
    "/outbox/{item_id}/retry",
    response_model=DeliveryOut,
    responses=error_responses(401, 403, 404, 409),
)
def retry_delivery(
    item_id: RowId, request: Request, who: Principal = Depends(require("outbox_manage"))
) -> DeliveryOut:
    """Send a failed delivery again (after the destination or the object was put right)."""
    p = platform_of(request)
    with p.db.session() as db:
        return DeliveryOut(**outbox.retry_by(db, item_id, p.clock(), who.actor))
