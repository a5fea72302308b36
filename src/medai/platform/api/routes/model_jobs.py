"""Admin: retraining and site validation as jobs (``lifecycle.model_jobs``) — start one, watch
its progress, read its result (the new candidate, the validation's verdict) or why it failed,
cancel it. Each start and cancel is audited."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from medai.platform.api.deps import Principal, platform_of, require
from medai.platform.api.schemas import Strict
from medai.platform.lifecycle import model_jobs
from medai.server.inputs import RowId
from medai.server.schemas import error_responses

router = APIRouter(prefix="/api/v1/models/jobs", tags=["models"])
Status = Literal["queued", "running", "done", "failed", "cancelled"]


class JobIn(Strict):
    kind: Literal["retrain", "validate"]
    task: str | None = Field(None, max_length=32, description="retrain: the imaging task")
    model_id: int | None = Field(
        None, ge=1, le=2**31 - 1, description="validate: the candidate to validate"
    )
    options: dict[str, int] = Field(
        default_factory=dict,
        max_length=8,
        description=(
            "retrain: "
            + ", ".join(
                f"{k} ({lo}-{hi}, default {d})"
                for k, (lo, hi, d) in model_jobs.RETRAIN_OPTIONS.items()
            )
        ),
    )


class JobOut(BaseModel):
    id: int
    kind: str
    task: str
    model_id: int | None
    options: dict[str, Any]
    status: Status
    progress: float = Field(description="0 to 1")
    stage: str = Field(description="export, train, register, validate, done, …")
    attempts: int
    result: dict[str, Any] | None = Field(
        None,
        description=(
            "retrain: the registered candidate, its test metrics and datasheet; validate: the "
            "validation"
        ),
    )
    error: str | None
    cancel_requested: bool
    created_by: str
    created_at: str | None
    started_at: str | None
    finished_at: str | None


class JobList(BaseModel):
    items: list[JobOut]


@router.post(
    "", response_model=JobOut, status_code=202, responses=error_responses(401, 403, 404, 409, 422)
)
async def start_job(
    body: JobIn, request: Request, who: Principal = Depends(require("models_manage"))
) -> JobOut:
    """Start a retraining (export the task's signed studies, train, register a candidate) or
    a site validation of a candidate; 409 while the same job is queued or running."""
    p = platform_of(request)
    # refused 422, already running 409, no such model 404: the kernel answers each
    job = await run_in_threadpool(
        model_jobs.submit, p, body.kind, who.actor, body.task, body.model_id, body.options
    )
    request.app.state.dispatch_model_job(job["id"])
    return JobOut(**job)


@router.get("", response_model=JobList, responses=error_responses(401, 403, 422))
async def list_jobs(
    request: Request,
    task: str | None = Query(None, max_length=32),
    limit: int = Query(50, ge=1, le=500),
    who: Principal = Depends(require("models_manage")),
) -> JobList:
    rows = await run_in_threadpool(model_jobs.listing, platform_of(request), task, limit)
    return JobList(items=[JobOut(**r) for r in rows])


@router.get("/{job_id}", response_model=JobOut, responses=error_responses(401, 403, 404, 422))
async def get_job(
    job_id: RowId, request: Request, who: Principal = Depends(require("models_manage"))
) -> JobOut:
    return JobOut(**await run_in_threadpool(model_jobs.get, platform_of(request), job_id))


@router.post(
    "/{job_id}/cancel", response_model=JobOut, responses=error_responses(401, 403, 404, 409, 422)
)
async def cancel_job(
    job_id: RowId, request: Request, who: Principal = Depends(require("models_manage"))
) -> JobOut:
    """A queued job is cancelled now; a running retraining stops at its next batch."""
    return JobOut(
        **await run_in_threadpool(model_jobs.cancel, platform_of(request), job_id, who.actor)
    )
