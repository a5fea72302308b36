"""Admin: users and roles, the models in use, the audit log.

An admin creates accounts and resets them but never sets or sees a password: each answer
carries a one-time enrolment code for the user, who chooses their password with it. Every role
granted or changed (or refused as a ``role_conflict``) is an audit event of action ``role``,
listed for review by ``GET /api/v1/audit/role-grants``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, cast

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from medai.platform.access import account_errors, accounts, approval, audit, roles
from medai.platform.api.deps import Principal, deny, platform_of, principal, require
from medai.platform.api.schemas import (
    AuditList,
    AuditOut,
    ProfileIn,
    ProfileOut,
    ResetIn,
    Role,
    RoleGrantList,
    RoleGrantOut,
    RoleIn,
    UserIn,
    UserIssued,
    UserOut,
)
from medai.platform.documents.words.report_words import card_text
from medai.platform.records.localtime import iso_utc
from medai.platform.records.tables import User
from medai.server.errors import ApiError
from medai.server.inputs import MAX_ID, UtcDateTime
from medai.server.schemas import error_responses

router = APIRouter(prefix="/api/v1", tags=["admin"])


def user_out(u: User, now: datetime) -> dict[str, Any]:
    return {
        "id": u.id,
        "username": u.username,
        "role": u.role,
        "active": u.active,
        "created_at": iso_utc(u.created_at),
        "enrolled": accounts.enrolled(u),
        "enrol_code_expires_at": iso_utc(accounts.pending(u, now)),
        "approval_pending": approval.is_pending(u),
        "full_name": u.full_name,
        "title": u.title,
        "internal": u.username in accounts.INTERNAL,
    }


def profile_out(u: User) -> ProfileOut:
    return ProfileOut(
        username=u.username,
        role=cast(Role, u.role),  # a user's role is one of ROLES (set only from them)
        full_name=u.full_name,
        title=u.title,
        signs_as=accounts.signs_as(u.username, u.full_name, u.title),
    )


@router.get("/users", response_model=list[UserOut], responses=error_responses(401, 403))
def list_users(
    request: Request, who: Principal = Depends(require("users_manage"))
) -> list[UserOut]:
    p = platform_of(request)
    now = p.clock()
    with p.db.session() as db:
        return [UserOut(**user_out(u, now)) for u in db.scalars(select(User).order_by(User.id))]


@router.post(
    "/users",
    response_model=UserIssued,
    status_code=201,
    responses=error_responses(401, 403, 409, 422),
)
def add_user(
    body: UserIn, request: Request, who: Principal = Depends(require("users_manage"))
) -> UserIssued:
    """Create an account without a password; the answer's ``enrol_code`` (shown once) lets
    its user choose one (``POST /api/v1/auth/enrol`` or the /enrol page)."""
    p = platform_of(request)
    now = p.clock()
    hours = body.enrol_hours or accounts.ENROL_HOURS
    with p.db.session() as db:
        user, code = accounts.create_account(
            db, body.username, body.role, who.actor, now, enrol_hours=hours
        )
        # an account made without a password gets its one-time enrol code
        return UserIssued(**user_out(user, now), enrol_code=cast(str, code))


@router.post(
    "/users/{username}/reset",
    response_model=UserIssued,
    responses=error_responses(401, 403, 404, 422),
)
def reset_user(
    username: str,
    request: Request,
    body: ResetIn | None = None,
    who: Principal = Depends(require("users_manage")),
) -> UserIssued:
    """Reset a forgotten or exposed password: the old one stops working, every session and
    token of the user is revoked, and a new enrolment code (shown once) is issued."""
    p = platform_of(request)
    now = p.clock()
    hours = (body.enrol_hours if body else None) or accounts.ENROL_HOURS
    with p.db.session() as db:
        user, code = accounts.reset_account(db, username, who.actor, now, hours)
        return UserIssued(**user_out(user, now), enrol_code=code)


@router.patch(
    "/users/{username}", response_model=UserOut, responses=error_responses(401, 403, 404, 422)
)
def change_role(
    username: str, body: RoleIn, request: Request, who: Principal = Depends(require("users_manage"))
) -> UserOut:
    """Change a user's role, within its side: an administrator account never becomes a
    clinical or patient one, nor the reverse (422 ``role_conflict``; the attempt is
    audited too)."""
    p = platform_of(request)
    try:
        with p.db.session() as db:
            user, _ = accounts.assign_role(db, username, body.role, who.actor)
            return UserOut(**user_out(user, p.clock()))
    except account_errors.RoleConflict:
        with p.db.session() as db:
            accounts.record_role_refusal(db, username, body.role, who.actor)
        raise


@router.patch(
    "/users/{username}/profile",
    response_model=ProfileOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def set_profile(
    username: str, body: ProfileIn, request: Request, who: Principal = Depends(principal)
) -> ProfileOut:
    """Set an account's full name and title, as the signed PDF, FHIR, DICOM SR and HL7 name
    its signer (none: they name the user name). Each user sets their own (the /account page);
    an administrator may set anyone's. Another account's: 403 ``not_own_account``. Audited as
    ``profile`` with the fields that changed."""
    if who.user is None:
        raise ApiError(
            401, "unauthenticated", "sign in first", headers={"WWW-Authenticate": "Bearer"}
        )
    if who.user.username != username and not roles.allowed(who.role, "users_manage"):
        deny(request, who, "profile")
        raise ApiError(
            403, "not_own_account", "you may change only your own account's name and title"
        )
    p = platform_of(request)
    with p.db.session() as db:
        user = accounts.set_profile(db, username, body.full_name, body.title, who.actor)
        return profile_out(user)


def _set_active(request: Request, who: Principal, username: str, active: bool) -> UserOut:
    p = platform_of(request)
    with p.db.session() as db:
        user = accounts.set_account_active(db, username, active, who.actor)
        return UserOut(**user_out(user, p.clock()))


@router.post(
    "/users/{username}/disable",
    response_model=UserOut,
    responses=error_responses(401, 403, 404, 409),
)
def disable_user(
    username: str, request: Request, who: Principal = Depends(require("users_manage"))
) -> UserOut:
    """Disable a user; their sessions and tokens stop working at once. The last active,
    enrolled admin cannot be disabled (409 ``last_admin``)."""
    return _set_active(request, who, username, False)


@router.post(
    "/users/{username}/enable", response_model=UserOut, responses=error_responses(401, 403, 404)
)
def enable_user(
    username: str, request: Request, who: Principal = Depends(require("users_manage"))
) -> UserOut:
    return _set_active(request, who, username, True)


@router.get(
    "/audit/role-grants", response_model=RoleGrantList, responses=error_responses(401, 403, 422)
)
def role_grants(
    request: Request,
    who: Principal = Depends(require("audit_read")),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10_000_000),
) -> RoleGrantList:
    """Every role granted or changed, and every refused change, oldest first: who did it,
    to which account, from which role to which (for a periodic access review)."""
    with platform_of(request).db.session() as db:
        rows, total = accounts.role_grants(db, limit, offset)
        items = [RoleGrantOut(**g) for g in rows]
        audit.record(db, who.actor, "view", "audit", None, results=len(items), of="role")
    return RoleGrantList(items=items, total=total)


@router.get("/models", responses=error_responses(401, 403))
async def models_in_use(
    request: Request,
    who: Principal = Depends(require("models_read")),
    lang: Literal["tr", "en"] | None = None,
) -> dict[str, Any]:
    """Every served model: its identity (name, version, content hash), path, load state and
    model card (data, metrics, thresholds, intended use, licence notes); ``card_text``: the
    card's prose in the UI's language (``lang``, else the language cookie; Turkish by
    default), each field with the language it is in."""

    shown = lang or request.cookies.get("medai_lang") or "tr"
    cards = await run_in_threadpool(request.app.state.models.cards)
    return {
        task: {**m, "card_text": card_text(m.get("card"), shown)} if isinstance(m, dict) else m
        for task, m in cards.items()
    }


@router.get("/audit", response_model=AuditList, responses=error_responses(401, 403, 422))
def audit_log(
    request: Request,
    who: Principal = Depends(require("audit_read")),
    action: str | None = Query(None, max_length=32),
    actor: str | None = Query(None, max_length=64),
    target_type: str | None = Query(None, max_length=32),
    target_id: str | None = Query(None, max_length=64),
    since: UtcDateTime | None = None,
    until: UtcDateTime | None = None,
    study_id: int | None = Query(None, ge=1, le=MAX_ID, description="events about this study"),
    order: Literal["desc", "asc"] = Query("desc", description="desc: newest first"),
    until_id: int | None = Query(
        None, ge=1, le=MAX_ID, description="only events up to this id (stable pages)"
    ),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10_000_000),
) -> AuditList:
    """The audit log, newest first (``order=asc``: oldest first), filterable, ``limit`` events
    from ``offset`` of ``total``. ``until_id`` (the answer's, from the first page) keeps the
    pages put while new events arrive. Each event names its study (``study_id``) and a user or
    kiosk target by its name (``target_name``). Append-only: nothing here can change it."""

    def naive(t: datetime | None) -> datetime | None:  # stored as naive UTC
        if t is None or t.tzinfo is None:
            return t
        return t.astimezone(UTC).replace(tzinfo=None)

    with platform_of(request).db.session() as db:
        page = audit.read_log(
            db,
            who.actor,
            action,
            actor,
            target_type,
            target_id,
            naive(since),
            naive(until),
            limit,
            offset,
            study_id=study_id,
            order=order,
            until_id=until_id,
            pin=True,
        )
    return AuditList(
        items=[AuditOut(**e) for e in page["items"]],
        total=page["total"],
        order=order,
        limit=limit,
        offset=offset,
        until_id=page["until_id"],
    )
