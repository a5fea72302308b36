"""Kiosk devices: admins register, re-enrol, change the quota of and revoke them; a kiosk
browser exchanges its one-time enrolment code for an HttpOnly cookie; a machine client sends
its token as ``X-Kiosk-Token``. Every change is audited."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from medai.platform.access import kiosks, sign_in
from medai.platform.api.deps import Principal, client_key, platform_of, require
from medai.platform.api.kiosk_schemas import (
    KioskEnrolIn,
    KioskEnrolment,
    KioskIn,
    KioskIssued,
    KioskOut,
    KioskQuotaIn,
    KioskSelf,
)
from medai.platform.records.localtime import iso_utc
from medai.platform.records.tables import Kiosk
from medai.server.errors import ApiError
from medai.server.inputs import RowId
from medai.server.schemas import error_responses
from medai.settings import Settings

router = APIRouter(prefix="/api/v1", tags=["kiosks"])
KIOSK_COOKIE = "medai_kiosk"
KIOSK_HEADER = "X-Kiosk-Token"
COOKIE_DAYS = 400  # browsers cap cookie lifetimes near this; revocation is server-side
KioskId = RowId


def _out(k: Kiosk, used: int, now: datetime) -> dict:
    pending = k.enrol_expires_at if k.enrol_expires_at and k.enrol_expires_at > now else None
    return {
        "id": k.id,
        "name": k.name,
        "daily_quota": k.daily_quota,
        "used_today": used,
        "enrolled": k.cookie_hash is not None and k.revoked_at is None,
        "enrolled_at": iso_utc(k.enrolled_at),
        "enrol_code_expires_at": iso_utc(pending),
        "created_at": iso_utc(k.created_at),
        "revoked": k.revoked_at is not None,
        "revoked_at": iso_utc(k.revoked_at),
    }


def _settings(request: Request) -> Settings:
    return platform_of(request).settings


@router.get("/admin/kiosks", response_model=list[KioskOut], responses=error_responses(401, 403))
def list_kiosks(
    request: Request, who: Principal = Depends(require("kiosks_manage"))
) -> list[KioskOut]:
    """Every kiosk with its quota and today's use (registered first, then revoked)."""
    p = platform_of(request)
    now = p.clock()
    with p.db.reader() as db:
        rows = kiosks.listing(db)
        used = kiosks.used_today(db, [k.id for k in rows], now, _settings(request).general.timezone)
        return [KioskOut(**_out(k, used[k.id], now)) for k in rows]


@router.post(
    "/admin/kiosks",
    response_model=KioskIssued,
    status_code=201,
    responses=error_responses(401, 403, 409, 422),
)
def register_kiosk(
    body: KioskIn, request: Request, who: Principal = Depends(require("kiosks_manage"))
) -> KioskIssued:
    """Register a kiosk: its API token and one-time enrolment code are in this answer only."""
    settings = _settings(request)
    p = platform_of(request)
    now = p.clock()
    quota = settings.kiosk.kiosk_device_quota if body.daily_quota is None else body.daily_quota
    with p.db.session() as db:
        issued = kiosks.register_kiosk(
            db, body.name, quota, now, settings.kiosk.kiosk_enrol_minutes, who.actor
        )
        out = _out(issued.kiosk, 0, now)
    return KioskIssued(**out, token=issued.token, enrol_code=issued.enrol_code)


def _change(request: Request, kiosk_id: int, change) -> dict:
    """Apply ``change`` (a ``kiosks`` use case, which audits) to the kiosk; its answer with
    today's use."""
    p = platform_of(request)
    now = p.clock()
    with p.db.session() as db:
        kiosk = kiosks.get(db, kiosk_id)
        detail = change(db, kiosk, now) or {}
        used = kiosks.used_today(db, [kiosk.id], now, _settings(request).general.timezone)[kiosk.id]
        return {"kiosk": _out(kiosk, used, now), **detail}


@router.patch(
    "/admin/kiosks/{kiosk_id}",
    response_model=KioskOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def change_quota(
    kiosk_id: KioskId,
    body: KioskQuotaIn,
    request: Request,
    who: Principal = Depends(require("kiosks_manage")),
) -> KioskOut:
    """Change a kiosk's daily quota (takes effect at once, for today too)."""

    def apply(db, kiosk: Kiosk, _now) -> None:
        kiosks.change_quota(db, kiosk, body.daily_quota, who.actor)

    return KioskOut(**_change(request, kiosk_id, apply)["kiosk"])


@router.post(
    "/admin/kiosks/{kiosk_id}/enrolment",
    response_model=KioskEnrolment,
    responses=error_responses(401, 403, 404, 409),
)
def new_enrolment(
    kiosk_id: KioskId, request: Request, who: Principal = Depends(require("kiosks_manage"))
) -> KioskEnrolment:
    """A new one-time enrolment code (shown once), e.g. for a replaced kiosk browser; once it
    is used, the previous browser's cookie stops working."""
    minutes = _settings(request).kiosk.kiosk_enrol_minutes

    def apply(db, kiosk: Kiosk, now) -> dict:
        return {"code": kiosks.issue_enrol_code(db, kiosk, now, minutes, who.actor)}

    done = _change(request, kiosk_id, apply)
    return KioskEnrolment(
        enrol_code=done["code"], enrol_code_expires_at=done["kiosk"]["enrol_code_expires_at"]
    )


@router.post(
    "/admin/kiosks/{kiosk_id}/revoke",
    response_model=KioskOut,
    responses=error_responses(401, 403, 404),
)
def revoke_kiosk(
    kiosk_id: KioskId, request: Request, who: Principal = Depends(require("kiosks_manage"))
) -> KioskOut:
    """Revoke a kiosk: its token and its browser stop at once (the record stays)."""

    def apply(db, kiosk: Kiosk, now) -> None:
        kiosks.revoke_kiosk(db, kiosk, now, who.actor)

    return KioskOut(**_change(request, kiosk_id, apply)["kiosk"])


def _secure(request: Request) -> bool:
    return _settings(request).auth.secure_cookies or request.url.scheme == "https"


@router.post("/kiosk/enrol", response_model=KioskSelf, responses=error_responses(404, 422, 429))
def enrol(body: KioskEnrolIn, request: Request) -> JSONResponse:
    """Make this browser the kiosk: exchange a one-time enrolment code for an HttpOnly,
    SameSite=Strict cookie (the code then stops working). Failed codes are throttled per
    client like failed sign-ins: each attempt is counted (atomically with the check) before
    the code is tried, and un-counted when the code was right."""
    done = sign_in.enrol_kiosk(platform_of(request), body.code, client_key(request))
    out = KioskSelf(
        name=done.name,
        daily_quota=done.daily_quota,
        used_today=done.used_today,
        resets_in_s=done.resets_in_s,
    )
    response = JSONResponse(out.model_dump())
    response.set_cookie(
        KIOSK_COOKIE,
        done.secret,
        max_age=COOKIE_DAYS * 86400,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/",
    )
    return response


def kiosk_of(request: Request) -> Kiosk | None:
    """The registered kiosk this request comes from (its token header, else its cookie), or
    None when it presents neither. A revoked or unknown credential is a 401 that says so."""
    raw, kind = request.headers.get(KIOSK_HEADER), "token"
    if not raw:
        raw, kind = request.cookies.get(KIOSK_COOKIE), "cookie"
    if not raw:
        return None
    with platform_of(request).db.reader() as db:
        kiosk = kiosks.by_credential(db, raw, kind)
    if kiosk is None:
        raise ApiError(
            401,
            "kiosk_unknown",
            "this kiosk is not enrolled (its credential is "
            "unknown or was replaced); enrol it again",
        )
    if kiosk.revoked_at is not None:
        raise ApiError(401, "kiosk_revoked", "this kiosk was revoked by an administrator")
    return kiosk


@router.get("/kiosk", response_model=KioskSelf, responses=error_responses(401))
def kiosk_status(request: Request) -> KioskSelf:
    """The calling kiosk's name, quota and today's use (its cookie or X-Kiosk-Token)."""
    kiosk = kiosk_of(request)
    if kiosk is None:
        raise ApiError(401, "unauthenticated", f"send {KIOSK_HEADER} or enrol this browser")
    p = platform_of(request)
    now, zone = p.clock(), _settings(request).general.timezone
    with p.db.reader() as db:
        used = kiosks.used_today(db, [kiosk.id], now, zone)[kiosk.id]
    return KioskSelf(
        name=kiosk.name,
        daily_quota=kiosk.daily_quota,
        used_today=used,
        resets_in_s=kiosks.day_window(now, zone)[1],
    )
