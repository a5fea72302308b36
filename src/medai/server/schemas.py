"""Request and error schemas of the API: what the OpenAPI document promises is what the server
enforces (strict types: ``false`` is not a number; NaN/Infinity are refused; lengths match)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from medai.core import task_registry
from medai.core.text import MAX_TEXT_CHARS
from medai.server.inputs import StrictBody

# the imaging tasks of the task registry (a hospital's added task gets its routes too)
ImagingTask = Literal[tuple(task_registry.names("imaging"))]  # type: ignore[valid-type]
Language = Literal["en", "tr"]


class TriageRequest(StrictBody):
    text: str = Field(
        ...,
        min_length=1,
        max_length=MAX_TEXT_CHARS,
        description="The patient's complaint in Turkish (free text).",
        examples=["İki gündür kulağımda çınlama ve ağrı var, işitmem azaldı."],
    )
    top_k: int = Field(3, ge=1, le=15, description="How many departments to return.")
    min_confidence: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Abstain below this probability (default: the model card's).",
    )


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorOut(BaseModel):
    """Every 4xx/5xx body. ``detail`` never repeats more than a short excerpt of the input."""

    detail: str
    code: str = Field(
        ...,
        description="bad_request | invalid | unusable_image | "
        "image_refused | too_large | not_found | unavailable | "
        "overloaded | unauthenticated | forbidden | "
        "conflict | throttled | internal | "
        "method_not_allowed | image_too_large; on the "
        "platform also kiosk_quota_exhausted (429), "
        "kiosk_revoked and kiosk_unknown (401), "
        "weak_password and role_conflict (422), "
        "enrol_code_invalid (404), identity_conflict and "
        "last_admin (409), invalid_dicom_attribute (422; "
        "errors name the attribute), and the storage faults "
        "(503: storage_read_only, storage_full, "
        "storage_denied, storage_io_error, "
        "storage_unavailable, storage_missing, "
        "storage_undecryptable, record_undecryptable, "
        "database_busy, database_unavailable); "
        "request_timeout (408) from the server itself "
        "when a request is not received in time",
    )
    errors: list[FieldError] | None = None


ERROR_TEXT = {
    400: "Malformed request: a body that is not parseable, a bad Content-Length or Host",
    401: "Not signed in (no valid session cookie or bearer token)",
    403: "Signed in, but this role may not do this (or a missing CSRF token)",
    404: "Not found (an id beyond its range names nothing either)",
    409: "Conflict: the version named is no longer current, or already signed",
    413: "Request body too large (checked while streaming, before it is parsed)",
    415: "Unsupported media type",
    422: "Invalid input: a field (control characters included), an unusable file, or an "
    "image of the wrong kind",
    429: "Too many requests (failed logins, or the kiosk's daily quota); see Retry-After",
    503: "Unavailable: a model cannot be loaded, every inference slot is busy (see "
    "Retry-After), or the database or storage cannot be written",
}


def error_responses(*codes: int) -> dict[int | str, dict]:
    """OpenAPI entries for the error statuses a route can return (the kernel adds the ones
    any route can answer: ``server.contract``)."""
    return {c: {"model": ErrorOut, "description": ERROR_TEXT[c]} for c in codes}
