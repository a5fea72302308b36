"""Re-analysing a study as another type (``platform.reanalysis``): instead of uploading the
same images again under the right type; audited, refused by name once its report is signed."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import Field

from medai.platform.access import audit
from medai.platform.api.deps import Principal, platform_of, require
from medai.platform.api.schemas import Strict, StudyOut
from medai.platform.reading import reanalysis
from medai.platform.records.tables import Study
from medai.platform.worklist import studies
from medai.server.errors import ApiError
from medai.server.inputs import RowId
from medai.server.schemas import ImagingTask, error_responses

log = logging.getLogger("medai.platform")
router = APIRouter(prefix="/api/v1/studies", tags=["studies"])


class ReanalyseIn(Strict):
    task: ImagingTask = Field(
        ..., description="the imaging task to analyse the study as (another than its own)"
    )


REFUSED = (
    studies.StudyError,
    studies.StudyRetracted,
    reanalysis.ReportSigned,
    reanalysis.AnalysisRunning,
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
    p = platform_of(request)

    def run() -> tuple[StudyOut, int, bool]:
        with p.db.session() as db:
            study = db.get(Study, study_id)
            if study is None:
                raise ApiError(404, "not_found", f"no study {study_id}")
            done = reanalysis.reanalyse_as(db, study, body.task)
            audit.record(
                db, who.actor, "reanalyse_as", "study", study_id, task=body.task,
                previous=done.previous,
            )  # fmt: skip
            db.flush()
            return StudyOut(**studies.as_dict(db, done.study)), done.job.id, done.study.urgent

    try:
        out, job_id, urgent = await run_in_threadpool(run)
    except REFUSED as exc:
        with p.db.session() as db:  # the refusal is audited in its own transaction
            audit.record(
                db, who.actor, "reanalyse_as", "study", study_id, outcome="refused",
                task=body.task, code=exc.code,
            )  # fmt: skip
        raise
    request.app.state.dispatch(study_id, job_id, urgent)
    log.info("study %s to be re-analysed as %s", study_id, body.task)
    return out
