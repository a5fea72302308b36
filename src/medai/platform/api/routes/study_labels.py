"""A study's labels from its signature: what the signer said of each finding (stored with the
signed version), and what a signature would store now: the AI's decided findings endorsed,
the radiologist's clicks, and beside each what the text suggests (never applied unclicked)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from medai.core import label_rules
from medai.platform.access import audit
from medai.platform.api.deps import Principal, platform_of, require
from medai.platform.api.schemas import LabelName, Sections
from medai.platform.lifecycle import labels
from medai.platform.records.tables import Study
from medai.server.errors import ApiError
from medai.server.inputs import RowId
from medai.server.schemas import error_responses

router = APIRouter(prefix="/api/v1/studies", tags=["studies"])


class LabelOut(BaseModel):
    label: str
    ai_positive: bool | None = Field(
        description="the AI decided it present (None: no AI "
        "finding to compare: a refused image, an "
        "undecided label, one the model does not read)"
    )
    ai_state: Literal["present", "absent", "indeterminate"] | None = Field(
        None,
        description="the AI's state of the label (suggestions only; None: the model did "
        "not read it, or a stored signature's label)",
    )
    present: bool | None = Field(
        description="the label as the signature would store it: the radiologist's click, else "
        "the previous signature's, else the AI's decided state (endorsed by signing); None: the "
        "AI could not decide it and nobody chose yet (a signature is refused until they do)"
    )
    source: Literal[
        "endorsed",
        "confirmed",
        "rejected",
        "added",
        "decided",
        "undecided",
        "not_read",
        "text",
    ] = Field(
        description="endorsed: the AI's decided state, signed without a click; confirmed / "
        "rejected / added / decided: a click against the AI's state; undecided: nobody chose "
        "yet; not_read: a label only the text names (listed for its suggestion, never stored); "
        "text: taken from the signed text (signatures stored before issue 59)"
    )
    suggested: bool | None = Field(
        None,
        description="what the report text (or a present child label) suggests when it differs "
        "from present: offered to the radiologist, never applied without their click",
    )
    suggested_by: Literal["text", "normal", "implied"] | None = None
    needs_decision: bool = Field(
        False,
        description="the signer must answer it (present or absent) before signing: a label the "
        "AI left undecided in real doubt (imaging.decision.questions; the sign dialog asks "
        "exactly these)",
    )
    follows: str | None = Field(
        None,
        description="an undecided label that is no question of its own: the undecided "
        "sub-finding whose answer settles it (viral pneumonia follows COVID-19)",
    )


class ContradictionOut(BaseModel):
    kind: Literal[label_rules.KINDS] = Field(  # type: ignore[valid-type]  # a Literal of a tuple: pydantic reads it
        description="normal_with_finding | nothing_present | exclusive_branches | one_class | "
        "parent_absent (core.label_rules)"
    )
    labels: list[str] = Field(description="the labels that contradict each other")
    branches: list[str] = Field(
        description="exclusive_branches: the siblings whose branches they are in"
    )
    detail: str = Field(description="what contradicts what, in English")


class StudyLabels(BaseModel):
    report_version: int | None = Field(
        description="the signed version they belong to (None: suggestions, nothing signed)"
    )
    labels: list[LabelOut]
    contradictions: list[ContradictionOut] = Field(
        default_factory=list,
        description="suggestions: what a signature with these labels would be refused for "
        "(409 contradictory_labels), the decided labels contradicting each other; [] when "
        "consistent (undecided labels are asked first: undecided_labels)",
    )


class SuggestIn(BaseModel):
    sections: Sections
    labels: dict[LabelName, bool] | None = Field(None, max_length=labels.MAX_CHOICES)


def _study(db, study_id: int) -> Study:
    study = db.get(Study, study_id)
    if study is None:
        raise ApiError(404, "not_found", "no such study")
    return study


@router.get(
    "/{study_id}/labels", response_model=StudyLabels, responses=error_responses(401, 403, 404, 422)
)
def signed_labels(
    study_id: RowId, request: Request, who: Principal = Depends(require("study_read"))
) -> StudyLabels:
    """The labels of the study's latest signed version (none before a signature)."""
    with platform_of(request).db.session() as db:
        _study(db, study_id)
        version, items = labels.signed_labels(db, study_id)
        audit.record(db, who.actor, "view", "labels", study_id)
    return StudyLabels(report_version=version, labels=[LabelOut(**i) for i in items])


@router.post(
    "/{study_id}/labels/suggest",
    response_model=StudyLabels,
    responses=error_responses(401, 403, 404, 409, 422),
)
def suggest_labels(
    study_id: RowId,
    body: SuggestIn,
    request: Request,
    who: Principal = Depends(require("report_sign")),
) -> StudyLabels:
    """The labels a signature would store with these ``labels`` choices (the radiologist's
    clicks): each AI finding endorsed or clicked, undecided ones ``None``, what the text of
    ``sections`` suggests beside each (nothing stored, nothing applied), and the
    contradictions a signature of them would be refused for."""
    with platform_of(request).db.reader() as db:
        study = _study(db, study_id)
        out = labels.suggestion(db, study, body.sections.model_dump(), body.labels)
    return StudyLabels(
        report_version=None,
        labels=[LabelOut(**i) for i in out["labels"]],
        contradictions=[ContradictionOut(**c) for c in out["contradictions"]],
    )
