"""Imaging findings and Grad-CAM heatmaps."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from medai.server.errors import ApiError
from medai.server.routes.common import image_error, model_for, read_upload
from medai.server.schemas import ImagingTask, error_responses
from medai.services import imaging as imaging_service
from medai.services.imaging import ImageInputError, ImagingResult

log = logging.getLogger("medai.server")
router = APIRouter()


@router.post("/api/v1/imaging/{task}/predict", response_model=ImagingResult, tags=["imaging"],
             responses=error_responses(400, 413, 422, 503))
async def imaging_predict(task: ImagingTask, request: Request,
                          file: Annotated[UploadFile, File(description="PNG, JPEG or DICOM")]
                          ) -> ImagingResult:
    """Findings (label, probability, threshold, positive) for a PNG/JPEG/DICOM upload."""
    predictor = model_for(request, task)
    data = await read_upload(file)
    try:
        async with request.app.state.imaging_lane.slot():
            result = await run_in_threadpool(imaging_service.analyse, predictor, data)
    except ImageInputError as exc:
        raise image_error(exc) from None
    log.info("imaging task=%s positive=%d", task, sum(f.positive for f in result.findings))
    return result


@router.post("/api/v1/imaging/{task}/heatmap", response_class=Response, tags=["imaging"],
             responses={200: {"content": {"image/png": {}},
                              "description": "Grad-CAM overlay; X-Medai-* headers say what "
                                             "it shows and which model made it"},
                        **error_responses(400, 413, 422, 503)})
async def imaging_heatmap(task: ImagingTask, request: Request,
                          file: Annotated[UploadFile, File(description="PNG, JPEG or DICOM")],
                          label: Annotated[str | None, Query(max_length=64)] = None
                          ) -> Response:
    """Grad-CAM overlay PNG for ``label`` (default: the most probable label)."""
    predictor = model_for(request, task)
    if label is not None and label not in predictor.labels:
        raise ApiError(422, "invalid", f"label must be one of {predictor.labels}")
    data = await read_upload(file)
    try:
        async with request.app.state.imaging_lane.slot():
            meta, png = await run_in_threadpool(imaging_service.heatmap, predictor, data, label)
    except ImageInputError as exc:
        raise image_error(exc) from None
    headers = {"X-Medai-Label": meta.label, "X-Medai-Probability": f"{meta.probability:.4f}",
               "X-Medai-Model": meta.model.name, "X-Medai-Model-Hash": meta.model.content_hash,
               "X-Medai-Status": "ai_suggestion"}
    return Response(png, media_type="image/png", headers=headers)


