"""Typed imaging results: findings of one image, and a heatmap's metadata."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from medai.core.results import AIResult

DISCLAIMER = "AI suggestion for a radiologist to review; not a diagnosis."


class Finding(BaseModel):
    label: str
    probability: float = Field(..., ge=0.0, le=1.0)
    threshold: float = Field(..., description="the label's operating threshold (model card)")
    positive: bool = Field(..., description="probability ≥ threshold")


class ImageInfo(BaseModel):
    format: str
    width: int = Field(..., description="width analysed (after any early downscale)")
    height: int
    original_width: int | None = None
    original_height: int | None = None
    frames: int = 1


class ImagingResult(AIResult):
    """Findings for one image, or a refusal with the reason (wrong kind of image)."""

    status: Literal["ai_suggestion", "refused"]
    task: str
    refused: bool
    reason: str | None = None
    findings: list[Finding] = Field(default_factory=list)
    primary: str | None = Field(None, description="the leading mutually exclusive class")
    image: ImageInfo | None = None
    disclaimer: str = DISCLAIMER


class HeatmapResult(AIResult):
    """A Grad-CAM overlay (the PNG travels separately) and what it shows."""

    status: Literal["ai_suggestion"] = "ai_suggestion"
    task: str
    label: str
    probability: float
    width: int
    height: int
    method: str = "grad-cam"
    disclaimer: str = DISCLAIMER
