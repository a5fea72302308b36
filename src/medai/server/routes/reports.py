"""Report drafts."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool

from medai.core.jsonsafe import JsonInputError, loads_limited
from medai.server.errors import ApiError
from medai.server.routes.common import image_error, model_for, read_upload
from medai.server.schemas import ImagingTask, Language, error_responses
from medai.services.imaging import ImageInputError
from medai.services.reports import (
    MAX_QUESTION_CHARS,
    DraftResult,
    FindingsInputError,
    shared_drafter,
)

log = logging.getLogger("medai.server")
router = APIRouter()


def _drafter(request: Request):
    return shared_drafter(request.app.state.knowledge_dir)


@router.post("/api/v1/reports/draft", response_model=DraftResult, tags=["reports"],
             responses=error_responses(400, 413, 422, 503))
async def report_draft(
        request: Request,
        file: Annotated[UploadFile | None, File(description="PNG, JPEG or DICOM")] = None,
        findings: Annotated[str | None, Form(max_length=256 * 1024, description=(
            "JSON: imaging predict output, a list of findings or label names. Without it the "
            "imaging model reads the image."))] = None,
        task: Annotated[ImagingTask, Form()] = "cxr",
        lang: Annotated[Language, Form()] = "en",
        question: Annotated[str | None, Form(max_length=20 * MAX_QUESTION_CHARS)] = None,
) -> DraftResult:
    """A report draft (technique, findings, impression, recommendation) with citations;
    always ``status: "draft"`` for a radiologist to edit and sign."""
    data = await read_upload(file) if file is not None else None
    try:
        raw = loads_limited(findings, "findings") if findings else None
    except JsonInputError as exc:
        raise ApiError(422, "invalid", str(exc)) from None
    predictor = model_for(request, task) if raw is None and data is not None else None
    try:
        async with request.app.state.imaging_lane.slot():
            result = await run_in_threadpool(
                _drafter(request).draft, data, raw, task=task, lang=lang, question=question,
                imaging_predictor=predictor)
    except ImageInputError as exc:
        raise image_error(exc) from None
    except (FindingsInputError, ValueError) as exc:
        raise ApiError(422, "invalid", str(exc)) from None
    log.info("report draft task=%s backend=%s findings=%d", task, result.backend,
             len(result.findings_used))
    return result
