"""ASGI middleware that keeps the server bounded and quiet about patients.

- ``BodyLimit``: a request body is refused with 413 as soon as its declared length, or the
  bytes streamed so far, pass the route's limit — before it is parsed or spooled to disk (a
  2 GB upload was written to a temporary file before the 413, and a 100 MB JSON read whole).
- ``SecurityHeaders``: CSP, nosniff, frame-ancestors, Referrer-Policy, HSTS behind TLS.
- ``Guard``: the access log — one line per request on ``medai.access``: method, route template
  (``/api/v1/studies/{study_id}``, never the path's values or its query string), status,
  duration and a request id that is also sent back as ``X-Request-ID`` — and a plain 500 for
  any unexpected exception, logged by type and place only, never with its message or the
  request body (messages can quote the complaint).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import traceback
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Protocol

from medai.core.errors import MedaiError

log = logging.getLogger("medai.server")
access_log = logging.getLogger("medai.access")
REQUEST_ID = "medai.request_id"  # scope key of the request's id
# scope key set by the HTTP protocol when it answered 408 itself (``server.http_timeouts``)
READ_TIMED_OUT = "medai.read_timed_out"
_ROOT_BEFORE = "medai.root_path"  # the root path before routing (a mount extends it)
_STATUS = "medai.status"  # scope key of the status the client got (the Guard's metrics)

Scope = MutableMapping[str, Any]  # Starlette's ASGI scope type
ASGIApp = Callable

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)


async def send_json(send, status: int, body: dict, headers: list | None = None) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class _TooLarge(MedaiError, Exception):
    code = "too_large"


class BodyLimit:
    """``limit_for(path) -> bytes`` gives each route's limit."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app, self.limit_for = app, limit_for

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope["path"])
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                return await send_json(
                    send, 400, {"detail": "invalid Content-Length", "code": "bad_request"}
                )
            if too_big:
                return await self._refuse(send, limit)
        seen, started, overflow = 0, False, False

        async def limited_receive():
            nonlocal seen, overflow
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    overflow = True
                    raise _TooLarge
            return message

        async def guarded_send(message):
            nonlocal started
            if overflow:  # the app turned our interruption into some response: replace it
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            pass
        if overflow and not started:
            await self._refuse(send, limit)

    @staticmethod
    async def _refuse(send, limit: int) -> None:
        await send_json(
            send,
            413,
            {"detail": f"request body is larger than {limit:,} bytes", "code": "too_large"},
            [(b"connection", b"close")],
        )


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        tls = scope.get("scheme") == "https"

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                # a route's own policy and caching stand (the viewer's CSP for OHIF's codecs,
                # an immutable DICOM frame's Cache-Control); everything else gets medai's
                own = {k.lower() for k, _ in headers}
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                headers += [
                    (name, value)
                    for name, value in (
                        (b"content-security-policy", CSP.encode()),
                        (b"cache-control", b"no-store"),
                    )
                    if name not in own
                ]
                if tls:
                    headers.append(
                        (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
                    )
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def route_path(scope: Scope) -> str:
    """The path routes match (the request's, less the root path a proxy mounts it under)."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _flat(routes: list) -> Iterator[object]:
    """Every route, those of an included router too (recent FastAPI keeps an included router
    as one entry that lists its routes, each with its full path, on demand)."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        yield from (contexts() if callable(contexts) else (route,))


def concrete_methods(routes: list) -> dict[str, set[str]]:
    """Each parameterless route path and the methods its routes serve (a mount, serving any
    path under it, is none)."""
    found: dict[str, set[str]] = {}
    for route in _flat(routes):
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        if isinstance(path, str) and methods and "{" not in path:
            found.setdefault(path, set()).update(methods)
    return found


class ConcretePaths:
    """A path that names no parameter is served by its own routes only, as OpenAPI matches
    it ("concrete paths before templated ones"): ``PATCH /api/v1/users/pending`` is a 405
    (Allow: GET), not the role change of a user called "pending" that the router's
    ``/users/{username}`` would have made of it. ``routes`` is the app's own list, read once
    the app is complete (at its first request)."""

    def __init__(self, app: ASGIApp, routes: list) -> None:
        self.app, self.routes = app, routes
        self._concrete: dict[str, set[str]] | None = None

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] == "http":
            if self._concrete is None:
                self._concrete = concrete_methods(self.routes)
            methods = self._concrete.get(route_path(scope))
            if methods is not None and scope["method"] not in methods:
                allow = ", ".join(sorted(methods)).encode()
                return await send_json(
                    send,
                    405,
                    {"detail": "Method Not Allowed", "code": "method_not_allowed"},
                    [(b"allow", allow)],
                )
        await self.app(scope, receive, send)


def route_of(scope: Scope) -> str:
    """The matched route's template (``/api/v1/studies/{study_id}``, ``/ui/{path}``), or
    ``<unmatched>``: never the request's own path, whose values can hold patient data."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        if type(route).__name__ == "Mount":
            return path.rstrip("/") + "/{path}"
        return path or "/"
    # a mounted app (static files) gets no route, but its prefix is added to root_path
    root, before = scope.get("root_path", ""), scope.get(_ROOT_BEFORE, "")
    if isinstance(root, str) and len(root) > len(before) and root.startswith(before):
        return root[len(before) :] + "/{path}"
    return "<unmatched>"


_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}


def method_of(scope: Scope) -> str:
    """The method when it is a standard one (a client may send any token as a method)."""
    method = scope.get("method", "")
    return method if method in _METHODS else "OTHER"


def request_id(scope: Scope) -> str:
    return scope.get(REQUEST_ID, "-")


class RequestObserver(Protocol):
    """Told of each request by the Guard, with the access line's labels (``server.metrics``)."""

    def begin(self) -> None: ...

    def end(self, method: str, route: str, status: int, seconds: float) -> None: ...


class Guard:
    """Access log (method, route template, status, time, request id — no bodies, no query
    strings, no path values) and a plain 500 for anything unexpected, logged without its
    message. The request id is ours (a client's ``X-Request-ID`` could carry anything).
    ``metrics``, when given, is told of each request with the same labels. The access line
    carries them as record attributes too (``method``, ``route``, ``status``, ``duration_ms``,
    ``request_id``), which the JSON log format writes as fields (``server.logs``)."""

    def __init__(
        self,
        app: ASGIApp,
        clock: Callable[[], float] = time.perf_counter,
        metrics: RequestObserver | None = None,
    ) -> None:
        self.app, self.clock, self.metrics = app, clock, metrics

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.metrics is None:
            return await self._guarded(scope, receive, send)
        start = self.clock()
        self.metrics.begin()
        try:
            await self._guarded(scope, receive, send)
        finally:
            self.metrics.end(
                method_of(scope), route_of(scope), scope.get(_STATUS, 0), self.clock() - start
            )

    async def _guarded(self, scope: Scope, receive, send) -> None:
        start, status = self.clock(), 0
        rid = scope[REQUEST_ID] = secrets.token_hex(8)
        scope[_ROOT_BEFORE] = scope.get("root_path", "")

        async def tracking_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = scope[_STATUS] = message["status"]
                message = {
                    **message,
                    "headers": [
                        *(h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"),
                        (b"x-request-id", rid.encode()),
                    ],
                }
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # broad: the outermost guard: answers 500 (logged)
            where = traceback.extract_tb(exc.__traceback__)[-1]
            log.error(
                "unhandled %s at %s:%d (%s) on %s %s rid=%s",
                type(exc).__name__,
                where.filename.rsplit("/", 1)[-1],
                where.lineno,
                where.name,
                method_of(scope),
                route_of(scope),
                rid,
                extra={"route": route_of(scope), "request_id": rid},
            )
            if status == 0:
                status = 500
                await send_json(
                    tracking_send,
                    500,
                    {"detail": "internal error; the request was not processed", "code": "internal"},
                )
        if scope.get(READ_TIMED_OUT):  # what the client got, not the route's late answer
            status = 408
        scope[_STATUS] = status
        method, route, ms = method_of(scope), route_of(scope), (self.clock() - start) * 1000
        access_log.info(
            "%s %s %d %.1fms rid=%s",
            method,
            route,
            status,
            ms,
            rid,
            extra={
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(ms, 1),
                "request_id": rid,
            },
        )
