"""Request and error schemas of the API: what the OpenAPI document promises is what the server
enforces (strict types: ``false`` is not a number; NaN/Infinity are refused; lengths match)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from medai.core import task_registry
from medai.core.errors import codes_doc
from medai.core.text import MAX_TEXT_CHARS
from medai.server.inputs import StrictBody


def _expected(names: list[str]) -> str:
    """The names as a Literal's error lists them (``'cxr' or 'mri'``)."""
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _imaging_task(value: Any) -> str:
    """An imaging task of the registry as it is when the request comes (a task registered
    after this module was imported is served too), refused as a Literal refuses."""
    names = task_registry.names("imaging")
    if isinstance(value, str) and value in names:
        return value
    raise PydanticCustomError(
        "literal_error", "Input should be {expected}", {"expected": _expected(names)}
    )


# the imaging tasks of the task registry (a hospital's added task gets its routes too): the
# document lists those the entry points registered (an enum, as a Literal would); a request is
# checked against the registry as it is then
ImagingTask = Annotated[
    str,
    PlainValidator(_imaging_task),
    WithJsonSchema({"enum": task_registry.names("imaging"), "type": "string"}),
]
# the imaging task of a form or command that names none (``Task.default``)
DEFAULT_IMAGING_TASK: str = task_registry.default_task("imaging").name
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
    code: str = Field(..., description=codes_doc())  # the table: ``core.errors.CODES``
    errors: list[FieldError] | None = None


ERROR_TEXT = {
    400: "Malformed request: a body that is not parseable, a bad Content-Length or Host",
    401: "Not signed in (no valid session cookie or bearer token)",
    403: "Signed in, but this role may not do this (or a missing CSRF token)",
    404: "Not found (an id beyond its range names nothing either)",
    406: "Not acceptable: the Accept header takes no media type the object is stored in",
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
