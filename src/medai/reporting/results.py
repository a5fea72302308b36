"""The typed report draft: what a radiologist edits and signs, and what the platform stores."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from medai.core.results import SCHEMA_VERSION, AIResult, ModelRef
from medai.imaging.decision import Decision


class Sections(BaseModel):
    technique: str
    findings: str
    impression: str
    recommendation: str


class Citation(BaseModel):
    id: str
    n: int = Field(..., description="the [n] marker used in the sections")
    source: str
    licence: str | None = None
    title: str | None = None
    text: str
    label: str | None = Field(
        default=None,
        description="the task label the passage is about (a site "
        "document about no one label: none); a signed PDF leaves out a "
        "passage about a finding the signer rejected",
    )


class FindingUsed(BaseModel):
    label: str
    positive: bool
    probability: float | None = None
    threshold: float | None = None


class DraftResult(BaseModel):
    """Always ``status: draft``: nothing here is a report until a radiologist signs it."""

    model_config = ConfigDict(protected_namespaces=())

    schema_version: str = SCHEMA_VERSION
    status: Literal["draft"] = "draft"
    status_label: str
    language: str
    task: str
    sections: Sections
    citations: list[Citation]
    findings_used: list[FindingUsed]
    decision: Decision | None = Field(default=None, description="the one decision the draft states")
    model: ModelRef | None = Field(
        default=None,
        description="the imaging model whose findings were used; null when the caller "
        "gave the findings",
    )
    backend: str = Field(..., description="template, or the LLM backend that wrote the text")
    caption: str | None = None
    caption_note: str | None = None
    image: dict[str, Any] | None = None
    warnings: list[str] = Field(default_factory=list)
    ai_note: list[str] = Field(
        default_factory=list,
        description="the AI's account of itself, shown beside the editor and never part of "
        "the report unless the radiologist inserts it: the out-of-scope flag, why it did not "
        "decide, each finding's likelihood, what it cannot tell apart or assess, how much of "
        "the study it read, its sources and the model",
    )
    comparison: dict[str, Any] | None = Field(
        default=None,
        description="the prior study the findings were compared with (study_id, date, the "
        "sentence); null: no signed prior of the same patient and task",
    )


class Neighbour(BaseModel):
    id: str
    caption: str
    similarity: float


class CaptionResult(AIResult):
    """A suggested caption: automatic, unverified, never part of the findings."""

    status: Literal["ai_suggestion", "abstained"] = "ai_suggestion"
    caption: str | None = Field(default=None, description="null when abstained")
    reason_code: str | None = Field(
        default=None, description="abstained: out_of_scope (the image is unlike every indexed one)"
    )
    reason: str | None = None
    method: str = Field(..., description="retrieval | blip2-lora")
    neighbours: list[Neighbour] = Field(default_factory=list)
    selected: Neighbour | None = Field(
        default=None,
        description="retrieval: the indexed image whose "
        "caption is quoted (it may rank below the neighbours "
        "shown)",
    )
    selected_rank: int | None = Field(
        default=None, description="its rank by similarity, 1 = nearest"
    )
