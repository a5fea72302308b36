"""Input rules every route shares, checked before anything reaches a database.

- Row ids are bounded integers: SQLite's INTEGER is 64-bit and PostgreSQL's 32-bit, so an id
  beyond 2**31 - 1 can name no row on either (it used to overflow the driver: a 500). A path id
  out of range answers 404 (see ``errors.install``); a body or query number has its own bounds.
- Text never carries NUL or other control characters (PostgreSQL refuses NUL in text with a
  500; a control character in a user name or a report is never what a person typed). Tab, line
  feed and carriage return stay allowed in free text. The OpenAPI document says so too: every
  such string carries ``NO_CONTROL_PATTERN`` (request bodies here, path and query values in
  ``server.contract``), so a client generated from it never sends what is refused.
- A date-time is RFC 3339 with its offset (``2026-05-01T08:00:00Z``), as the schema's
  ``format: date-time`` says: ``0.5`` was read as a Unix time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, model_validator
from pydantic_core import core_schema

from medai.server.middleware import send_json

MAX_ID = 2**31 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ID, description="a row id (1 … 2³¹−1)")]

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
CONTROL_MESSAGE = "control characters (such as NUL) are not allowed"
# the same characters, as a JSON Schema (ECMA-262) pattern a whole value must match
NO_CONTROL_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f]*$"


def has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _clean(value: Any) -> Any:
    """``value`` with no control character in any string (else ``ValueError``), and a whole
    number sent as ``3.0`` read as ``3``: JSON Schema's ``integer`` admits it, and strict
    validation would refuse what the document allows (a float field takes the int as it is)."""
    if isinstance(value, str):
        if has_control(value):
            raise ValueError(CONTROL_MESSAGE)
    elif isinstance(value, float) and value.is_integer():
        return int(value)
    elif isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    elif isinstance(value, list | tuple):
        return type(value)(_clean(v) for v in value)
    return value


def _clean_text(value: str | None) -> str | None:
    if value is not None and has_control(value):
        raise ValueError(CONTROL_MESSAGE)
    return value


def no_control_schema(schema: Any) -> None:
    """Give every plain string in ``schema`` (properties, items, map values and keys, the arms
    of ``anyOf``) ``NO_CONTROL_PATTERN``, in place. A string with its own ``pattern``, an enum,
    a format or a file keeps what it has (each already excludes control characters or is no
    text); a ``$ref`` is its own model's to describe."""
    if isinstance(schema, list):
        for item in schema:
            no_control_schema(item)
        return
    if not isinstance(schema, dict) or "$ref" in schema:
        return
    if schema.get("type") == "string" and not any(
        k in schema for k in ("pattern", "enum", "const", "format", "contentMediaType")
    ):
        schema["pattern"] = NO_CONTROL_PATTERN
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        no_control_schema(schema.get(key))
    for key in ("items", "additionalProperties"):
        no_control_schema(schema.get(key))
    for value in (schema.get("properties") or {}).values():
        no_control_schema(value)
    if isinstance(schema.get("additionalProperties"), dict):  # a map's keys are text too
        names = schema.setdefault("propertyNames", {})
        if not any(k in names for k in ("pattern", "enum", "const", "format")):
            names["pattern"] = NO_CONTROL_PATTERN


class _CleanText:
    """``CleanText``: refuses control characters, and its schema says so."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        return core_schema.no_info_after_validator_function(_clean_text, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        out = handler(schema)
        no_control_schema(out)
        return out


# a form or query field of free text (JSON bodies use ``StrictBody``)
CleanText = _CleanText()

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: Any) -> Any:
    if isinstance(value, str) and not _RFC3339.fullmatch(value):
        raise ValueError("not an RFC 3339 date-time with its offset, such as 2026-05-01T08:00:00Z")
    return value


def _naive_utc(value: datetime) -> datetime:
    """As the database stores times: naive UTC. A bound within a day of year 1 or 9999 that
    UTC cannot hold is the nearest one it can (it bounds nothing either way)."""
    if value.tzinfo is None:
        return value
    try:
        return value.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        return datetime.min if value.year == 1 else datetime.max


# a query's date-time bound (``since``, ``until``): RFC 3339 in, naive UTC out
UtcDateTime = Annotated[datetime, BeforeValidator(_rfc3339), AfterValidator(_naive_utc)]


def _no_control_in_schema(schema: dict[str, Any], _cls: Any = None) -> None:
    no_control_schema(schema)


class StrictBody(BaseModel):
    """Every request body: strict types, no unknown fields, no control characters (and its
    schema says so: ``NO_CONTROL_PATTERN`` on every string)."""

    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra=_no_control_in_schema)

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
                return await send_json(
                    send, 422, {"detail": f"URL: {CONTROL_MESSAGE}", "code": "invalid"}
                )
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
                await send_json(send, 400, {"detail": "invalid Host header", "code": "bad_request"})

        await self.check(scope, receive, refusing_send)
