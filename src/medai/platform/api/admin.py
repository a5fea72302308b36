"""Admin: users and roles, the models in use, the audit log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from medai.platform import accounts, audit
from medai.platform.api.deps import Principal, platform_of, require
from medai.platform.api.schemas import AuditList, AuditOut, UserIn, UserOut
from medai.platform.tables import User
from medai.server.errors import ApiError
from medai.server.schemas import error_responses

router = APIRouter(prefix="/api/v1", tags=["admin"])


def _user_out(u: User) -> UserOut:
    return UserOut(id=u.id, username=u.username, role=u.role, active=u.active,
                   created_at=u.created_at.isoformat() + "Z")


@router.get("/users", response_model=list[UserOut], responses=error_responses(401, 403))
def list_users(request: Request,
               who: Principal = Depends(require("users_manage"))) -> list[UserOut]:
    with platform_of(request).db.session() as db:
        return [_user_out(u) for u in db.scalars(select(User).order_by(User.id))]


@router.post("/users", response_model=UserOut, status_code=201,
             responses=error_responses(401, 403, 409, 422))
def add_user(body: UserIn, request: Request,
             who: Principal = Depends(require("users_manage"))) -> UserOut:
    try:
        with platform_of(request).db.session() as db:
            user = accounts.create_user(db, body.username, body.password, body.role)
            audit.record(db, who.actor, "admin", "user", user.id, op="create", role=body.role)
            return _user_out(user)
    except accounts.AccountError as exc:
        status = 409 if "exists" in str(exc) else 422
        raise ApiError(status, "conflict" if status == 409 else "invalid", str(exc)) from None


def _set_active(request: Request, who: Principal, username: str, active: bool) -> UserOut:
    try:
        with platform_of(request).db.session() as db:
            user = accounts.set_active(db, username, active)
            audit.record(db, who.actor, "admin", "user", user.id,
                         op="enable" if active else "disable")
            return _user_out(user)
    except accounts.AccountError as exc:
        raise ApiError(404, "not_found", str(exc)) from None


@router.post("/users/{username}/disable", response_model=UserOut,
             responses=error_responses(401, 403, 404))
def disable_user(username: str, request: Request,
                 who: Principal = Depends(require("users_manage"))) -> UserOut:
    """Disable a user; their sessions and tokens stop working at once."""
    return _set_active(request, who, username, False)


@router.post("/users/{username}/enable", response_model=UserOut,
             responses=error_responses(401, 403, 404))
def enable_user(username: str, request: Request,
                who: Principal = Depends(require("users_manage"))) -> UserOut:
    return _set_active(request, who, username, True)


@router.get("/models", responses=error_responses(401, 403))
async def models_in_use(request: Request,
                        who: Principal = Depends(require("models_read"))) -> dict[str, Any]:
    """Every served model: its identity (name, version, content hash), path, load state and
    model card (data, metrics, thresholds, intended use, licence notes)."""
    return await run_in_threadpool(request.app.state.models.cards)


@router.get("/audit", response_model=AuditList, responses=error_responses(401, 403, 422))
def audit_log(request: Request, who: Principal = Depends(require("audit_read")),
              action: str | None = Query(None, max_length=32),
              actor: str | None = Query(None, max_length=64),
              target_type: str | None = Query(None, max_length=32),
              target_id: str | None = Query(None, max_length=64),
              since: datetime | None = None, until: datetime | None = None,
              limit: int = Query(100, ge=1, le=1000),
              offset: int = Query(0, ge=0, le=10_000_000)) -> AuditList:
    """The audit log, oldest first, filterable (append-only: nothing here can change it)."""
    def naive(t: datetime | None) -> datetime | None:  # stored as naive UTC
        if t is None or t.tzinfo is None:
            return t
        return t.astimezone(UTC).replace(tzinfo=None)

    with platform_of(request).db.session() as db:
        rows, total = audit.query(db, action, actor, target_type, target_id, naive(since),
                                  naive(until), limit, offset)
        items = [AuditOut(**audit.as_dict(e)) for e in rows]
        audit.record(db, who.actor, "view", "audit", None, results=len(items))
    return AuditList(items=items, total=total)
