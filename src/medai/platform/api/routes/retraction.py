"""Retracting a study as entered in error (``platform.reading.retraction``): radiologists only,
audited, one retraction per study."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from medai.platform.api.deps import Principal, platform_of, require
from medai.platform.api.schemas import RetractIn, StudyOut
from medai.platform.reading import retraction
from medai.server.inputs import RowId
from medai.server.schemas import error_responses

log = logging.getLogger("medai.platform")
router = APIRouter(prefix="/api/v1/studies", tags=["studies"])


@router.post(
    "/{study_id}/retract",
    response_model=StudyOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def retract_study(
    study_id: RowId,
    body: RetractIn,
    request: Request,
    who: Principal = Depends(require("study_retract")),
) -> StudyOut:
    """Retract the study as entered in error (wrong patient, wrong order, patient safety):
    it leaves the worklist (status ``entered_in_error``), nothing more is analysed, signed or
    sent for it, its queued deliveries are cancelled and every destination that received
    something gets the correction (FHIR ``entered-in-error``, HL7 result status W, a DICOM
    rejection note). Retracted already: 409 ``retracted``."""
    out = await run_in_threadpool(
        retraction.retract_study,
        platform_of(request),
        study_id,
        who.signed_in,
        who.actor,
        body.reason,
        body.note,
    )
    log.info("study %s retracted (%s)", study_id, body.reason)
    return StudyOut(**out)
