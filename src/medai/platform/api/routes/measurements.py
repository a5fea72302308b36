"""A study's viewer measurements (the TID 1500 reports OHIF saves over STOW-RS, filed by
``reading.measurements``) as the study page reads them: each measurement, and the caller's own
as the lines of the report's Measurements section, sizes compared with the prior's."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from medai.platform.access import audit
from medai.platform.api.deps import Principal, platform_of, require
from medai.platform.reading import measurements
from medai.platform.records.tables import Study
from medai.server.errors import ApiError
from medai.server.inputs import RowId
from medai.server.schemas import error_responses

router = APIRouter(prefix="/api/v1/studies", tags=["studies"])


class MeasurementOut(BaseModel):
    id: int
    author: str = Field(description="the radiologist who measured (their display name)")
    mine: bool = Field(description="measured by the caller")
    kind: Literal["length", "long_axis", "short_axis", "area"]
    value: float
    unit: Literal["mm", "mm2"]
    group: int = Field(description="the measurement group within its SR (one lesion)")
    instance_number: int | None = Field(description="the slice it was drawn on")
    spacing: Literal["PixelSpacing", "ImagerPixelSpacing"] | None = Field(
        description="what turned pixels into millimetres: ImagerPixelSpacing is the size at "
        "the detector plane (a projection film's magnification not removed)"
    )


class PriorOut(BaseModel):
    study_id: int
    date: str = Field(description="as the report prints dates")


class MeasurementsOut(BaseModel):
    items: list[MeasurementOut]
    lines: list[str] = Field(
        description="the caller's measurements as the report's Measurements section says "
        "them, in the study's language, each against the prior's where one was compared"
    )
    prior: PriorOut | None = Field(
        description="the prior study whose signer's measurements the lines compare with"
    )
    compared: bool
    phrase: list[str] | None = Field(
        None,
        description="[without sizes, with sizes]: the findings' comparison sentence's phrase "
        "for a finding on both studies, to swap once sizes were compared",
    )


@router.get(
    "/{study_id}/measurements",
    response_model=MeasurementsOut,
    responses=error_responses(401, 403, 404, 422),
)
def study_measurements(
    study_id: RowId, request: Request, who: Principal = Depends(require("study_read"))
) -> MeasurementsOut:
    """The study's current viewer measurements (superseded ones left out), and the caller's
    as the report's Measurements section."""
    with platform_of(request).db.session() as db:
        study = db.get(Study, study_id)
        if study is None:
            raise ApiError(404, "not_found", "no such study")
        mine = who.user.id if who.user is not None else None
        out = measurements.view(db, study, mine)
        audit.record(db, who.actor, "view", "measurements", study_id)
    return MeasurementsOut(**out)
