"""Studies (upload, worklist, image, heatmap) and their reports (versions, edit, sign,
FHIR, PDF). Every read and change is audited."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from medai.platform.access import audit
from medai.platform.api.deps import Principal, platform_of, require
from medai.platform.api.routes.jobs import HEATMAP_RESPONSES, computed_heatmap, heatmap_headers
from medai.platform.api.schemas import (
    AiFilter,
    ReportEdit,
    ReportOut,
    ReportVersionOut,
    ReportVersions,
    SignIn,
    StudyList,
    StudyOut,
    StudyStatus,
)
from medai.platform.dicom import identity_conflicts as conflicts
from medai.platform.dicom import study_time
from medai.platform.documents.fhir import fhir_bundle as exports
from medai.platform.documents.words import finding_states
from medai.platform.intake import idempotency, upload
from medai.platform.reading import analysis, review, series_view, sign_off
from medai.platform.records.tables import Study
from medai.platform.worklist import ai_results, listing, study_state, versions
from medai.server.errors import ApiError
from medai.server.inputs import CleanText, RowId
from medai.server.schemas import (
    DEFAULT_IMAGING_TASK,
    ERROR_TEXT,
    ErrorOut,
    ImagingTask,
    Language,
    error_responses,
)
from medai.server.uploads import model_for, no_empty
from medai.services import imaging as imaging_service

log = logging.getLogger("medai.platform")
router = APIRouter(prefix="/api/v1/studies", tags=["studies"])
PatientSexIn = Literal["M", "F", "O", "unknown"]  # DICOM PatientSex, or not known
CHUNK = 1 << 20


def _study(db, study_id: int) -> Study:
    return study_state.get(db, study_id)  # 404 not_found when there is none


async def _chunks(file: UploadFile):
    while chunk := await file.read(CHUNK):
        yield chunk


KEY_DOC = (
    'Makes a retry safe (the IETF draft "The Idempotency-Key HTTP Header Field"): a key the '
    "client chooses per upload (a UUID, say; 1 to 128 printable ASCII characters, else 400 "
    "`invalid_idempotency_key`), kept for 24 hours per user. The same key again with the same "
    "file and fields answers the study the first request filed (its status code, the study as "
    "it is now, and `Idempotent-Replayed: true`): never a second study or analysis. The same "
    "key with another file or other fields is refused (422 `idempotency_key_reused`). Two "
    "requests with one key at once (a retry while the first is still in flight, on any "
    "replica) file one study: the one that files second waits for the first and answers it."
)
REPLAYED_HEADER = {
    idempotency.REPLAYED: {
        "description": "`true` when this answers an earlier request with the same "
        "Idempotency-Key (nothing was filed again)",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


@router.post(
    "",
    response_model=StudyOut,
    status_code=201,
    responses={
        201: {
            "description": (
                "filed as a new study, its analysis queued (with "
                "Idempotent-Replayed: by an earlier request with this key)"
            ),
            "headers": REPLAYED_HEADER,
        },
        200: {
            "model": StudyOut,
            "headers": REPLAYED_HEADER,
            "description": (
                "a DICOM instance of a study already here: it joined that study (or was "
                "stored before); the study is returned"
            ),
        },
        **error_responses(401, 403, 409, 413),
        400: {
            "model": ErrorOut,
            "description": ERROR_TEXT[400]
            + (
                "; an Idempotency-Key that is not 1 to 128 printable ASCII characters "
                "(invalid_idempotency_key)"
            ),
        },
        422: {
            "model": ErrorOut,
            "description": ERROR_TEXT[422]
            + ("; an Idempotency-Key already used for another upload (idempotency_key_reused)"),
        },
    },
    dependencies=[
        Depends(no_empty("task", "lang", "patient_ref", "patient_sex", "patient_birth_date"))
    ],
)
async def upload_study(
    request: Request,
    file: Annotated[UploadFile, File(description="PNG, JPEG or DICOM")],
    task: Annotated[ImagingTask, Form()] = DEFAULT_IMAGING_TASK,
    patient_ref: Annotated[
        str | None,
        Form(max_length=64, pattern=r"^[A-Za-z0-9._:-]+$", description="pseudonymous reference"),
    ] = None,
    clinical_question: Annotated[str | None, Form(max_length=2000), CleanText] = None,
    lang: Annotated[Language, Form(description="language of the AI draft")] = "tr",
    patient_sex: Annotated[
        PatientSexIn,
        Form(
            description="the patient's sex (M, F, O, unknown) for an image without a DICOM "
            "header; a DICOM file's PatientSex rules"
        ),
    ] = "unknown",
    # not nullable in the document: a form field is absent or a date, never a "null"
    patient_birth_date: Annotated[
        str,  # noqa: RUF013
        Form(
            max_length=10,
            pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
            description="the patient's birth date (YYYY-MM-DD; not after today, at most 150 "
            "years ago) for an image without a DICOM header; a DICOM file's PatientBirthDate "
            "rules",
        ),
    ] = None,  # type: ignore[assignment]  # optional: None when not given
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=idempotency.HEADER,
            description=KEY_DOC,
            json_schema_extra={
                "minLength": 1,
                "maxLength": idempotency.MAX_LENGTH,
                "pattern": idempotency.PATTERN,
            },
        ),
    ] = None,
    who: Principal = Depends(require("study_upload")),
) -> JSONResponse:
    """Store the file (content-addressed) and queue its analysis (findings → heatmap →
    draft); urgent studies (a red flag in the clinical question) are analysed first. A DICOM
    file keeps its identity (patient, accession, UIDs, modality, view, body part) and joins
    the study of its StudyInstanceUID when that is already here (200). With an
    ``Idempotency-Key`` a retry answers the study filed before (``platform.intake.idempotency``)."""
    form = upload.UploadForm(
        task=task,
        content_type=file.content_type or upload.UNKNOWN_TYPE,
        patient_ref=patient_ref,
        question=clinical_question,
        language=lang,
        patient_sex=None if patient_sex == "unknown" else patient_sex,
        birth_date=patient_birth_date,
        idempotency_key=idempotency_key,
    )
    done = await upload.upload(
        platform_of(request),
        who.signed_in.id,
        who.actor,
        _chunks(file),
        form,
        request.app.state.dispatch,
    )
    return JSONResponse(
        StudyOut(**done.study).model_dump(mode="json"),
        done.status,
        headers={idempotency.REPLAYED: "true"} if done.replayed else None,
    )


@router.get("", response_model=StudyList, responses=error_responses(401, 403, 422))
def worklist(
    request: Request,
    who: Principal = Depends(require("study_read")),
    status: StudyStatus | None = None,
    task: ImagingTask | None = None,
    urgent: bool | None = Query(
        None, description="the study's urgency flag (either reason: the AI or the question)"
    ),
    ai: AiFilter | None = Query(
        None,
        description=(
            "what the AI found: urgent (an urgent finding, decided or possible), undecided, "
            "conflict (the AI contradicts itself or its earlier reading, or an identity "
            "conflict is open), out_of_scope, none (no AI result yet)"
        ),
    ),
    red_flag: bool | None = Query(
        None, description="whether the clinical question raised a red flag"
    ),
    signed: bool | None = Query(
        None,
        description="whether the study's report is signed (final or amended); the web "
        "worklist asks for signed=false by default: what is left to read",
    ),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=10_000_000),
    accession: str | None = Query(
        None,
        min_length=1,
        max_length=16,
        description=("studies whose DICOM accession number starts with this"),
    ),
) -> StudyList:
    """The worklist in reading order (``platform.worklist.reading_order``), ranked and paged by the
    database: an urgent AI finding first, then a red flag in the clinical question, then the
    rest, oldest first within each; a signed study is in the rest. Each row's ``reading``
    says why, one reason apart from the other (``ai``: the AI column; ``request``: the
    question's red flag and its rules)."""
    found, total = listing.worklist_page(
        platform_of(request),
        who.actor,
        status,
        task,
        urgent,
        limit,
        offset,
        accession,
        ai=ai,
        red_flag=red_flag,
        signed=signed,
    )
    items = [StudyOut(**study) for study in found]
    return StudyList(items=items, total=total, limit=limit, offset=offset)


@router.get("/{study_id}", response_model=StudyOut, responses=error_responses(401, 403, 404))
def get_study(
    study_id: RowId, request: Request, who: Principal = Depends(require("study_read"))
) -> StudyOut:
    """The study, with its patient's context and prior studies; a prior listed (its date and
    signed impression shown) is audited as a view of that study (``prior_of``)."""
    with platform_of(request).db.session() as db:
        out = listing.as_dict(db, _study(db, study_id), with_priors=True)
        audit.record(db, who.actor, "view", "study", study_id)
        for prior in out.get("priors") or []:
            audit.record(db, who.actor, "view", "study", prior["id"], prior_of=study_id)
    return StudyOut(**out)


@router.get(
    "/{study_id}/image",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **error_responses(401, 403, 404, 422, 503)},
)
async def study_image(
    study_id: RowId, request: Request, who: Principal = Depends(require("study_read"))
) -> Response:
    """The study's image as an 8-bit grayscale PNG of at most 2048 pixels a side (DICOM
    rendered), for viewers and reports: the display rendition stored with the study, never a
    decode of the original per request."""
    p = platform_of(request)

    def lookup() -> str | None:
        with p.db.session() as db:
            study = _study(db, study_id)
            audit.record(db, who.actor, "view", "study_image", study_id)
            return study.display_sha256

    display = await run_in_threadpool(lookup) or await _rendition(request, p, study_id)
    png = await run_in_threadpool(p.store.read, display)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


class _OnePerStudy:
    """An asyncio lock per study, dropped when no request holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, study_id: int):
        lock, users = self._locks.get(study_id, (asyncio.Lock(), 0))
        self._locks[study_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[study_id]
            if users <= 1:
                del self._locks[study_id]
            else:
                self._locks[study_id] = (lock, users - 1)


async def _rendition(request: Request, p, study_id: int) -> str:
    """The study's display rendition; a missing one (a study analysed before renditions
    existed, or viewed before its analysis ran) is made once: one request per study makes it
    inside the imaging lane while the others wait, then read the stored one."""
    state = request.app.state
    if getattr(state, "display_renditions", None) is None:
        state.display_renditions = _OnePerStudy()
    async with state.display_renditions.hold(study_id):
        display = await run_in_threadpool(analysis.stored_display, p, study_id)
        if display is not None:
            return display
        async with state.imaging_lane.slot():
            return await run_in_threadpool(analysis.display_rendition, p, study_id)


@router.get(
    "/{study_id}/heatmap",
    response_class=Response,
    responses={**HEATMAP_RESPONSES, **error_responses(401, 403, 404, 422, 503)},
)
async def study_heatmap(
    study_id: RowId,
    request: Request,
    label: str | None = Query(
        None, max_length=64, description=("finding to explain (default: the stored heatmap's)")
    ),
    who: Principal = Depends(require("study_read")),
) -> Response:
    """Grad-CAM overlay (an AI suggestion): the stored one of the leading finding, or one
    computed for ``label`` (the same computation and headers as ``/imaging/{task}/heatmap``),
    of the same slice as the stored one (the result's ``heatmap_instance``; of a series, its
    key slice)."""
    p = platform_of(request)
    heat = await run_in_threadpool(series_view.stored_heatmap, p, study_id, who.actor, label)
    if label is None or label == heat.label:
        return Response(
            await run_in_threadpool(p.store.read, heat.png_sha),
            media_type="image/png",
            headers=heatmap_headers(heat.label, heat.probability, heat.model_name, heat.model_hash),
        )
    return await computed_heatmap(
        request,
        model_for(request, heat.task),
        await run_in_threadpool(p.store.read, heat.file_sha),
        label,
        heat.frame,
    )


def _report_or_404(db, study_id: int):
    _study(db, study_id)
    row = versions.current(db, study_id)
    if row is None:
        raise ApiError(404, "not_found", "no report yet (analysis not finished)")
    return row


@router.get(
    "/{study_id}/report", response_model=ReportOut, responses=error_responses(401, 403, 404)
)
def get_report(
    study_id: RowId, request: Request, who: Principal = Depends(require("study_read"))
) -> ReportOut:
    """The current version (FHIR status: preliminary, final or amended)."""
    with platform_of(request).db.session() as db:
        out = versions.as_dict(db, _report_or_404(db, study_id))
        audit.record(db, who.actor, "view", "report", study_id, version=out["version"])
    return ReportOut(**out)


@router.get(
    "/{study_id}/report/versions",
    response_model=ReportVersions,
    responses=error_responses(401, 403, 404),
)
def report_versions(
    study_id: RowId, request: Request, who: Principal = Depends(require("study_read"))
) -> ReportVersions:
    with platform_of(request).db.session() as db:
        _study(db, study_id)
        items = [ReportVersionOut(**v) for v in versions.history(db, study_id)]
        audit.record(db, who.actor, "view", "report_versions", study_id)
    return ReportVersions(items=items)


def _change(
    request: Request, who: Principal, study_id: int, action: str, version: int, apply
) -> ReportOut:
    """Run an edit or a signature; a conflict is audited (in its own transaction) and 409."""
    p = platform_of(request)
    try:
        with p.db.session() as db:
            study = _study(db, study_id)
            row = apply(db, study)
            audit.record(
                db, who.actor, action, "report", study_id, version=row.version, status=row.status
            )
            return ReportOut(**versions.as_dict(db, row))
    except (review.Conflict, study_state.StudyRetracted):  # 409, audited
        with p.db.session() as db:
            audit.record(
                db, who.actor, action, "report", study_id, outcome="conflict", version=version
            )
        raise


@router.put(
    "/{study_id}/report",
    response_model=ReportOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def edit_report(
    study_id: RowId,
    body: ReportEdit,
    request: Request,
    who: Principal = Depends(require("report_edit")),
) -> ReportOut:
    """Save a new version; ``version`` is the one you edited (stale → 409). Editing a signed
    report makes an ``amended`` version; earlier versions stay readable."""
    return _change(
        request,
        who,
        study_id,
        "edit",
        body.version,
        lambda db, s: review.edit(db, s, body.version, body.sections.model_dump(), who.signed_in),
    )


@router.post(
    "/{study_id}/report/sign",
    response_model=ReportOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def sign_report(
    study_id: RowId,
    body: SignIn,
    request: Request,
    who: Principal = Depends(require("report_sign")),
) -> ReportOut:
    """Sign the current version (radiologists only); a second signature → 409. With
    ``sections`` (the signer's screen), an unsaved edit is the signed version: one version
    with that text, the signer its author."""
    sections = body.sections.model_dump() if body.sections is not None else None
    return ReportOut(
        **sign_off.sign_off(
            platform_of(request),
            study_id,
            who.signed_in,
            who.actor,
            body.version,
            sections,
            body.labels,
        )
    )


def _export_parts(request: Request, who: Principal, study_id: int, fmt: str):
    with platform_of(request).db.session() as db:
        study = _study(db, study_id)
        retracted = study.status == study_state.RETRACTED  # exported as entered in error
        if not retracted and conflicts.has_open(db, study_id):  # nothing leaves in doubt
            raise ApiError(
                409,
                "identity_conflict",
                (
                    f"study {study_id} has an open identity conflict (an instance naming another "
                    "patient or order); its report is exported once a radiologist has decided it"
                ),
            )
        row = _report_or_404(db, study_id)
        # a signed version goes out with the reading its signer had (a later series changes
        # neither its AI part nor its picture); a draft with the newest
        result = ai_results.signed_with(db, study_id, row)
        picture = series_view.picture_of(db, study, result)
        report = finding_states.of_version(
            db, versions.as_dict(db, row), result.payload if result else None
        )
        audit.record(db, who.actor, "export", "report", study_id, format=fmt, version=row.version)
        return (
            listing.as_dict(
                db,
                study,
                with_result=False,
                with_series=True,
                shown_sha=picture[0] if picture else None,
            ),
            report,
            row,
            result.payload.get("model") if result else None,
            result,
            picture,
        )


@router.get(
    "/{study_id}/report/fhir",
    responses={
        200: {
            "content": {"application/fhir+json": {}},
            "description": "FHIR R4 Bundle: DiagnosticReport, Observations, Device",
        },
        **error_responses(401, 403, 404, 409),
    },
)
def report_fhir(
    study_id: RowId, request: Request, who: Principal = Depends(require("report_export"))
) -> Response:
    import json

    study, report, row, model, result, _picture = _export_parts(request, who, study_id, "fhir")
    bundle = exports.fhir_bundle(
        study,
        report,
        model,
        report["signed_by"],
        row.created_at,
        row.signed_at,
        entered_in_error=study["status"] == study_state.RETRACTED,
        taken=study_time.of_study(  # when it was taken: StudyDate/StudyTime, else uploaded
            platform_of(request).store,
            (study.get("file") or {}).get("sha256"),
            (study.get("dicom") or {}).get("study_date"),
            study.get("created_at"),
        ),
        ai_created=result.created_at if result is not None else None,
    )
    return Response(json.dumps(bundle, ensure_ascii=False), media_type="application/fhir+json")


@router.get(
    "/{study_id}/report/pdf",
    response_class=Response,
    responses={
        200: {"content": {"application/pdf": {}}},
        **error_responses(401, 403, 404, 409, 503),
    },
)
async def report_pdf(
    study_id: RowId, request: Request, who: Principal = Depends(require("report_export"))
) -> Response:
    p = platform_of(request)
    study, report, _row, model, result, picture = await run_in_threadpool(
        _export_parts, request, who, study_id, "pdf"
    )
    if model and result is not None and (result.payload or {}).get("refused"):
        model = {**model, "refused": True}  # named, and said to have assessed nothing
    display = None
    if picture is None:
        try:  # from the display rendition (2048 px, 8-bit), never the original
            display = await _rendition(request, p, study_id)
        except imaging_service.ImageInputError:
            display = None

    def render() -> bytes:
        image = None
        with contextlib.suppress(imaging_service.ImageInputError):
            if picture is not None:  # the signed reading's own slice (or frame)
                image = imaging_service.preview_png(p.store.read(picture[0]), 768, picture[1])
            elif display is not None:
                image = imaging_service.preview_png(p.store.read(display), 768)
        heat = p.store.read(result.heatmap_sha256) if result and result.heatmap_sha256 else None
        return exports.report_pdf(
            study, report, model, image, heat, result.heatmap_label if result else None
        )

    pdf = await run_in_threadpool(render)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="medai-study-{study_id}-'
            f'v{report["version"]}.pdf"'
        },
    )
