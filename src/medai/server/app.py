"""FastAPI application factory: the API clinicians' tools and the web UI call.

At this stage it serves complaint triage; later jobs add their routers here. Models load once,
on first use, and are shared by all requests. Complaint text is never written to logs.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

import medai
from medai.core.text import MAX_TEXT_CHARS, TextInputError

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


class RedFlagOut(BaseModel):
    id: str
    name_tr: str
    name_en: str
    advice_tr: str
    matched: list[str]


class TriageResponse(BaseModel):
    status: str = Field(..., description="Always 'ai_suggestion': staff make the decision.")
    departments: list[DepartmentOut]
    urgent: bool
    red_flags: list[RedFlagOut]
    abstained: bool
    recommendation: RecommendationOut
    min_confidence: float
    model: str
    disclaimer_tr: str
    disclaimer_en: str
    warnings: list[str]


class _Models:
    """Lazily loaded, process-wide model handles."""

    def __init__(self, triage_ref: str | None) -> None:
        self.triage_ref = triage_ref
        self._triage = None
        self._lock = threading.Lock()

    def triage(self):
        if self._triage is None:
            with self._lock:
                if self._triage is None:
                    from medai.core import registry

                    self._triage = registry.load(registry.resolve_model(self.triage_ref,
                                                                        "triage"))
        return self._triage


def create_app(triage_model: str | None = None) -> FastAPI:
    app = FastAPI(
        title="medai API",
        version=medai.__version__,
        description="A hospital's own medical AI. Every output is an AI suggestion or draft "
                    "for a clinician to review.",
    )
    models = _Models(triage_model)
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

    return app
