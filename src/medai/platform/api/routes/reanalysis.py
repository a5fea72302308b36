"""Re-analysing a study as another type (``platform.reading.reanalysis``): instead of uploading the
same images again under the right type; audited, refused by name once its report is signed."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import Field

from medai.platform.api.deps import Principal, platform_of, require
from medai.platform.api.schemas import Strict, StudyOut
from medai.platform.reading import reanalysis
from medai.server.inputs import RowId
from medai.server.schemas import ImagingTask, error_responses

log = logging.getLogger("medai.platform")
router = APIRouter(prefix="/api/v1/studies", tags=["studies"])


class ReanalyseIn(Strict):
    task: ImagingTask = Field(
        ..., description="the imaging task to analyse the study as (another than its own)"
    )


@router.post(
    "/{study_id}/reanalyse",
    response_model=StudyOut,
    status_code=202,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def reanalyse_study(
    study_id: RowId,
    body: ReanalyseIn,
    request: Request,
    who: Principal = Depends(require("study_reanalyse")),
) -> StudyOut:
    """Analyse the study again as ``task`` (202: queued; the study as it is now). The AI's own
    unsigned draft is replaced by the new type's; a report a person edited is kept and its
    reader told (``reread.retask``); a signed report is refused (409 ``report_signed``: amend
    it, or retract the study), as is a study being analysed (409 ``analysis_running``) or
    retracted (409 ``retracted``). An unknown task is a 422 naming the valid ones; the
    study's own task too."""
    out, job_id, urgent = await run_in_threadpool(
        reanalysis.reanalyse_study, platform_of(request), study_id, who.actor, body.task
    )
    request.app.state.dispatch(study_id, job_id, urgent)
    log.info("study %s to be re-analysed as %s", study_id, body.task)
    return StudyOut(**out)
