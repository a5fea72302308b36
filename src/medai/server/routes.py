"""The API routes: health, triage, imaging findings and heatmaps, report drafts.

Routes only translate: they call the services layer inside a bounded inference lane and map
its typed results and input errors onto HTTP (one contract: an image that gets no findings is
a 422 with ``code`` ``unusable_image`` or ``image_refused`` on every route).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel

import medai
from medai.core.jsonsafe import JsonInputError, loads_limited
from medai.server.errors import ApiError
from medai.server.schemas import ImagingTask, Language, TriageRequest, error_responses
from medai.services import imaging as imaging_service
from medai.services import triage as triage_service
from medai.services.imaging import MAX_BYTES, ImageInputError, ImageRefused, ImagingResult
from medai.services.models import ModelUnavailable
from medai.services.reports import (
    MAX_QUESTION_CHARS,
    DraftResult,
    FindingsInputError,
    shared_drafter,
)
from medai.services.triage import TextInputError, TriageResult

log = logging.getLogger("medai.server")
router = APIRouter()


class Liveness(BaseModel):
    status: str
    version: str


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/docs")


@router.get("/api/v1/health/live", response_model=Liveness, tags=["health"])
def live() -> dict[str, Any]:
    """Liveness: the process answers (restart it when this fails)."""
    return {"status": "alive", "version": medai.__version__}


@router.get("/api/v1/health/ready", tags=["health"],
            responses={503: {"description": "A served model cannot be loaded"}})
@router.get("/api/v1/health", tags=["health"],
            responses={503: {"description": "A served model cannot be loaded"}})
async def ready(request: Request) -> JSONResponse:
    """Readiness: every served model loads (each reported with its identity or its error);
    503 until then, so a load balancer sends no traffic to a worker that would fail it."""
    report = await run_in_threadpool(request.app.state.models.readiness)
    ok = all(r["ready"] for r in report.values())
    body = {"status": "ready" if ok else "not_ready", "version": medai.__version__,
            "models": report}
    return JSONResponse(body, 200 if ok else 503)


def _model(request: Request, task: str):
    try:
        return request.app.state.models.get(task)
    except ModelUnavailable as exc:
        raise ApiError(503, "unavailable", str(exc)) from None


@router.post("/api/v1/triage", response_model=TriageResult, tags=["triage"],
             responses=error_responses(400, 413, 422, 503))
async def triage(req: TriageRequest, request: Request) -> TriageResult:
    """Suggest departments for a complaint; red flags override with emergency advice."""
    predictor = _model(request, "triage")
    try:
        async with request.app.state.triage_lane.slot():
            result = await run_in_threadpool(triage_service.triage, predictor, req.text,
                                             req.top_k, req.min_confidence)
    except TextInputError as exc:
        raise ApiError(422, "invalid", str(exc)) from None
    log.info("triage chars=%d urgent=%s abstained=%s", len(req.text), result.urgent,
             result.abstained)
    return result


async def _read_upload(file: UploadFile) -> bytes:
    data = await file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ApiError(413, "too_large", f"file is larger than {MAX_BYTES:,} bytes")
    return data


def _image_error(exc: ImageInputError) -> ApiError:
    code = "image_refused" if isinstance(exc, ImageRefused) else "unusable_image"
    return ApiError(422, code, str(exc))


@router.post("/api/v1/imaging/{task}/predict", response_model=ImagingResult, tags=["imaging"],
             responses=error_responses(400, 413, 422, 503))
async def imaging_predict(task: ImagingTask, request: Request,
                          file: Annotated[UploadFile, File(description="PNG, JPEG or DICOM")]
                          ) -> ImagingResult:
    """Findings (label, probability, threshold, positive) for a PNG/JPEG/DICOM upload."""
    predictor = _model(request, task)
    data = await _read_upload(file)
    try:
        async with request.app.state.imaging_lane.slot():
            result = await run_in_threadpool(imaging_service.analyse, predictor, data)
    except ImageInputError as exc:
        raise _image_error(exc) from None
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
    predictor = _model(request, task)
    if label is not None and label not in predictor.labels:
        raise ApiError(422, "invalid", f"label must be one of {predictor.labels}")
    data = await _read_upload(file)
    try:
        async with request.app.state.imaging_lane.slot():
            meta, png = await run_in_threadpool(imaging_service.heatmap, predictor, data, label)
    except ImageInputError as exc:
        raise _image_error(exc) from None
    headers = {"X-Medai-Label": meta.label, "X-Medai-Probability": f"{meta.probability:.4f}",
               "X-Medai-Model": meta.model.name, "X-Medai-Model-Hash": meta.model.content_hash,
               "X-Medai-Status": "ai_suggestion"}
    return Response(png, media_type="image/png", headers=headers)


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
    data = await _read_upload(file) if file is not None else None
    try:
        raw = loads_limited(findings, "findings") if findings else None
    except JsonInputError as exc:
        raise ApiError(422, "invalid", str(exc)) from None
    predictor = _model(request, task) if raw is None and data is not None else None
    try:
        async with request.app.state.imaging_lane.slot():
            result = await run_in_threadpool(
                _drafter(request).draft, data, raw, task=task, lang=lang, question=question,
                imaging_predictor=predictor)
    except ImageInputError as exc:
        raise _image_error(exc) from None
    except (FindingsInputError, ValueError) as exc:
        raise ApiError(422, "invalid", str(exc)) from None
    log.info("report draft task=%s backend=%s findings=%d", task, result.backend,
             len(result.findings_used))
    return result
