"""Input rules every route shares, checked before anything reaches a database.

- Row ids are bounded integers: SQLite's INTEGER is 64-bit and PostgreSQL's 32-bit, so an id
  beyond 2**31 - 1 can name no row on either (it used to overflow the driver: a 500). A path id
  out of range answers 404 (see ``errors.install``); a body or query number has its own bounds.
- Text never carries NUL or other control characters (PostgreSQL refuses NUL in text with a
  500; a control character in a user name or a report is never what a person typed). Tab, line
  feed and carriage return stay allowed in free text.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator

MAX_ID = 2**31 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ID, description="a row id (1 … 2³¹−1)")]

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
CONTROL_MESSAGE = "control characters (such as NUL) are not allowed"


def has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        if has_control(value):
            raise ValueError(CONTROL_MESSAGE)
    elif isinstance(value, dict):
        for k, v in value.items():
            _clean(k)
            _clean(v)
    elif isinstance(value, list | tuple):
        for v in value:
            _clean(v)
    return value


def _clean_text(value: str | None) -> str | None:
    if value is not None and has_control(value):
        raise ValueError(CONTROL_MESSAGE)
    return value


# a form or query field of free text (JSON bodies use ``StrictBody``)
CleanText = AfterValidator(_clean_text)


class StrictBody(BaseModel):
    """Every request body: strict types, no unknown fields, no control characters."""

    model_config = ConfigDict(strict=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_control_characters(cls, data: Any) -> Any:
        return _clean(data)


class UrlGuard:
    """ASGI middleware: a path or query string holding a control character is refused with
    422 before routing (covers path values such as user names and every query filter)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            from urllib.parse import unquote

            query = unquote(scope.get("query_string", b"").decode("latin-1"))
            if has_control(scope.get("path", "")) or has_control(query):
                from medai.server.middleware import send_json

                return await send_json(send, 422, {"detail": f"URL: {CONTROL_MESSAGE}",
                                                   "code": "invalid"})
        await self.app(scope, receive, send)


class HostCheck:
    """Starlette's trusted-host check, answering in the one error shape (its own refusal is
    a bare text/plain 400)."""

    def __init__(self, app, allowed_hosts: list[str]) -> None:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        async def passed(scope, receive, send) -> None:
            scope["medai.host_ok"] = True
            await app(scope, receive, send)

        self.check = TrustedHostMiddleware(passed, allowed_hosts=allowed_hosts)

    async def __call__(self, scope, receive, send) -> None:
        async def refusing_send(message) -> None:
            if scope.get("medai.host_ok"):
                return await send(message)
            if message["type"] == "http.response.start":
                from medai.server.middleware import send_json

                await send_json(send, 400, {"detail": "invalid Host header",
                                            "code": "bad_request"})

        await self.check(scope, receive, refusing_send)
