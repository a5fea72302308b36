"""A study's series for the viewer (``platform.reading.series_view``): the slices of each series in
anatomical order, which the AI read and which carry its decision, and each slice's display
rendition. The same sign-in, role and approval as the study's own image, and every read is
audited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from medai.platform.access import audit
from medai.platform.api.deps import Principal, platform_of, require
from medai.platform.api.routes.studies import _OnePerStudy
from medai.platform.reading import series_view
from medai.server.errors import ApiError
from medai.server.inputs import RowId
from medai.server.schemas import error_responses

router = APIRouter(prefix="/api/v1/studies", tags=["studies"])
UID = r"^[0-9]+(\.[0-9]+)*$"
MAX_FRAME = 1 << 16


class SliceOut(BaseModel):
    ref: str = Field(
        ...,
        description='how results name the slice: its SOP Instance UID, "<sop>#<frame>" '
        "for a frame of a multi-frame instance",
    )
    sop_uid: str
    frame: int | None = Field(None, description="1-based frame; null: the instance's one image")
    number: int | None = Field(None, description="InstanceNumber")
    read: bool = Field(..., description="the AI read this slice")
    key: bool = Field(..., description="a key slice: one that carries the AI's decision")
    heatmap: bool = Field(..., description="the stored heatmap (Grad-CAM) is of this slice")


class SeriesOut(BaseModel):
    series_uid: str
    number: int | None = Field(None, description="SeriesNumber")
    modality: str | None = None
    description: str | None = Field(None, description="SeriesDescription (operator text)")
    body_part: str | None = None
    view_position: str | None = None
    instances: int = Field(..., description="DICOM instances stored in the series")
    read_by_ai: bool = Field(..., description="the series the AI read")
    slices: list[SliceOut] = Field(
        ..., description="in anatomical order (position along the slice normal, else number)"
    )


class SliceRef(BaseModel):
    series_uid: str
    ref: str


class SeriesList(BaseModel):
    study_id: int
    series: list[SeriesOut] = Field(
        ..., description="empty for a study without DICOM instances (an uploaded image)"
    )
    start: SliceRef | None = Field(
        None,
        description="the slice a viewer opens on: the first key slice, else the one the "
        "heatmap or the analysis was of, else the first",
    )


def _not_found(exc: LookupError) -> ApiError:
    return ApiError(404, "not_found", str(exc).strip("'\""))


@router.get(
    "/{study_id}/series", response_model=SeriesList, responses=error_responses(401, 403, 404)
)
def study_series(
    study_id: RowId, request: Request, who: Principal = Depends(require("study_read"))
) -> SeriesList:
    """The study's series, each with its slices in anatomical order (arrival order never
    matters), and per slice whether the AI read it, whether it is a key slice and whether the
    heatmap is of it (from the latest imaging result's ``read``)."""
    p = platform_of(request)
    try:
        out = series_view.series_of(p, study_id)
    except LookupError as exc:
        raise _not_found(exc) from None
    with p.db.session() as db:
        audit.record(db, who.actor, "view", "series", study_id, series=len(out["series"]))
    return SeriesList(**out)


@router.get(
    "/{study_id}/instances/{sop_uid}/image",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **error_responses(401, 403, 404, 422, 503)},
)
async def instance_image(
    study_id: RowId,
    request: Request,
    sop_uid: Annotated[str, Path(min_length=1, max_length=64, pattern=UID)],
    frame: Annotated[
        int | None,
        Query(ge=1, le=MAX_FRAME, description="1-based frame of a multi-frame instance"),
    ] = None,
    who: Principal = Depends(require("study_read")),
) -> Response:
    """One slice of the study as an 8-bit grayscale PNG of at most 2048 pixels a side: a DICOM
    instance, or frame ``frame`` of a multi-frame one. Made from the original once (only that
    frame decoded, within the decoders' limits) and stored, like the study's image."""
    p = platform_of(request)

    def lookup() -> series_view.SliceFile:
        try:
            found = series_view.slice_file(p, study_id, sop_uid, frame)
        except LookupError as exc:
            raise _not_found(exc) from None
        with p.db.session() as db:
            audit.record(
                db,
                who.actor,
                "view",
                "study_image",
                study_id,
                instance=found.instance_id,
                frame=found.frame,
            )
        return found

    found = await run_in_threadpool(lookup)
    display = found.display_sha or await _rendition(request, p, found)
    png = await run_in_threadpool(p.store.read, display)
    return Response(png, media_type="image/png")  # no-store: the middleware says so


async def _rendition(request: Request, p, found: series_view.SliceFile) -> str:
    """A slice's rendition, made once: one request per slice makes it inside the imaging lane
    while the others wait, then read the stored one."""
    state = request.app.state
    if getattr(state, "slice_renditions", None) is None:
        state.slice_renditions = _OnePerStudy()
    async with state.slice_renditions.hold((found.instance_id, found.frame)):
        again = await run_in_threadpool(
            series_view.stored_rendition, p, found.instance_id, found.frame
        )
        if again is not None:
            return again
        async with state.imaging_lane.slot():
            return await run_in_threadpool(series_view.make_rendition, p, found)
