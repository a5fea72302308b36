"""The typed triage result: the API's response, the CLI's ``--json`` and what the platform
stores, with the exact model that made it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from medai.core.results import AIResult

Level = Literal["call_112", "emergency_department_now", "urgent_same_day"]
Language = Literal["tr", "en", "other"]
AbstainReason = Literal["not_turkish", "low_confidence", "out_of_scope"]


class DepartmentScore(BaseModel):
    id: str
    name: str
    name_en: str
    probability: float


class Recommendation(BaseModel):
    kind: Literal["emergency", "general_triage", "department"]
    department_id: str | None = None
    text_tr: str
    text_en: str
    level: Level | None = Field(
        default=None, description="the leading red flag's level (emergencies)"
    )


class Evidence(BaseModel):
    detector: Literal["rules", "embedding", "classifier"]
    text: str = Field(
        ...,
        description="the span that matched (rules), the chunk that was "
        "embedded, or the words that weighed most (classifier)",
    )
    concepts: list[str] = Field(default_factory=list)
    exemplar: str | None = Field(default=None, description="nearest urgent exemplar (embedding)")
    similarity: float | None = None
    score: float | None = Field(default=None, description="urgent probability (classifier)")


class RedFlag(BaseModel):
    id: str
    name_tr: str
    name_en: str
    level: Level
    advice_tr: str
    advice_en: str
    detectors: list[str] = Field(
        ..., description="which detectors raised it: rules, embedding, classifier"
    )
    evidence: list[Evidence]
    matched: list[str]


class RedFlagHistory(BaseModel):
    id: str
    name_tr: str
    name_en: str
    evidence: list[str]


class TriageResult(AIResult):
    status: Literal["ai_suggestion"] = Field(
        default="ai_suggestion", description="Always 'ai_suggestion': staff make the decision."
    )
    departments: list[DepartmentScore]
    urgent: bool
    red_flags: list[RedFlag]
    urgency_level: Level | None = Field(
        default=None, description="the most urgent fired flag's level"
    )
    red_flag_history: list[RedFlagHistory] = Field(
        default_factory=list, description="signs set in the distant past: notes for staff"
    )
    red_flag_engine: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "the red-flag engine: name, version, content_hash (its sealed folder's: every rule, "
            "word list, exemplar and classifier file, and the code it was sealed for), "
            "rules_version, sealed (false: it did not run as sealed, and the hash says what ran), "
            "the detectors that ran and the classifier"
        ),
    )
    abstained: bool
    abstain_reason: AbstainReason | None = Field(
        default=None,
        description="why no department is suggested: not_turkish (the department model "
        "reads only Turkish), out_of_scope, low_confidence; null when one is",
    )
    language: Language = Field(
        default="tr",
        description="the complaint's language (tr | en | other); red flags are checked "
        "in every language, departments only in Turkish",
    )
    out_of_scope: bool = Field(default=False, description="not about a department this model knows")
    out_of_scope_probability: float | None = Field(
        default=None, description="the scope gate's P(other department); null without a gate"
    )
    recommendation: Recommendation
    min_confidence: float
    disclaimer_tr: str
    disclaimer_en: str
    warnings: list[str] = Field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
