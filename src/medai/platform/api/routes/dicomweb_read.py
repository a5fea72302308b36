"""DICOMweb read (PS3.18) beside STOW-RS under the service root ``/api/v1/dicomweb``: QIDO-RS
(``/studies``, ``/studies/{study}/series``, ``…/series/{series}/instances``,
``/studies/{study}/instances``) and WADO-RS (study, series and instance ``metadata``,
``frames/{n[,m…]}``, ``bulk/{tag}``, ``rendered``), over the study catalog
(``reading.catalog``) by ``reading.dicomweb_read``.

Who may read: the study page's rule (``study_read``, an approved clinical account), through the
session cookie (the viewer on medai's own origin) or a bearer token; anonymous is 401, a role
without it or an account waiting for approval 403. A study opened is audited once per user
within an hour (``dicomweb_read.opened``), never per frame.

Limits are checked before any work: UIDs by pattern and length, at most ``MAX_FRAMES`` frame
numbers, ``limit`` at most ``MAX_LIMIT``, a query of at most ``MAX_QUERY`` characters. Frames,
bulk data and renditions of a SOP instance never change (its file is content-addressed and a
SOP Instance UID is stored once): they carry a strong ETag and may be kept privately;
metadata and searches change as instances arrive: revalidated (ETag, 304) each time."""

from __future__ import annotations

import io
import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from medai.platform.api.deps import Principal, platform_of, require
from medai.platform.api.routes.series import _rendition
from medai.platform.reading import dicomweb_read as dw
from medai.platform.reading import series_view
from medai.server.errors import ApiError
from medai.server.schemas import error_responses

router = APIRouter(prefix="/api/v1/dicomweb", tags=["dicomweb"])
ROOT = "/api/v1/dicomweb"
DICOM_JSON = "application/dicom+json"
MAX_FRAMES = 512  # frame numbers in one request
MAX_FRAME = 99_999  # five digits: what the path pattern takes
MAX_LIMIT = 1000  # QIDO results in one answer
DEFAULT_LIMIT = 200
MAX_OFFSET = 100_000
MAX_QUERY = 8192  # characters of a query string
MAX_UIDS = 500  # UIDs in a UID-list match
MAX_INCLUDE = 64
IMMUTABLE = "private, max-age=31536000, immutable"
REVALIDATE = "private, no-cache"
UidPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9]+(\.[0-9]+)*$")]
KEYWORD = re.compile(r"^([A-Za-z][A-Za-z0-9]{0,63}|[0-9A-Fa-f]{8}|all)$")
READ = require("study_read")
RESPONSES = error_responses(400, 401, 403, 404)


def _root(request: Request) -> str:
    """The service root as the caller reached it (scheme and host of the request): what
    RetrieveURL and BulkDataURI start with."""
    return str(request.base_url).rstrip("/") + ROOT


def _param(request: Request, keyword: str, tag: str) -> str:
    value = request.query_params.get(keyword) or request.query_params.get(tag) or ""
    if len(value) > 1024:
        raise ApiError(400, "bad_request", f"{keyword}: a match value longer than 1024")
    return value


def _uids(request: Request, keyword: str, tag: str) -> list[str]:
    uids = dw.uid_list(_param(request, keyword, tag))
    if len(uids) > MAX_UIDS:
        raise ApiError(400, "bad_request", f"{keyword}: more than {MAX_UIDS} UIDs")
    if any(len(u) > 64 or not dw.UID_RE.match(u) for u in uids):
        raise ApiError(400, "bad_request", f"{keyword}: not a UID list")
    return uids


def _paging(request: Request) -> tuple[int, int]:
    """``limit`` and ``offset`` (and every query's overall size and includefield), checked."""
    if len(str(request.url.query)) > MAX_QUERY:
        raise ApiError(400, "bad_request", f"a query string longer than {MAX_QUERY}")
    fields = [f for v in request.query_params.getlist("includefield") for f in v.split(",") if f]
    if len(fields) > MAX_INCLUDE or any(not KEYWORD.match(f) for f in fields):
        raise ApiError(400, "bad_request", "includefield: keywords or tags, at most 64")

    def number(name: str, default: int, top: int) -> int:
        raw = request.query_params.get(name)
        if raw is None or raw == "":
            return default
        if not raw.isascii() or not raw.isdigit() or len(raw) > 7 or int(raw) > top:
            raise ApiError(400, "bad_request", f"{name}: a whole number from 0 to {top}")
        return int(raw)

    return number("limit", DEFAULT_LIMIT, MAX_LIMIT), number("offset", 0, MAX_OFFSET)


def _json(request: Request, text: str, tag: str, cache: str = REVALIDATE) -> Response:
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers={"ETag": tag, "Cache-Control": cache})
    body = text.replace(dw.ROOT_TOKEN, _root(request))
    return Response(body, media_type=DICOM_JSON, headers={"ETag": tag, "Cache-Control": cache})


def _search(request: Request, items: list[dict]) -> Response:
    import json

    text = json.dumps(items, ensure_ascii=False, separators=(",", ":"))
    if not items:
        return Response(status_code=204, headers={"Cache-Control": "no-store"})
    return Response(text, media_type=DICOM_JSON, headers={"Cache-Control": "no-store"})


async def _open(request: Request, who: Principal, study_uid: str) -> dw.StudyView:
    """The served study, its opening audited (once per user and hour)."""
    p = platform_of(request)
    view = await run_in_threadpool(dw.study_view, p, study_uid)
    await run_in_threadpool(dw.opened, p, who.actor, view.study.id)
    return view


# --- QIDO-RS ---------------------------------------------------------------------------------


@router.get(
    "/studies",
    response_class=Response,
    responses={200: {"content": {DICOM_JSON: {}}}, 204: {"description": "no match"}, **RESPONSES},
)
async def search_studies(request: Request, who: Principal = Depends(READ)) -> Response:
    """QIDO-RS studies: matching StudyInstanceUID (UID list), PatientName and PatientID
    (``*``/``?`` wildcards, case-insensitive), AccessionNumber, StudyDate (a range) and
    ModalitiesInStudy; ``limit`` (≤ 1000) and ``offset``. Retracted studies and studies with no
    DICOM object are never found. The search itself is audited (how many it found)."""
    limit, offset = _paging(request)
    modalities = [m for m in _param(request, "ModalitiesInStudy", "00080061").split(",") if m]
    query = dw.StudyQuery(
        _uids(request, "StudyInstanceUID", "0020000D"),
        _param(request, "PatientName", "00100010"),
        _param(request, "PatientID", "00100020"),
        _param(request, "AccessionNumber", "00080050"),
        _param(request, "StudyDate", "00080020"),
        modalities or None,
    )
    p = platform_of(request)
    found = await run_in_threadpool(dw.search_studies, p, query, limit, offset, _root(request))

    def record() -> None:
        from medai.platform.access import audit

        with p.db.session() as db:
            audit.record(db, who.actor, "view", "dicomweb", "studies", found=len(found))

    await run_in_threadpool(record)
    return _search(request, found)


@router.get(
    "/studies/{study}/series",
    response_class=Response,
    responses={200: {"content": {DICOM_JSON: {}}}, 204: {"description": "no match"}, **RESPONSES},
)
async def search_series(
    study: UidPath, request: Request, who: Principal = Depends(READ)
) -> Response:
    """QIDO-RS series of a study: SeriesInstanceUID (UID list), Modality, SeriesNumber."""
    _paging(request)
    series_uids = _uids(request, "SeriesInstanceUID", "0020000E")
    modality = _param(request, "Modality", "00080060")
    number = _param(request, "SeriesNumber", "00200011")
    view = await _open(request, who, study)
    limit, offset = _paging(request)
    found = await run_in_threadpool(
        dw.search_series, platform_of(request), view, _root(request), series_uids, modality, number
    )
    return _search(request, found[offset : offset + limit])


async def _instances(request: Request, who: Principal, study: str, series: str | None) -> Response:
    limit, offset = _paging(request)
    sop_uids = _uids(request, "SOPInstanceUID", "00080018")
    sop_class = _param(request, "SOPClassUID", "00080016")
    number = _param(request, "InstanceNumber", "00200013")
    view = await _open(request, who, study)
    if series is not None:
        dw.of_series(view, series)
    found = dw.search_instances(view, _root(request), series, sop_uids, sop_class, number)
    return _search(request, found[offset : offset + limit])


@router.get(
    "/studies/{study}/instances",
    response_class=Response,
    responses={200: {"content": {DICOM_JSON: {}}}, 204: {"description": "no match"}, **RESPONSES},
)
async def search_study_instances(
    study: UidPath, request: Request, who: Principal = Depends(READ)
) -> Response:
    """QIDO-RS instances of a study: SOPInstanceUID (UID list), SOPClassUID, InstanceNumber."""
    return await _instances(request, who, study, None)


@router.get(
    "/studies/{study}/series/{series}/instances",
    response_class=Response,
    responses={200: {"content": {DICOM_JSON: {}}}, 204: {"description": "no match"}, **RESPONSES},
)
async def search_series_instances(
    study: UidPath, series: UidPath, request: Request, who: Principal = Depends(READ)
) -> Response:
    """QIDO-RS instances of one series of a study."""
    return await _instances(request, who, study, series)


# --- WADO-RS metadata ------------------------------------------------------------------------


async def _metadata(
    request: Request, who: Principal, study: str, series: str | None, sop: str | None
) -> Response:
    p = platform_of(request)
    view = await _open(request, who, study)
    if sop is not None:
        objs = [dw.one_object(view, series, sop)]
    else:
        objs = dw.of_series(view, series)
    tag = dw.etag(view, objs, "metadata")
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers={"ETag": tag, "Cache-Control": REVALIDATE})
    text = await run_in_threadpool(dw.metadata, p, view, objs)
    return _json(request, text, tag)


META: dict[int | str, dict[str, Any]] = {
    200: {"content": {DICOM_JSON: {}}},
    304: {"description": "not modified"},
    **RESPONSES,
}


@router.get("/studies/{study}/metadata", response_class=Response, responses=META)
async def study_metadata(
    study: UidPath, request: Request, who: Principal = Depends(READ)
) -> Response:
    """WADO-RS metadata of every served instance of the study (DICOM JSON; PixelData and
    other binary values over 1 kB as BulkDataURIs)."""
    return await _metadata(request, who, study, None, None)


@router.get("/studies/{study}/series/{series}/metadata", response_class=Response, responses=META)
async def series_metadata(
    study: UidPath, series: UidPath, request: Request, who: Principal = Depends(READ)
) -> Response:
    """WADO-RS metadata of a series' instances."""
    return await _metadata(request, who, study, series, None)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/metadata",
    response_class=Response,
    responses=META,
)
async def instance_metadata(
    study: UidPath, series: UidPath, sop: UidPath, request: Request, who: Principal = Depends(READ)
) -> Response:
    """WADO-RS metadata of one instance."""
    return await _metadata(request, who, study, series, sop)


# --- WADO-RS frames and bulk data --------------------------------------------------------------


def _frame_numbers(raw: str) -> list[int]:
    """``1`` or ``1,3,5`` (the path pattern: numbers from 1, five digits at most): at most
    ``MAX_FRAMES`` of them, checked before any file is read."""
    if len(raw) > MAX_FRAMES * 6:
        raise ApiError(400, "bad_request", f"more than {MAX_FRAMES} frame numbers")
    parts = raw.split(",")
    if len(parts) > MAX_FRAMES:
        raise ApiError(400, "bad_request", f"more than {MAX_FRAMES} frame numbers")
    if any(not x.isascii() or not x.isdigit() or not 1 <= int(x) <= MAX_FRAME for x in parts):
        raise ApiError(400, "bad_request", "frame numbers: whole numbers from 1, comma-separated")
    return [int(x) for x in parts]


def _acceptable(accept: str, media: str, ts: str) -> bool:
    """Does ``Accept`` take ``multipart/related`` parts of ``media`` in transfer syntax
    ``ts``? Absent, ``*/*`` or ``type="*/*"`` take the server's choice (as stored);
    ``type="application/octet-stream"`` without a transfer syntax means explicit VR little
    endian (PS3.18 8.7.3.5.2); ``transfer-syntax=*`` takes the stored one."""
    if not accept.strip():
        return True
    aliases = {
        media,
        {"image/dicom-rle": "image/x-dicom-rle", "image/jls": "image/x-jls"}.get(media),
    }
    for rng in accept.split(","):
        items = [x.strip() for x in rng.split(";")]
        kind = items[0].lower()
        params: dict[str, str] = {}
        for item in items[1:]:
            name, _, value = item.partition("=")
            params[name.strip().lower()] = value.strip().strip('"')
        if kind in ("*/*", "multipart/*"):
            return True
        if kind != "multipart/related":
            continue
        want = params.get("type", "*/*").lower()
        syntax = params.get("transfer-syntax")
        if want not in ("*/*", "*") and want not in aliases:
            continue
        if syntax in ("*", ts):
            return True
        if syntax is None and (media != "application/octet-stream" or ts == dw.EXPLICIT_LE):
            return True
    return False


def _multipart(parts: list[bytes], media: str, ts: str | None) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    kind = f"{media}; transfer-syntax={ts}" if ts else media
    out = io.BytesIO()
    for part in parts:
        out.write(f"--{boundary}\r\nContent-Type: {kind}\r\n\r\n".encode())
        out.write(part)
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    ctype = f'multipart/related; type="{media}"; boundary={boundary}'
    if ts:
        ctype += f"; transfer-syntax={ts}"
    return out.getvalue(), ctype


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/frames/{numbers}",
    response_class=Response,
    responses={
        200: {"content": {"multipart/related": {}}, "description": "one part per frame"},
        304: {"description": "not modified"},
        **error_responses(400, 401, 403, 404, 406),
    },
)
async def instance_frames(
    study: UidPath,
    series: UidPath,
    sop: UidPath,
    numbers: Annotated[
        str,
        Path(
            min_length=1, max_length=MAX_FRAMES * 6, pattern=r"^[1-9][0-9]{0,4}(,[1-9][0-9]{0,4})*$"
        ),
    ],
    request: Request,
    who: Principal = Depends(READ),
) -> Response:
    """WADO-RS frames: ``multipart/related``, one part per frame in the order asked, in the
    stored transfer syntax (``application/octet-stream`` for a native one, the image type of
    an encapsulated one); 406 ``not_acceptable`` when ``Accept`` takes none of that (medai
    does not transcode)."""
    wanted = _frame_numbers(numbers)
    p = platform_of(request)
    accept = request.headers.get("accept", "")
    etag_wanted = request.headers.get("if-none-match")

    def work() -> tuple[str, dw.Frames | None]:
        # one trip to the thread pool per frame request: a series is 200 of them
        view = dw.study_view(p, study)
        dw.opened(p, who.actor, view.study.id)
        obj = dw.one_object(view, series, sop)
        ts = dw.stored_syntax(p, view, obj)
        media = dw.media_type_of(ts)
        if media is None:
            raise dw.NotAcceptable(f"frames stored in transfer syntax {ts} are not served")
        if not _acceptable(accept, media, ts):
            raise dw.NotAcceptable(f"the frames are stored as {media}, transfer syntax {ts}")
        tag = f'"{obj.file_sha[:40]}-{numbers}"'
        return tag, (None if etag_wanted == tag else dw.frames(p, obj, wanted))

    tag, got = await run_in_threadpool(work)
    if got is None:
        return Response(status_code=304, headers={"ETag": tag, "Cache-Control": IMMUTABLE})
    body, ctype = _multipart(got.parts, got.media_type, got.transfer_syntax)
    return Response(body, media_type=ctype, headers={"ETag": tag, "Cache-Control": IMMUTABLE})


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/bulk/{tag}",
    response_class=Response,
    responses={
        200: {"content": {"multipart/related": {}}},
        304: {"description": "not modified"},
        **error_responses(400, 401, 403, 404),
    },
)
async def bulk_data(
    study: UidPath,
    series: UidPath,
    sop: UidPath,
    tag: Annotated[str, Path(pattern=r"^[0-9A-Fa-f]{8}$")],
    request: Request,
    who: Principal = Depends(READ),
) -> Response:
    """WADO-RS bulk data: a BulkDataURI of the metadata (a top-level binary value) as
    ``multipart/related; type="application/octet-stream"``; an encapsulated PixelData, one
    part per frame in its stored syntax."""
    p = platform_of(request)
    view = await _open(request, who, study)
    obj = dw.one_object(view, series, sop)
    etag = f'"{obj.file_sha[:40]}-{tag.upper()}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": IMMUTABLE})
    value = await run_in_threadpool(dw.bulk, p, obj, int(tag, 16))
    if isinstance(value, list):
        ts = await run_in_threadpool(dw.stored_syntax, p, view, obj)
        body, ctype = _multipart(value, dw.media_type_of(ts) or "application/octet-stream", ts)
    else:
        body, ctype = _multipart([value], "application/octet-stream", None)
    return Response(body, media_type=ctype, headers={"ETag": etag, "Cache-Control": IMMUTABLE})


# --- WADO-RS rendered --------------------------------------------------------------------------


async def _rendered(
    request: Request, who: Principal, study: str, series: str, sop: str, frame: int | None
) -> Response:
    accept = request.headers.get("accept", "").lower()
    kind = "image/png"
    if "image/jpeg" in accept and "image/png" not in accept:
        kind = "image/jpeg"
    elif accept and not any(x in accept for x in ("image/png", "image/*", "*/*", "image/jpeg")):
        raise dw.NotAcceptable("rendered images are image/png or image/jpeg")
    p = platform_of(request)
    view = await _open(request, who, study)
    obj = dw.one_object(view, series, sop)
    etag = f'"{obj.file_sha[:40]}-{frame or 1}-{kind[6:]}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": IMMUTABLE})
    try:
        found = await run_in_threadpool(series_view.slice_file, p, view.study.id, sop, frame)
    except LookupError as exc:
        raise dw.NotServed(str(exc).strip("'\"")) from None
    display = found.display_sha or await _rendition(request, p, found)
    png = await run_in_threadpool(p.store.read, display)
    if kind == "image/jpeg":

        def to_jpeg() -> bytes:
            from PIL import Image

            out = io.BytesIO()
            Image.open(io.BytesIO(png)).convert("L").save(out, format="JPEG", quality=90)
            return out.getvalue()

        png = await run_in_threadpool(to_jpeg)
    return Response(png, media_type=kind, headers={"ETag": etag, "Cache-Control": IMMUTABLE})


RENDERED: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}, "image/jpeg": {}}},
    304: {"description": "not modified"},
    **error_responses(400, 401, 403, 404, 406, 422, 503),
}


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/rendered",
    response_class=Response,
    responses=RENDERED,
)
async def instance_rendered(
    study: UidPath, series: UidPath, sop: UidPath, request: Request, who: Principal = Depends(READ)
) -> Response:
    """WADO-RS rendered: the instance (its first frame) as an 8-bit image (``Accept``:
    image/png, the default, or image/jpeg): the display rendition the study page shows, made
    once and stored."""
    return await _rendered(request, who, study, series, sop, None)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/frames/{frame}/rendered",
    response_class=Response,
    responses=RENDERED,
)
async def frame_rendered(
    study: UidPath,
    series: UidPath,
    sop: UidPath,
    frame: Annotated[int, Path(ge=1, le=MAX_FRAME)],
    request: Request,
    who: Principal = Depends(READ),
) -> Response:
    """WADO-RS rendered of one frame of a multi-frame instance."""
    return await _rendered(request, who, study, series, sop, frame)
