"""The OpenAPI document says exactly what the server sends.

FastAPI documents its own 422 body (``HTTPValidationError``); this server sends ``ErrorOut``
(``{detail, code, errors}``) for every error. The kernel answers some statuses on any route
before a route runs — 400 for a malformed body or a bad Host, 413 for a body over the limit,
503 when the database or storage cannot be written — so every operation lists them. A path
id out of its bounds answers 404, so an operation with a bounded path id lists 404.

What the kernel refuses before any route is also in the document: a path or query value with a
control character (``inputs.UrlGuard``) is excluded by every string parameter's ``pattern``;
an uploaded file is a PNG, a JPEG or a DICOM file (``encoding``), as the routes say."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from medai.server.inputs import no_control_schema
from medai.server.schemas import ERROR_TEXT

ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
WITH_BODY = ("post", "put", "patch")
UPLOAD_TYPES = "image/png, image/jpeg, application/dicom"


def _error(status: int) -> dict[str, Any]:
    return {
        "description": ERROR_TEXT[status],
        "content": {"application/json": {"schema": ERROR_REF}},
    }


def _describe(op: dict[str, Any], method: str) -> None:
    responses = op.setdefault("responses", {})
    statuses = [400, 503]
    if method in WITH_BODY:
        statuses += [413, 422]
    if op.get("parameters"):
        statuses.append(422)
    if any(
        p.get("in") == "path" and p.get("schema", {}).get("maximum") is not None
        for p in op.get("parameters", ())
    ):
        statuses.append(404)
    for status in statuses:
        responses.setdefault(str(status), _error(status))
    for status, response in responses.items():
        if status.startswith(("4", "5")):  # FastAPI's HTTPValidationError → ErrorOut
            # a route's own error body (STOW-RS's 409 in DICOM JSON) stays what it says
            own = {
                k: v for k, v in (response.get("content") or {}).items() if k != "application/json"
            }
            response["content"] = own or {"application/json": {"schema": ERROR_REF}}
    for parameter in op.get("parameters", ()):
        if parameter.get("in") in ("path", "query"):  # UrlGuard refuses control characters
            no_control_schema(parameter.get("schema"))


def _uploads(spec: dict[str, Any]) -> None:
    """A multipart body's file is an image (PNG, JPEG, DICOM): its part's media types."""
    schemas = spec.get("components", {}).get("schemas", {})
    for path_item in spec.get("paths", {}).values():
        for op in path_item.values():
            form = op.get("requestBody", {}).get("content", {}).get("multipart/form-data")
            if not form:
                continue
            ref = form.get("schema", {}).get("$ref", "")
            body = schemas.get(ref.rsplit("/", 1)[-1], form.get("schema", {}))
            for name, prop in body.get("properties", {}).items():
                arms = prop.get("anyOf", [prop])
                if any(a.get("contentMediaType") == "application/octet-stream" for a in arms):
                    form.setdefault("encoding", {}).setdefault(name, {"contentType": UPLOAD_TYPES})


def install(app: FastAPI) -> None:
    """Replace ``app.openapi`` with the corrected, cached document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            for path_item in spec.get("paths", {}).values():
                for method, op in path_item.items():
                    _describe(op, method)
            _uploads(spec)
            schemas = spec.get("components", {}).get("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's way to serve a custom schema
