"""Typed imaging results: findings of one image, and a heatmap's metadata."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from medai.core.results import AIResult
from medai.imaging.decision import Basis, Decision, LabelState
from medai.imaging.io import REFUSAL_CODES, Refusal
from medai.imaging.scope import Scope

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
        default="absent",
        description="present, absent or indeterminate: the "
        "one state every view reads (`basis` says why)",
    )
    basis: Basis = "above_threshold"
    implied_by: str | None = None
    fragile: bool = Field(
        default=False, description="operating point chosen on few validation images"
    )


class ImageInfo(BaseModel):
    format: str
    width: int = Field(..., description="width analysed (after any early downscale)")
    height: int
    original_width: int | None = None
    original_height: int | None = None
    frames: int = 1
    modality: str | None = Field(default=None, description="DICOM Modality, when the file says")
    view_position: str | None = Field(
        default=None, description="DICOM ViewPosition (PA, AP, LL, …)"
    )


class SeriesChoice(BaseModel):
    """Which series of a study was read, among how many, and why (the rule is explicit)."""

    chosen: str | None = None
    considered: int = Field(default=1, ge=0)
    why: str = ""


class ReadExclusion(BaseModel):
    """A slice read but left out of the decision: unreadable, or refused (e.g. unlike the
    model's training images) while most of its series was not."""

    instance: str
    reason: str = Field(..., description="an image refusal code (``REFUSAL_CODES``)")


class ReadDuplicate(BaseModel):
    """An instance set aside as another's duplicate: it counts once (issue 67). ``same_as``
    names the slice kept; ``reason``: ``same_position`` (the same ImagePositionPatient and
    ImageOrientationPatient, from the header) or ``same_pixels`` (identical decoded pixels)."""

    instance: str
    same_as: str
    reason: Literal["same_position", "same_pixels"]


class UndecidedSlices(BaseModel):
    """Slices that suggest a finding but are too few for the series rule to decide it (a small
    lesion): the study is left undecided with them as its key slices, never read as normal.
    ``numbers``: 1-based, in the viewer's anatomical order (its "10 / 20" counter)."""

    label: str
    instances: list[str] = Field(default_factory=list)
    numbers: list[int] = Field(default_factory=list)
    needed: int = Field(..., ge=1, description="neighbouring slices the rule needs to decide")
    min_probability: float = Field(..., description="the probability that makes a slice count")


class SeriesAccount(BaseModel):
    """One series of the study and what became of it: read (with its own decision) or not,
    and why (``reason``: ``localizer``, ``too_many_series``, ``no_image`` or a refusal code;
    ``message`` in words)."""

    series_uid: str | None = None
    series_number: int | None = None
    description: str | None = Field(default=None, description="the series' SeriesDescription")
    slices: int = Field(default=0, ge=0, description="its distinct slices")
    read: bool = False
    state: str | None = Field(default=None, description="its own decision's state when read")
    primary: str | None = None
    candidates: list[str] = Field(default_factory=list)
    reason: str | None = None
    message: str | None = None
    decides: bool = Field(default=False, description="the series the study's decision comes from")


class ReadInfo(BaseModel):
    """What an imaging result read (``imaging.series``): the series, how many of its slices
    were read and which ones carry the decision. Slices are counted one per frame: the frames
    of a multi-frame instance are named ``<SOPInstanceUID>#<frame>`` (1-based)."""

    series_uid: str | None = None
    instances_in_series: int = Field(
        default=1, ge=0, description="slices in the series (frames counted)"
    )
    instances_read: int = Field(default=1, ge=0, description="slices that went through the model")
    key_instances: list[str] = Field(
        default_factory=list,
        description="the slices that carry the decision (empty for a single image, and for a "
        "series read as having none of the findings)",
    )
    read_instances: list[str] = Field(
        default_factory=list, description="every slice read, in anatomical order"
    )
    sampled: bool = Field(default=False, description="the series had more slices than ``cap``")
    cap: int = Field(default=1, ge=1, description="the most slices read of one series")
    rule: str = Field(default="single_image", description="the aggregation rule's name")
    series_choice: SeriesChoice | None = None
    excluded: list[ReadExclusion] = Field(
        default_factory=list, description="slices read but not used for the decision"
    )
    duplicates: list[ReadDuplicate] = Field(
        default_factory=list, description="instances set aside as duplicates: each counts once"
    )
    undecided_slices: UndecidedSlices | None = Field(
        default=None,
        description="a small lesion: slices suggesting a finding, too few to decide it",
    )
    series: list[SeriesAccount] = Field(
        default_factory=list,
        description="every series of the study and what became of it (read or why not)",
    )


class ImagingResult(AIResult):
    """Findings for one image, or a refusal with the reason (wrong kind of image)."""

    status: Literal["ai_suggestion", "refused"]
    task: str
    refused: bool
    reason: str | None = None
    reason_code: str | None = Field(
        default=None, description="why refused: " + ", ".join(REFUSAL_CODES)
    )
    reason_params: dict = Field(default_factory=dict)
    findings: list[Finding] = Field(default_factory=list)
    primary: str | None = Field(default=None, description="the leading decided label")
    decision: Decision | None = None
    image: ImageInfo | None = None
    read: ReadInfo | None = Field(
        default=None,
        description="what was read: the series, its slices read and the key slices (None: "
        "results stored before series reading)",
    )
    scope: Scope | None = Field(
        default=None,
        description="what the model detects and cannot detect, and whether this image is out "
        "of its scope (imaging.scope; None: results stored before scopes)",
    )
    disclaimer: str = DISCLAIMER
    embedding: list[float] | None = Field(
        default=None,
        exclude=True,
        description=(
            "the image's penultimate features on the gate's first principal axes, whitened: kept "
            "by monitoring for embedding drift, never stored with or sent in the result"
        ),
    )

    def refusal(self) -> Refusal:
        """Why a refused result got no findings (its code, sentence and values)."""
        return Refusal(
            self.reason_code or "out_of_distribution",
            self.reason or "image refused",
            dict(self.reason_params),
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
