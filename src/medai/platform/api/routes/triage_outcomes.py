"""A triage by its record number, and where the patient was actually sent: clinicians record
the department (and whether staff judged it urgent) — the triage model's labels."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from medai.platform.access import audit
from medai.platform.api.deps import Principal, platform_of, require
from medai.platform.lifecycle import monitoring, triage_labels
from medai.server.inputs import RowId
from medai.server.schemas import error_responses

router = APIRouter(prefix="/api/v1/triage", tags=["triage"])


class OutcomeIn(BaseModel):
    # the document lists the ids the route accepts (the triage task's labels); the route's
    # own check names the valid ones when another is sent
    department: str = Field(
        min_length=1,
        max_length=64,
        description="the department id",
        json_schema_extra={"enum": list(triage_labels.departments())},
    )
    urgent: bool = Field(False, description="staff judged it urgent")


class TriageRecordOut(BaseModel):
    id: int
    complaint: str
    urgent: bool
    result: dict[str, Any]
    created_at: str
    outcome: dict[str, Any] | None


@router.get(
    "/{record_id}", response_model=TriageRecordOut, responses=error_responses(401, 403, 404, 422)
)
def triage_record(
    record_id: RowId, request: Request, who: Principal = Depends(require("triage_outcome"))
) -> TriageRecordOut:
    """A triage by the record number its screen showed: the complaint, the AI's suggestion
    and the outcome recorded so far."""
    with platform_of(request).db.session() as db:
        out = TriageRecordOut(**triage_labels.view(db, record_id))
        audit.record(db, who.actor, "view", "triage", record_id)
    return out


@router.post(
    "/{record_id}/outcome",
    response_model=TriageRecordOut,
    responses=error_responses(401, 403, 404, 422),
)
def record_outcome(
    record_id: RowId,
    body: OutcomeIn,
    request: Request,
    who: Principal = Depends(require("triage_outcome")),
) -> TriageRecordOut:
    """Record the department the patient was actually sent to (a later record replaces it
    as the label; earlier ones stay)."""
    p = platform_of(request)
    with p.db.session() as db:
        model_hash = triage_labels.record_outcome(
            db, record_id, body.department, body.urgent, who.signed_in, who.actor
        )
    monitoring.check(p, "triage", model_hash)  # after the commit: department agreement with staff
    return triage_record(record_id, request, who)
