"""FastAPI application factory: the API clinicians' tools and the web UI call.

At this stage it serves complaint triage; later jobs add their routers here. Models load once,
on first use, and are shared by all requests. Complaint text is never written to logs.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

import medai
from medai.core.text import MAX_TEXT_CHARS, TextInputError
from medai.imaging.io import ImageInputError

log = logging.getLogger("medai.server")


class TriageRequest(BaseModel):
    text: str = Field(..., max_length=4 * MAX_TEXT_CHARS,
                      description="The patient's complaint in Turkish (free text).",
                      examples=["İki gündür kulağımda çınlama ve ağrı var, işitmem azaldı."])
    top_k: int = Field(3, ge=1, le=15, description="How many departments to return.")
    min_confidence: float | None = Field(
        None, ge=0.0, le=1.0, description="Abstain below this probability (default: model's).")


class DepartmentOut(BaseModel):
    id: str
    name: str
    name_en: str
    probability: float


class RecommendationOut(BaseModel):
    kind: str = Field(..., description="emergency | general_triage | department")
    department_id: str | None
    text_tr: str
    text_en: str
    level: str | None = Field(None, description="the leading red flag's level (emergencies)")


class EvidenceOut(BaseModel):
    detector: str = Field(..., description="rules | embedding")
    text: str = Field(..., description="the span that matched, or the chunk that was embedded")
    concepts: list[str]
    exemplar: str | None = Field(None, description="nearest urgent exemplar (embedding)")
    similarity: float | None


class RedFlagOut(BaseModel):
    id: str
    name_tr: str
    name_en: str
    level: str = Field(..., description="call_112 | emergency_department_now | urgent_same_day")
    advice_tr: str
    advice_en: str
    detectors: list[str] = Field(..., description="which detectors raised it: rules, embedding")
    evidence: list[EvidenceOut]
    matched: list[str]


class RedFlagHistoryOut(BaseModel):
    id: str
    name_tr: str
    name_en: str
    evidence: list[str]


class TriageResponse(BaseModel):
    status: str = Field(..., description="Always 'ai_suggestion': staff make the decision.")
    departments: list[DepartmentOut]
    urgent: bool
    red_flags: list[RedFlagOut]
    urgency_level: str | None = Field(None, description="the most urgent fired flag's level")
    red_flag_history: list[RedFlagHistoryOut] = Field(
        default_factory=list, description="signs set in the distant past: notes for staff")
    red_flag_engine: dict[str, Any]
    abstained: bool
    out_of_scope: bool = Field(False, description="not about a department this model knows")
    out_of_scope_probability: float | None = Field(
        None, description="the scope gate's P(other department); null without a gate")
    recommendation: RecommendationOut
    min_confidence: float
    model: str
    disclaimer_tr: str
    disclaimer_en: str
    warnings: list[str]


class _Models:
    """Lazily loaded, process-wide model handles, one per task."""

    def __init__(self, refs: dict[str, str | None]) -> None:
        self.refs = refs
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, task: str):
        if task not in self._loaded:
            with self._lock:
                if task not in self._loaded:
                    from medai.core import registry

                    self._loaded[task] = registry.load(
                        registry.resolve_model(self.refs.get(task), task))
        return self._loaded[task]

    def triage(self):
        return self.get("triage")


MAX_UPLOAD_BYTES = 64 * 1024 * 1024


def create_app(triage_model: str | None = None, cxr_model: str | None = None,
               mri_model: str | None = None, knowledge_dir: str | None = None) -> FastAPI:
    app = FastAPI(
        title="medai API",
        version=medai.__version__,
        description="A hospital's own medical AI. Every output is an AI suggestion or draft "
                    "for a clinician to review.",
    )
    models = _Models({"triage": triage_model, "cxr": cxr_model, "mri": mri_model})
    app.state.models = models

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    @app.get("/api/v1/health")
    def health() -> dict[str, Any]:
        info: dict[str, Any] = {"status": "ok", "version": medai.__version__}
        try:
            card = models.triage().card
            info["triage_model"] = {"name": card.name, "model_type": card.model_type,
                                    "labels": card.labels}
        except Exception as exc:  # health must report, not crash
            info["status"] = "degraded"
            info["triage_model_error"] = str(exc)
        return info

    @app.post("/api/v1/triage", response_model=TriageResponse,
              responses={422: {"description": "Unusable complaint (empty, too long, binary)"}})
    def triage(req: TriageRequest) -> dict[str, Any]:
        """Suggest departments for a complaint; red flags override with emergency advice."""
        try:
            result = models.triage().predict(req.text, top_k=req.top_k,
                                             min_confidence=req.min_confidence)
        except TextInputError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        log.info("triage chars=%d top=%s urgent=%s abstained=%s", len(req.text),
                 result.departments[0].id, result.urgent, result.abstained)
        return result.to_dict()

    def _imaging_model(task: str):
        if task not in ("cxr", "mri"):
            raise HTTPException(404, f"unknown imaging task {task!r}; use cxr or mri")
        try:
            return models.get(task)
        except Exception as exc:  # no model configured or loadable: say so, do not crash
            raise HTTPException(503, f"no {task} model available: {exc}") from None

    async def _read_upload(file: UploadFile) -> bytes:
        data = await file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"file is larger than {MAX_UPLOAD_BYTES:,} bytes")
        return data

    @app.post("/api/v1/imaging/{task}/predict")
    async def imaging_predict(task: str, file: UploadFile = File(...)) -> dict[str, Any]:
        """Findings (label, probability, threshold, positive) for a PNG/JPEG/DICOM upload;
        ``refused`` with a reason when the image is unusable or of the wrong kind."""
        predictor = _imaging_model(task)
        data = await _read_upload(file)
        result = await run_in_threadpool(predictor.predict, data)
        log.info("imaging task=%s refused=%s", task, result["refused"])
        return result

    @app.post("/api/v1/imaging/{task}/heatmap", response_class=Response,
              responses={200: {"content": {"image/png": {}}}})
    async def imaging_heatmap(task: str, file: UploadFile = File(...),
                              label: str | None = None) -> Response:
        """Grad-CAM overlay PNG for ``label`` (default: the most probable label)."""
        predictor = _imaging_model(task)
        data = await _read_upload(file)
        try:
            png = await run_in_threadpool(_heatmap_png, predictor, data, label)
        except (ImageInputError, ValueError) as exc:
            raise HTTPException(422, str(exc)) from None
        return Response(png, media_type="image/png")

    drafter_lock = threading.Lock()

    def _drafter():
        with drafter_lock:
            if getattr(app.state, "drafter", None) is None:
                from medai.reporting.service import Drafter

                app.state.drafter = Drafter(kb=knowledge_dir)
            return app.state.drafter

    @app.post("/api/v1/reports/draft")
    async def report_draft(file: UploadFile | None = File(None),
                           findings: str | None = Form(None, description=(
                               "JSON: imaging predict output, a list of findings or label "
                               "names. Without it the imaging model reads the image.")),
                           task: str = Form("cxr"), lang: str = Form("en"),
                           question: str | None = Form(None, max_length=20_000)
                           ) -> dict[str, Any]:
        """A report draft (technique, findings, impression, recommendation) with citations;
        always ``status: "draft"`` for a radiologist to edit and sign."""
        import json

        from medai.reporting.draft import FindingsInputError

        if task not in ("cxr", "mri"):
            raise HTTPException(404, f"unknown imaging task {task!r}; use cxr or mri")
        data = await _read_upload(file) if file is not None else None
        try:
            raw = json.loads(findings) if findings else None
        except json.JSONDecodeError as exc:
            raise HTTPException(422, f"findings is not valid JSON ({exc.msg})") from None
        predictor = _imaging_model(task) if raw is None and data is not None else None
        try:
            result = await run_in_threadpool(
                _drafter().draft, data, raw, task=task, lang=lang, question=question,
                imaging_predictor=predictor)
        except (FindingsInputError, ImageInputError, ValueError) as exc:
            raise HTTPException(422, str(exc)) from None
        log.info("report draft task=%s backend=%s findings=%d", task, result["backend"],
                 len(result["findings_used"]))
        return result

    return app


def _heatmap_png(predictor, data: bytes, label: str | None) -> bytes:
    import io

    from medai.imaging.explain import explain

    buf = io.BytesIO()
    explain(predictor, data, buf, label)
    return buf.getvalue()
