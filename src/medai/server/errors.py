"""One error shape (``ErrorOut``) for every failure, with short excerpts only."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from medai.core.text import excerpt
from medai.services.runtime import Overloaded

CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
         409: "conflict", 429: "throttled", 405: "method_not_allowed", 413: "too_large",
         415: "unsupported_media_type", 422: "invalid", 503: "unavailable"}


class ApiError(Exception):
    """Raised by routes: status, a machine code and a human message (already short)."""

    def __init__(self, status: int, code: str, detail: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


def _body(detail: str, code: str, errors: list | None = None) -> dict:
    out = {"detail": excerpt(detail, 400), "code": code}
    if errors is not None:
        out["errors"] = errors
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": [p if isinstance(p, int) else excerpt(str(p), 40)
                           for p in e.get("loc", ())][:8],
                   "msg": excerpt(str(e.get("msg", "")), 160), "type": str(e.get("type", ""))}
                  for e in exc.errors()[:20]]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p != "body") or "request"
        return JSONResponse(_body(f"{where}: {first['msg']}", "invalid", errors), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(_body(str(exc.detail), CODES.get(exc.status_code, "error")),
                            exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(_body(exc.detail, exc.code), exc.status, headers=exc.headers)

    @app.exception_handler(Overloaded)
    async def overloaded(_request: Request, exc: Overloaded) -> JSONResponse:
        return JSONResponse(_body(str(exc), "overloaded"), 503,
                            headers={"Retry-After": str(exc.retry_after_s)})
