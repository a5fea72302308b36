"""DICOMweb STOW-RS: a PACS, a modality gateway or a script stores instances over HTTP
(``POST /api/v1/dicomweb/studies``, ``multipart/related; type="application/dicom"``; the
service root is ``/api/v1/dicomweb``), each filed exactly like a C-STORE to the DICOM node
(``intake.receive``: bounded, identified, routed, audited, its analysis queued).

The caller signs in like any other client (a bearer token of an account that may upload
studies); the answer is the standard's Store Instances Response (DICOM JSON): the instances
stored (ReferencedSOPSequence) and those refused with a reason (FailedSOPSequence, with an
Error Comment naming the rule and the attribute, e.g. ``PatientName: a component group longer
than 64 characters``); 200 when every instance was stored, 202 when some were, 409 when none
was. A part's UIDs are echoed only when they are UIDs."""

from __future__ import annotations

import io
import logging
from email.parser import BytesParser
from email.policy import HTTP
from typing import cast

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from medai.platform.access import audit, roles
from medai.platform.api.deps import Principal, platform_of, require
from medai.platform.dicom.dicom_values import is_uid
from medai.platform.intake import receive
from medai.platform.reading import catalog, measurements
from medai.server.errors import ApiError
from medai.server.schemas import error_responses

log = logging.getLogger("medai.integration")
router = APIRouter(prefix="/api/v1/dicomweb", tags=["dicomweb"])
CALLING = "STOWRS"
MAX_PARTS = 1000
# Failure Reason (0008,1197) values of PS3.18 / PS3.4
PROCESSING_FAILURE, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0110, 0xA700, 0xC000


def _parts(content_type: str, body: bytes) -> list[bytes]:
    """The application/dicom parts of a multipart/related body (415 for anything else)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind != "multipart/related" or "application/dicom" not in content_type.lower():
        raise ApiError(
            415, "unsupported_media_type", 'send multipart/related; type="application/dicom"'
        )
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ApiError(400, "bad_request", "the multipart body has no parts")
    parts = [
        p.get_payload(decode=True) or b""
        for p in message.iter_parts()
        if p.get_content_type() == "application/dicom"
    ]
    if not parts:
        raise ApiError(400, "bad_request", "no application/dicom part")
    if len(parts) > MAX_PARTS:
        raise ApiError(413, "too_large", f"more than {MAX_PARTS} instances in one request")
    # get_payload(decode=True) of a leaf part gives its bytes
    return cast(list[bytes], parts)


def _uids(data: bytes) -> tuple[str | None, str | None]:
    """SOP Class and Instance UIDs of a part, for the answer (None when unreadable, or not a
    UID: a refused ``../../etc/passwd`` is not sent back)."""
    from pydicom import dcmread

    try:
        ds = dcmread(
            io.BytesIO(data),
            stop_before_pixels=True,
            specific_tags=["SOPClassUID", "SOPInstanceUID"],
        )
        sop_class, sop_uid = (
            str(ds.get(k) or "").rstrip(" \x00") for k in ("SOPClassUID", "SOPInstanceUID")
        )
        return (sop_class if is_uid(sop_class) else None), (sop_uid if is_uid(sop_uid) else None)
    except Exception as exc:  # broad: pydicom raises many types: no UIDs (logged)
        log.warning("STOW-RS part: its UIDs cannot be read (%s)", type(exc).__name__)
        return None, None


def _item(
    sop_class: str | None, sop_uid: str | None, reason: int | None = None, comment: str = ""
) -> dict:
    item: dict = {}
    if sop_class:
        item["00081150"] = {"vr": "UI", "Value": [sop_class]}
    if sop_uid:
        item["00081155"] = {"vr": "UI", "Value": [sop_uid]}
    if reason is not None:
        item["00081197"] = {"vr": "US", "Value": [reason]}
    if comment:  # Error Comment (LO): the rule and the attribute, never a value
        item["00000902"] = {"vr": "LO", "Value": [comment.replace("\\", "/")[:64]]}
    return item


def _store_measurements(p, who: Principal, data: bytes) -> None:
    """A TID 1500 measurement report filed as the sender's measurements of the study it
    names (``reading.measurements``); 403 ``measurement_forbidden`` for an account that may
    not report; NotMeasurement for any other SR."""
    report = measurements.parse(data)
    if not roles.allowed(who.role, "report_edit"):
        with p.db.session() as db:
            audit.record(
                db, who.actor, "denied", "dicomweb", None, outcome="denied", needed="measure"
            )
        raise ApiError(403, "measurement_forbidden", "only a radiologist files measurements")
    with p.db.session() as db:
        study = catalog.served_study(db, report.study_uid)
        if study is None:
            raise measurements.Unusable("StudyInstanceUID: not a study medai holds")
        sha = p.store.put_bytes(data)
        ids = measurements.file(db, p.store, study, who.signed_in.id, report, sha)
        audit.record(db, who.actor, "measure", "study", study.id, count=len(ids))


def _store_all(request: Request, who: Principal, parts: list[bytes]) -> tuple[list, list, list]:
    p = platform_of(request)
    stored, failed, queued = [], [], []
    for data in parts:
        sop_class, sop_uid = _uids(data)
        if sop_class in measurements.SR_CLASSES:
            try:
                _store_measurements(p, who, data)
            except measurements.NotMeasurement:
                pass  # any other SR is filed as an instance
            except measurements.Unusable as exc:
                failed.append(_item(sop_class, sop_uid, CANNOT_UNDERSTAND, str(exc)))
                continue
            else:
                stored.append(_item(sop_class, sop_uid))
                continue
        try:
            got = receive.store(p, data, CALLING, who.client)
        except receive.Refused as exc:
            failed.append(_item(sop_class, sop_uid, exc.dicom_status, str(exc)))
            continue
        except OSError:  # a full or read-only disk: named by the error layer for the caller
            raise
        stored.append(_item(sop_class, sop_uid))
        if got.job_id is not None:
            queued.append((got.study_id, got.job_id))
    with p.db.session() as db:
        audit.record(
            db, who.actor, "upload", "dicomweb", None, stored=len(stored), failed=len(failed)
        )
    return stored, failed, queued


@router.post(
    "/studies",
    status_code=200,
    responses={
        200: {
            "content": {"application/dicom+json": {}},
            "description": "Store Instances Response: every instance stored",
        },
        202: {
            "content": {"application/dicom+json": {}},
            "description": "some instances stored, others in FailedSOPSequence",
        },
        409: {
            "content": {"application/dicom+json": {}},
            "description": "no instance stored (each in FailedSOPSequence with its reason)",
        },
        **error_responses(400, 401, 403, 413, 415),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "the DICOM instances, one part each (with its "
            "boundary in the Content-Type)",
            "content": {
                'multipart/related; type="application/dicom"': {
                    "schema": {"type": "string", "format": "binary"}
                }
            },
        }
    },
)
async def store_instances(
    request: Request, who: Principal = Depends(require("study_upload"))
) -> JSONResponse:
    """STOW-RS: store the DICOM instances of a ``multipart/related`` body."""
    content_type = request.headers.get("content-type", "")
    parts = _parts(content_type, await request.body())
    stored, failed, queued = await run_in_threadpool(_store_all, request, who, parts)
    for study_id, job_id in queued:
        try:
            request.app.state.dispatch(study_id, job_id, False)
        except Exception as exc:  # broad: the job row stays queued for a poller (logged)
            log.error("dispatching study %s failed: %s", study_id, type(exc).__name__)
    body: dict = {}
    if stored:
        body["00081199"] = {"vr": "SQ", "Value": stored}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    status = 200 if not failed else (202 if stored else 409)
    log.info("stow-rs: stored=%d failed=%d", len(stored), len(failed))
    return JSONResponse(body, status, media_type="application/dicom+json")
