"""The stateless job routes (findings, a Grad-CAM heatmap or a report draft for an uploaded
image that is not stored as a study), behind sign-in like every other route and audited: an
uploaded image is patient data even when nothing of it is kept.

The heatmap is computed here once for both faces of it: this route and a study's
``/heatmap`` call ``computed_heatmap`` and answer with the same headers and error codes."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from medai.core.jsonsafe import loads_limited
from medai.platform.access import audit
from medai.platform.api.deps import Principal, platform_of, require
from medai.server.errors import ApiError
from medai.server.inputs import CleanText
from medai.server.schemas import (
    DEFAULT_IMAGING_TASK,
    ImagingTask,
    Language,
    error_responses,
)
from medai.server.uploads import model_for, no_empty, read_upload
from medai.services import imaging as imaging_service
from medai.services.imaging import ImageInputError, ImagingResult
from medai.services.reports import (
    MAX_QUESTION_CHARS,
    DraftResult,
    FindingsInputError,
    shared_drafter,
)

log = logging.getLogger("medai.platform")
router = APIRouter(prefix="/api/v1")

HEATMAP_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"image/png": {}},
        "description": "Grad-CAM overlay (an AI suggestion); X-Medai-* "
        "headers say what it shows and which model made it",
    }
}


def heatmap_headers(
    label: str, probability: float | None, model_name: str | None, model_hash: str | None
) -> dict[str, str]:
    headers = {"X-Medai-Status": "ai_suggestion", "X-Medai-Label": label}
    if probability is not None:
        headers["X-Medai-Probability"] = f"{probability:.4f}"
    if model_name:
        headers["X-Medai-Model"] = model_name
    if model_hash:
        headers["X-Medai-Model-Hash"] = model_hash
    return headers


def _heatmap(predictor, data: bytes, label: str | None, frame: int | None):
    if frame is None:
        return imaging_service.heatmap(predictor, data, label)
    with imaging_service.decoded(data, frame) as image:  # that frame alone
        return imaging_service.heatmap(predictor, image, label)


async def computed_heatmap(
    request: Request, predictor, data: bytes, label: str | None, frame: int | None = None
) -> Response:
    """Grad-CAM of ``label`` (default: the most probable) inside the imaging lane; ``frame``:
    of that frame of a multi-frame DICOM (a slice of a series)."""
    if label is not None and label not in predictor.labels:
        raise ApiError(422, "invalid", f"label must be one of {list(predictor.labels)}")
    async with request.app.state.imaging_lane.slot():
        meta, png = await run_in_threadpool(_heatmap, predictor, data, label, frame)
    return Response(
        png,
        media_type="image/png",
        headers=heatmap_headers(
            meta.label, meta.probability, meta.model.name, meta.model.content_hash
        ),
    )


def _audit(request: Request, who: Principal, action: str, task: str, **detail) -> None:
    with platform_of(request).db.session() as db:
        audit.record(db, who.actor, action, "upload", None, task=task, **detail)


@router.post(
    "/imaging/{task}/predict",
    response_model=ImagingResult,
    tags=["imaging"],
    responses=error_responses(400, 401, 403, 413, 422, 503),
)
async def imaging_predict(
    task: ImagingTask,
    request: Request,
    file: Annotated[UploadFile, File(description="PNG, JPEG or DICOM")],
    who: Principal = Depends(require("imaging")),
) -> ImagingResult:
    """Findings (label, probability, threshold, decision) for an image that is not stored."""
    predictor = model_for(request, task)
    data = await read_upload(file)
    async with request.app.state.imaging_lane.slot():
        result = await run_in_threadpool(imaging_service.analyse, predictor, data)
    await run_in_threadpool(_audit, request, who, "predict", task)
    log.info("imaging task=%s positive=%d", task, sum(f.positive for f in result.findings))
    return result


@router.post(
    "/imaging/{task}/heatmap",
    response_class=Response,
    tags=["imaging"],
    responses={**HEATMAP_RESPONSES, **error_responses(400, 401, 403, 413, 422, 503)},
)
async def imaging_heatmap(
    task: ImagingTask,
    request: Request,
    file: Annotated[UploadFile, File(description="PNG, JPEG or DICOM")],
    label: Annotated[str | None, Query(max_length=64)] = None,
    who: Principal = Depends(require("imaging")),
) -> Response:
    """Grad-CAM overlay PNG for ``label`` (default: the most probable label)."""
    predictor = model_for(request, task)
    data = await read_upload(file)
    response = await computed_heatmap(request, predictor, data, label)
    await run_in_threadpool(_audit, request, who, "predict", task, output="heatmap")
    return response


@router.post(
    "/reports/draft",
    response_model=DraftResult,
    tags=["reports"],
    responses=error_responses(400, 401, 403, 413, 422, 503),
    dependencies=[Depends(no_empty("task", "lang"))],
)
async def report_draft(
    request: Request,
    file: Annotated[UploadFile | None, File(description="PNG, JPEG or DICOM")] = None,
    findings: Annotated[
        str | None,
        Form(
            max_length=256 * 1024,
            description=(
                "JSON: imaging predict output, a list of findings or label names. Without it the "
                "imaging model reads the image."
            ),
        ),
        CleanText,
    ] = None,
    task: Annotated[ImagingTask, Form()] = DEFAULT_IMAGING_TASK,
    lang: Annotated[Language, Form()] = "en",
    question: Annotated[str | None, Form(max_length=MAX_QUESTION_CHARS), CleanText] = None,
    who: Principal = Depends(require("imaging")),
) -> DraftResult:
    """A report draft (technique, findings, impression, recommendation) with citations;
    always ``status: "draft"`` for a radiologist to edit and sign."""
    data = await read_upload(file) if file is not None else None
    raw = loads_limited(findings, "findings") if findings else None
    predictor = model_for(request, task) if raw is None and data is not None else None
    drafter = shared_drafter(request.app.state.knowledge_dir)
    try:
        async with request.app.state.imaging_lane.slot():
            result = await run_in_threadpool(
                drafter.draft,
                data,
                raw,
                task=task,
                lang=lang,
                question=question,
                imaging_predictor=predictor,
            )
    except ImageInputError:  # unusable_image, image_refused, image_too_large (422)
        raise
    except (FindingsInputError, ValueError) as exc:  # a knowledge or task error too
        raise ApiError(422, "invalid", str(exc)) from None
    await run_in_threadpool(_audit, request, who, "draft", task)
    log.info(
        "report draft task=%s backend=%s findings=%d",
        task,
        result.backend,
        len(result.findings_used),
    )
    return result
