"""Who is calling, and may they: the session cookie (browser, CSRF-checked on every unsafe
method) or a bearer token (machine clients), checked against ``roles.PERMISSIONS``.
Every refusal is audited."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import cast

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from medai.platform.access import approval, audit, roles, tokens
from medai.platform.context import Platform
from medai.platform.records.tables import Token, User
from medai.server.errors import ApiError

SESSION_COOKIE = "medai_session"
CSRF_COOKIE = "medai_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass
class Principal:
    user: User | None
    token: Token | None
    via: str  # session | bearer | anonymous
    client: str

    @property
    def role(self) -> str | None:
        return self.user.role if self.user else None

    @property
    def signed_in(self) -> User:
        """``user`` on a route ``require`` guards: there it is never None."""
        return cast(User, self.user)  # require() answers 401 for an anonymous request

    @property
    def actor(self) -> audit.Actor:
        if self.user is None:
            return audit.Actor(name="anonymous", client=self.client)
        return audit.Actor(
            name=self.user.username, id=self.user.id, role=self.user.role, client=self.client
        )


def platform_of(request: Request) -> Platform:
    return request.app.state.platform


def client_key(request: Request) -> str:
    """A pseudonymous client key (hashed address): throttling and kiosk quotas count per
    client without storing addresses."""
    host = request.client.host if request.client else "unknown"
    return hashlib.sha256(("medai:" + host).encode()).hexdigest()[:16]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def principal(request: Request) -> Principal:
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    p = platform_of(request)
    client = client_key(request)
    raw, kind = _bearer(request), "bearer"
    if raw is None:
        raw, kind = request.cookies.get(SESSION_COOKIE), "session"
    found = None
    if raw:
        with p.db.reader() as db:
            found = tokens.resolve(db, raw, kind)
        if found is None:
            raise ApiError(
                401,
                "unauthenticated",
                "session expired or token invalid; sign in",
                headers={"WWW-Authenticate": "Bearer"},
            )
    if found is None:
        who = Principal(None, None, "anonymous", client)
    else:
        who = Principal(found[0], found[1], kind, client)
        if (
            kind == "session"
            and request.method not in SAFE_METHODS
            and not tokens.csrf_ok(found[1], request.headers.get(CSRF_HEADER))
        ):
            deny(request, who, "csrf")
            raise ApiError(
                403,
                "forbidden",
                f"missing or wrong {CSRF_HEADER} header (the value of the {CSRF_COOKIE} cookie)",
            )
    request.state.principal = who
    return who


def sees_server_paths(request: Request) -> bool:
    """Readiness shows the served models' file paths only to who manages the models (an
    admin); anyone else, the anonymous load balancer included, reads names, versions and
    hashes (``server.health``). A bad token here is simply not an admin."""
    try:
        who = principal(request)
    except ApiError:
        return False
    return who.user is not None and roles.allowed(who.role, "models_manage")


def deny(request: Request, who: Principal, action: str) -> None:
    with platform_of(request).db.session() as db:
        audit.record(
            db,
            who.actor,
            "denied",
            "route",
            request.url.path[:64],
            outcome="denied",
            method=request.method,
            needed=action,
        )


def require(action: str, *alternatives: str):
    """Dependency: a signed-in user whose role may do ``action`` (or, failing that, the first
    of ``alternatives`` it may do: a route that shows each role its own view), with the
    approval a patient-data action needs (403 ``approval_pending``: the two-person rule)."""
    actions = (action, *alternatives)

    # async: the check itself is in memory (the principal was read in its own thread-pool
    # trip), so an allowed request makes no second trip to the pool (about 1 ms of a frame
    # request under uvicorn); a refusal's audit write still runs in the pool
    async def check(request: Request, who: Principal = Depends(principal)) -> Principal:
        if who.user is None:
            raise ApiError(
                401, "unauthenticated", "sign in first", headers={"WWW-Authenticate": "Bearer"}
            )
        held = next((a for a in actions if roles.allowed(who.role, a)), None)
        if held is None:
            await run_in_threadpool(deny, request, who, action)
            raise ApiError(403, "forbidden", f"role {who.role!r} may not {action}")
        try:
            approval.check(who.user, held)
        except approval.ApprovalPending:
            await run_in_threadpool(deny, request, who, held)
            raise
        return who

    check.__name__ = f"require_{'_or_'.join(actions)}"
    return check
