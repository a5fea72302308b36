"""Sign in and out, enrolment (a user choosing their own password with a one-time code), the
caller's identity, and bearer tokens for machine clients."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from medai.platform.access import audit, sign_in, tokens
from medai.platform.api.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Principal,
    client_key,
    platform_of,
    principal,
)
from medai.platform.api.schemas import (
    EnrolIn,
    EnrolOut,
    LoginIn,
    LoginOut,
    Me,
    OkOut,
    Role,
    TokenIn,
    TokenOut,
)
from medai.platform.records.tables import Token
from medai.server.errors import ApiError
from medai.server.inputs import RowId
from medai.server.schemas import error_responses

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


def _secure(request: Request) -> bool:
    return platform_of(request).settings.auth.secure_cookies or request.url.scheme == "https"


@router.post("/login", response_model=LoginOut, responses=error_responses(401, 422, 429))
def login(body: LoginIn, request: Request) -> JSONResponse:
    """Password sign-in: a bearer token in the body and a session cookie (HttpOnly,
    SameSite=Strict) with its CSRF token for browser forms. The attempt is counted as a
    failure (atomically with the throttle's check, in its own transaction) before the password
    is checked, and un-counted when it was right: concurrent attempts never pass the limit."""
    signed = sign_in.login(platform_of(request), body.username, body.password, client_key(request))
    bearer, session = signed.bearer, signed.session
    out = LoginOut(
        access_token=bearer.token,
        role=cast(Role, signed.role),  # a user's role is one of ROLES (set only from them)
        expires_in=bearer.expires_in_s,
        csrf_token=cast(str, session.csrf),  # a session is made with its CSRF token
    )
    response = JSONResponse(out.model_dump())
    secure = _secure(request)
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        max_age=session.expires_in_s,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )
    response.set_cookie(
        CSRF_COOKIE,
        cast(str, session.csrf),  # a session is made with its CSRF token
        max_age=session.expires_in_s,
        httponly=False,
        samesite="strict",
        secure=secure,
        path="/",
    )
    return response


@router.post("/logout", response_model=OkOut, responses=error_responses(401, 403))
def logout(request: Request, who: Principal = Depends(principal)) -> JSONResponse:
    """End this sign-in: the session cookie and the bearer token that one password login
    returned are both revoked, whichever of them this request came with (a named token from
    ``POST /auth/tokens`` is revoked only when it is the one presented)."""
    if who.user is None:
        raise ApiError(401, "unauthenticated", "not signed in")
    with platform_of(request).db.session() as db:
        # a signed-in request came with its session or bearer token
        tok = db.get(Token, cast(Token, who.token).id)
        ended = tokens.sign_out(db, cast(Token, tok))  # the row this request signed in with
        audit.record(db, who.actor, "logout", "user", who.user.id, revoked=ended)
    response = JSONResponse({"ok": True})
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.post("/enrol", response_model=EnrolOut, responses=error_responses(404, 422, 429))
def enrol(body: EnrolIn, request: Request) -> EnrolOut:
    """A new (or reset) user chooses their password with the one-time code an administrator
    gave them; the code is then used up. A weak password is refused with 422
    ``weak_password`` (``errors[0].type``: too_short, too_long, contains_username, common,
    context or guessable) and leaves the code valid. Wrong codes are throttled per client:
    each attempt is counted (atomically with the check) before the code is tried, and
    un-counted unless the code was wrong."""
    user = sign_in.enrol(platform_of(request), body.code, body.password, client_key(request))
    return EnrolOut(
        username=user.username, role=cast(Role, user.role)
    )  # a user's role is one of ROLES (set only from them)


@router.get("/me", response_model=Me, responses=error_responses(401))
def me(who: Principal = Depends(principal)) -> Me:
    if who.user is None:
        raise ApiError(401, "unauthenticated", "not signed in")
    u = who.user
    return Me(
        id=u.id,
        username=u.username,
        role=cast(Role, u.role),
        via=who.via,
        full_name=u.full_name,
        title=u.title,
    )


def _token_out(t: Token, raw: str | None = None) -> TokenOut:
    return TokenOut(
        id=t.id,
        name=t.name,
        kind=t.kind,
        created_at=t.created_at.isoformat() + "Z",
        expires_at=t.expires_at.isoformat() + "Z",
        revoked=t.revoked_at is not None,
        token=raw,
    )


@router.post(
    "/tokens", response_model=TokenOut, status_code=201, responses=error_responses(401, 403, 422)
)
def create_token(body: TokenIn, request: Request, who: Principal = Depends(principal)) -> TokenOut:
    """A named bearer token for a machine client (shown once)."""
    if who.user is None:
        raise ApiError(401, "unauthenticated", "not signed in")
    p = platform_of(request)
    days = body.days if body.days is not None else p.settings.auth.token_days
    with p.db.session() as db:
        issued = tokens.issue(db, who.user, "bearer", timedelta(days=days), name=body.name)
        db.flush()
        tok = cast(  # the token just issued
            Token,
            db.scalar(
                select(Token).order_by(Token.id.desc()).where(Token.user_id == who.user.id).limit(1)
            ),
        )
        audit.record(db, who.actor, "token", "token", tok.id, created=True)
        return _token_out(tok, issued.token)


@router.get("/tokens", response_model=list[TokenOut], responses=error_responses(401))
def list_tokens(request: Request, who: Principal = Depends(principal)) -> list[TokenOut]:
    if who.user is None:
        raise ApiError(401, "unauthenticated", "not signed in")
    with platform_of(request).db.session() as db:
        rows = db.scalars(
            select(Token)
            .where(Token.user_id == who.user.id, Token.kind == "bearer")
            .order_by(Token.id)
        )
        return [_token_out(t) for t in rows]


@router.delete("/tokens/{token_id}", response_model=OkOut, responses=error_responses(401, 404))
def revoke_token(token_id: RowId, request: Request, who: Principal = Depends(principal)) -> OkOut:
    """Revoke one of your tokens (an admin may revoke anyone's)."""
    if who.user is None:
        raise ApiError(401, "unauthenticated", "not signed in")
    with platform_of(request).db.session() as db:
        tok = db.get(Token, token_id)
        if tok is None or (tok.user_id != who.user.id and who.role != "admin"):
            raise ApiError(404, "not_found", "no such token")
        tokens.revoke(db, tok)
        audit.record(db, who.actor, "token", "token", tok.id, revoked=True)
    return OkOut()
