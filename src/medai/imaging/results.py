"""Typed imaging results: findings of one image, and a heatmap's metadata."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from medai.core.results import AIResult
from medai.imaging.decision import Basis, Decision, LabelState
from medai.imaging.io import REFUSAL_CODES

DISCLAIMER = "AI suggestion for a radiologist to review; not a diagnosis."


class Finding(BaseModel):
    """One label's row of the decision (``imaging.decision``): ``state`` is the decided
    answer, which every view reads; ``basis`` says why."""

    label: str
    probability: float = Field(..., ge=0.0, le=1.0)
    threshold: float = Field(
        ...,
        description="the label's operating point (operating_points."
        "json; for one-class tasks the minimum confidence)",
    )
    positive: bool = Field(..., description="decided present (state == 'present')")
    state: LabelState = Field(
        "absent",
        description="present, absent or indeterminate: the "
        "one state every view reads (`basis` says why)",
    )
    basis: Basis = "above_threshold"
    implied_by: str | None = None
    fragile: bool = Field(False, description="operating point chosen on few validation images")


class ImageInfo(BaseModel):
    format: str
    width: int = Field(..., description="width analysed (after any early downscale)")
    height: int
    original_width: int | None = None
    original_height: int | None = None
    frames: int = 1
    modality: str | None = Field(None, description="DICOM Modality, when the file says")
    view_position: str | None = Field(None, description="DICOM ViewPosition (PA, AP, LL, …)")


class ImagingResult(AIResult):
    """Findings for one image, or a refusal with the reason (wrong kind of image)."""

    status: Literal["ai_suggestion", "refused"]
    task: str
    refused: bool
    reason: str | None = None
    reason_code: str | None = Field(None, description="why refused: " + ", ".join(REFUSAL_CODES))
    reason_params: dict = Field(default_factory=dict)
    findings: list[Finding] = Field(default_factory=list)
    primary: str | None = Field(None, description="the leading decided label")
    decision: Decision | None = None
    image: ImageInfo | None = None
    disclaimer: str = DISCLAIMER
    embedding: list[float] | None = Field(
        None,
        exclude=True,
        description=(
            "the image's penultimate features on the gate's first principal axes, whitened: kept "
            "by monitoring for embedding drift, never stored with or sent in the result"
        ),
    )


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
