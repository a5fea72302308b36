"""One error shape (``ErrorOut``) for every failure, with short excerpts only.

A storage fault (``core.faults``: a read-only or full disk, a database that cannot write or
cannot be reached, a stored file gone from the disk) is answered here for every route alike:
503 with its ``code`` (``storage_read_only``, ``storage_full``, ``storage_missing``, ...) and
one log line saying which path, why, and which row ids the request named."""

from __future__ import annotations

import logging

from cryptography.fernet import InvalidToken
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from medai.core.errors import BY_STATUS, MedaiError
from medai.core.faults import StorageFault, classify
from medai.core.text import excerpt
from medai.server.middleware import concrete_methods, method_of, request_id, route_of, route_path

log = logging.getLogger("medai.server")
FAULT_RETRY_AFTER_S = 60
_FAULT_DETAIL = {
    "storage_read_only": "the server's storage is read-only",
    "storage_full": "the server's storage is full",
    "storage_denied": "the server may not write its storage",
    "storage_io_error": "the server's storage failed to read or write",
    "storage_unavailable": "the server's storage cannot be opened",
    "storage_missing": (
        "a stored file this request needs is missing from the server's "
        "storage (restore it from the backup of MEDAI_HOME/blobs)"
    ),
    "storage_undecryptable": (
        "a stored file cannot be decrypted with the configured keys "
        "(MEDAI_SECRET_KEYS or HOME/secret.key)"
    ),
    "record_undecryptable": (
        "a stored record (a complaint, a chat message, a patient name) "
        "cannot be decrypted with the configured keys (MEDAI_SECRET_KEYS "
        "or HOME/secret.key)"
    ),
    "database_busy": "the database is busy",
    "database_unavailable": "the database cannot be reached",
}


# a path id outside its bounds (``inputs.RowId``) can name no row: not found, not invalid
_OUT_OF_RANGE = ("less_than_equal", "greater_than_equal", "greater_than", "less_than")


class ApiError(MedaiError):
    """Raised by routes: status, a machine code (a key of ``core.errors.CODES``) and a human
    message (already short)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        headers: dict[str, str] | None = None,
        errors: list[dict] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers
        self.errors = errors  # field errors ({loc, msg, type}), e.g. why a password is weak

    def public_detail(self) -> str:
        return self.detail


def _body(detail: str, code: str, errors: list | None = None) -> dict:
    out: dict[str, object] = {"detail": excerpt(detail, 400), "code": code}
    if errors is not None:
        out["errors"] = errors
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "loc": [p if isinstance(p, int) else excerpt(str(p), 40) for p in e.get("loc", ())][
                    :8
                ],
                "msg": excerpt(str(e.get("msg", "")), 160),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()[:20]
        ]
        if any(e["loc"][:1] == ["path"] and e["type"] in _OUT_OF_RANGE for e in errors):
            return JSONResponse(_body("no such item (id out of range)", "not_found"), 404)
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p != "body") or "request"
        return JSONResponse(_body(f"{where}: {first['msg']}", "invalid", errors), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # every method some route serves at this path
            headers["Allow"] = ", ".join(allowed_methods(request))
        return JSONResponse(
            _body(str(exc.detail), BY_STATUS.get(exc.status_code, "error")),
            exc.status_code,
            headers=headers or None,
        )

    @app.exception_handler(MedaiError)
    async def medai_error(request: Request, exc: MedaiError) -> JSONResponse:
        """The one answer of every medai exception: its status, code, detail, headers and
        field errors; a storage fault as ``fault_response``; one with no status is no answer
        (the Guard's plain 500, or an OSError's storage fault)."""
        if isinstance(exc, StorageFault):
            return fault_response(request, exc)
        if exc.status is None:
            if isinstance(exc, OSError):
                return await os_error(request, exc)
            raise exc  # not an answer: the Guard's plain 500, logged by type and place
        return JSONResponse(
            _body(exc.public_detail(), exc.code, exc.errors), exc.status, headers=exc.headers
        )

    @app.exception_handler(InvalidToken)
    async def undecryptable(request: Request, _exc: InvalidToken) -> JSONResponse:
        # a record sealed under a key no longer configured (or altered): named, not a 500
        return fault_response(
            request, StorageFault("record_undecryptable", "a database record", "InvalidToken")
        )

    @app.exception_handler(OSError)
    async def os_error(request: Request, exc: OSError) -> JSONResponse:
        fault = classify(exc)
        if fault is None:
            raise exc  # not the disk: the Guard's plain 500, logged by type and place
        return fault_response(request, fault)


def fault_response(request: Request, fault: StorageFault) -> JSONResponse:
    """503 with the fault's code; the log names the path (or database) and the reason,
    never the request's content."""

    log.error(
        "storage fault: %s is %s (%s) on %s %s%s rid=%s",
        fault.where,
        fault.reason,
        fault.cause or "-",
        method_of(request.scope),
        route_of(request.scope),
        _row_ids(request),
        request_id(request.scope),
    )
    detail = _FAULT_DETAIL.get(fault.code, "the server's storage failed")
    return JSONResponse(
        _body(f"{detail}; the request was not processed", fault.code),
        503,
        headers={"Retry-After": str(FAULT_RETRY_AFTER_S)},
    )


def _row_ids(request: Request) -> str:
    """The row ids in the path (`` study_id=7``), so the operator knows which study's file is
    gone; never another path value (a user name is a person's)."""
    ids = [
        f"{k}={v}"
        for k, v in (request.scope.get("path_params") or {}).items()
        if k.endswith("_id") and str(v).isdigit() and len(str(v)) <= 10
    ]
    return (" " + " ".join(ids)) if ids else ""


def allowed_methods(request: Request) -> list[str]:
    """The methods of all routes matching the request's path (Starlette's 405 names only the
    first matching route's); a parameterless path's own routes alone, as OpenAPI matches it
    (``middleware.ConcretePaths``: ``/users/pending`` is not a ``/users/{username}``)."""
    from starlette.routing import Match

    routes = request.app.router.routes
    own = concrete_methods(routes).get(route_path(request.scope))
    found: list[str] = []
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        probe = {**request.scope, "method": method}
        if own is not None:
            if method in own:
                found.append(method)
        elif any(r.matches(probe)[0] == Match.FULL for r in routes):
            found.append(method)
    return found
