"""The second person of the two-person rule (``platform.access.approval``): a radiologist sees the
accounts awaiting approval (names and roles only, no patient data) and approves a colleague's;
never their own, and an admin never (``accounts_approve`` is a clinical permission)."""

from __future__ import annotations

from typing import cast

from fastapi import APIRouter, Depends, Request

from medai.platform.access import account_errors, accounts, approval
from medai.platform.api.deps import Principal, platform_of, require
from medai.platform.api.routes.admin import user_out
from medai.platform.api.schemas import PendingOut, Role, UserOut
from medai.server.schemas import error_responses

router = APIRouter(prefix="/api/v1", tags=["admin"])


@router.get("/users/pending", response_model=list[PendingOut], responses=error_responses(401, 403))
def pending(
    request: Request, who: Principal = Depends(require("accounts_approve"))
) -> list[PendingOut]:
    """Active clinical accounts awaiting approval for patient data, oldest first, each with
    whether its holder has enrolled (approval waits for that)."""
    with platform_of(request).db.session() as db:
        return [
            PendingOut(username=u.username, role=cast(Role, u.role), enrolled=accounts.enrolled(u))
            for u in approval.pending_users(db)
        ]


@router.post(
    "/users/{username}/approve",
    response_model=UserOut,
    responses=error_responses(401, 403, 404, 409),
)
def approve(
    username: str, request: Request, who: Principal = Depends(require("accounts_approve"))
) -> UserOut:
    """Approve a pending colleague's account for patient data (audited). Your own account:
    403 ``approval_self``; an account not awaiting approval: 409 ``not_pending``; one whose
    holder has not enrolled yet: 409 ``not_enrolled``; every refusal is audited too."""
    p = platform_of(request)
    now = p.clock()
    try:
        with p.db.session() as db:
            user = approval.approve(db, username, who.actor, now)
            return UserOut(**user_out(user, now))
    except account_errors.NoSuchUser:
        raise
    except account_errors.AccountError as exc:
        with p.db.session() as db:
            approval.record_refusal(db, username, who.actor, exc)
        raise
