"""The outbox's destination schema: where AI results and signed reports are sent (a PACS over
DICOM or DICOMweb, a FHIR server, an HL7 v2 receiver), parsed from the one-destination
variables and from ``MEDAI_DESTINATIONS_FILE`` (YAML or JSON). One config model per kind, told
apart by the ``kind`` discriminator (the union ``Destination``); what a kind does (how it
builds and sends, what it retries) is its module in ``platform.delivery.destinations``.
``medai.settings`` imports this module; it imports nothing of medai."""

from __future__ import annotations

import threading
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

AE_TITLE_CHARS = "letters, digits, space and the printable ASCII signs except '\\'"


def check_ae_title(value: str) -> str:
    """A DICOM AE title (PS3.5 AE: 1–16 characters, leading and trailing spaces not
    significant); a wrong one is refused with what is allowed."""
    title = str(value).strip()
    if not 1 <= len(title) <= 16 or any(not (32 <= ord(c) < 127) or c == "\\" for c in title):
        raise ValueError(f"AE title {value!r} is not valid: 1 to 16 characters, {AE_TITLE_CHARS}")
    return title


# --- destinations of the outbox ---------------------------------------------------------------

EVENTS: tuple[Literal["analysed", "signed"], ...] = ("analysed", "signed")
"""What can be sent: ``analysed`` (the AI findings SR and heatmap, a preliminary FHIR report)
and ``signed`` (each signed version: the report SR, a final or amended FHIR report, an HL7
ORU^R01)."""


class _Destination(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}$",
        description="a short unique name (lower-case letters, digits, . _ -)",
    )
    events: tuple[Literal["analysed", "signed"], ...] = EVENTS
    timeout_s: float = Field(default=30.0, gt=0, le=600)

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(cls.model_fields))
            if unknown:
                raise ValueError(
                    f"unknown field(s) {', '.join(map(repr, unknown))} for a "
                    f"{data.get('kind', '?')} destination; valid: "
                    f"{', '.join(cls.model_fields)}"
                )
        return data

    @property
    def where(self) -> str:
        """Where it is, for logs and the admin page (never a password)."""
        raise NotImplementedError


class DicomDestination(_Destination):
    """A PACS over DICOM C-STORE."""

    kind: Literal["dicom"]
    ae_title: str
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(ge=1, le=65535)
    calling_ae: str = "MEDAI"

    @field_validator("ae_title", "calling_ae")
    @classmethod
    def _ae(cls, value: str) -> str:
        return check_ae_title(value)

    @property
    def where(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


class _UrlDestination(_Destination):
    """A destination reached over HTTP(S) at ``url`` (shown without credentials)."""

    url: str

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_http_url(value)

    @property
    def where(self) -> str:
        return public_url(self.url)


class DicomWebDestination(_UrlDestination):
    """A PACS over DICOMweb STOW-RS (its service root)."""

    kind: Literal["dicomweb"]


class FhirDestination(_UrlDestination):
    """A FHIR R4 server: each report as a transaction of PUTs with stable ids."""

    kind: Literal["fhir"]
    id_prefix: str = Field(
        default="medai-",
        pattern=r"^[A-Za-z0-9.-]{0,20}$",
        description="put before every resource id medai sends",
    )
    token_env: str | None = Field(
        default=None,
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="name of the environment variable holding a bearer token",
    )


class Hl7Destination(_Destination):
    """An HL7 v2 receiver (HIS, interface engine) over MLLP."""

    kind: Literal["hl7"]
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(ge=1, le=65535)
    events: tuple[Literal["analysed", "signed"], ...] = ("signed",)
    sending_application: str = Field(default="MEDAI", max_length=40)
    sending_facility: str = Field(default="", max_length=40)
    receiving_application: str = Field(default="", max_length=40)
    receiving_facility: str = Field(default="", max_length=40)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


Destination = Annotated[
    DicomDestination | DicomWebDestination | FhirDestination | Hl7Destination,
    Field(discriminator="kind"),
]
DESTINATION_KINDS = tuple(
    get_args(config.model_fields["kind"].annotation)[0]
    for config in get_args(get_args(Destination)[0])
)
"""The built-in kinds, as the union's discriminator knows them (each has its sender in
``platform.delivery.destinations``); a kind a hospital's package adds comes through
``ENTRY_POINT_GROUP``."""

ENTRY_POINT_GROUP = "medai.destinations"
"""The entry-point group of destination kinds from outside medai: each entry point is a
callable run once, which registers its kinds with ``platform.delivery.destinations.register``
(that registers each kind's config model here, ``register_config``), as ``medai.tasks`` does
for tasks. A destinations file naming a kind medai does not know runs them first."""

_CONFIGS: dict[str, type[BaseModel]] = {
    get_args(config.model_fields["kind"].annotation)[0]: config
    for config in get_args(get_args(Destination)[0])
}
_LOCK = threading.RLock()
_discovered = False


def register_config(model: type[BaseModel]) -> None:
    """Make a kind's destinations configurable: ``model`` is its config (a pydantic model with
    ``name``, ``events``, ``timeout_s`` and a ``kind`` literal naming the kind, and a ``where``
    for logs); a file entry of that kind is parsed by it."""
    field = model.model_fields.get("kind")
    kinds = get_args(field.annotation) if field is not None else ()
    if len(kinds) != 1 or not isinstance(kinds[0], str):
        raise ValueError(f"{model.__name__}: its 'kind' field must be one Literal string")
    missing = [f for f in ("name", "events", "timeout_s") if f not in model.model_fields]
    if missing:
        raise ValueError(f"{model.__name__}: missing destination field(s) {', '.join(missing)}")
    with _LOCK:
        _CONFIGS[kinds[0]] = model


def unregister_config(kind: str) -> None:
    """Forget a kind's config (a test's); a built-in kind stays."""
    with _LOCK:
        if kind not in DESTINATION_KINDS:
            _CONFIGS.pop(kind, None)


def discover() -> None:
    """Run every ``medai.destinations`` entry point once (each registers its kinds)."""
    global _discovered
    with _LOCK:
        if _discovered:
            return
        _discovered = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            target = ep.load()
            if callable(target):
                target()


def config_kinds() -> tuple[str, ...]:
    """Every kind a destination may name: the built-in ones and those registered."""
    with _LOCK:
        return tuple(sorted(_CONFIGS))


def parse_destination(data: Any) -> BaseModel:
    """One destination entry, parsed by the config model of its ``kind`` (a kind no model is
    registered for runs the entry points first); a wrong kind lists the valid ones."""
    if not isinstance(data, dict):
        raise ValueError("a destination is a mapping of its fields")
    kind = data.get("kind")
    if kind is None:
        raise ValueError(f"kind: missing (kind: {', '.join(config_kinds())})")
    if str(kind) not in _CONFIGS:
        discover()
    model = _CONFIGS.get(str(kind))
    if model is None:
        raise ValueError(f"kind: unknown kind {kind!r}; valid: {', '.join(config_kinds())}")
    return model.model_validate(data)


class _DestinationsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    destinations: list[Any]

    @field_validator("destinations", mode="before")
    @classmethod
    def _each(cls, value: Any) -> Any:
        if not isinstance(value, list):
            raise ValueError("a list of destinations")
        out, problems = [], []
        for i, entry in enumerate(value):
            try:
                out.append(parse_destination(entry))
            except ValidationError as exc:
                kind = entry.get("kind") if isinstance(entry, dict) else "?"
                problems += [
                    ".".join(["destinations", str(i), str(kind), *map(str, e["loc"])])
                    + ": "
                    + e["msg"].removeprefix("Value error, ")
                    for e in exc.errors(include_url=False)
                ]
            except ValueError as exc:
                problems.append(f"destinations.{i}.{exc}")
        if problems:
            raise ValueError("; ".join(problems))
        return out


def parse_host_port(value: str, what: str) -> tuple[str, int]:
    host, sep, port = str(value).strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{what} {value!r} is not HOST:PORT (a port 1-65535)")
    return host, int(port)


def parse_dicom_address(value: str) -> tuple[str, str, int]:
    """``AE@HOST:PORT`` → (AE title, host, port)."""
    ae, sep, rest = str(value).strip().partition("@")
    if not sep:
        raise ValueError(f"MEDAI_DICOM_SEND_TO {value!r} is not AE@HOST:PORT")
    host, port = parse_host_port(rest, "MEDAI_DICOM_SEND_TO")
    return check_ae_title(ae), host, port


def check_http_url(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(str(value).strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return str(value).strip().rstrip("/")


def public_url(url: str) -> str:
    """A URL without its user name and password (for logs and the admin page)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def load_destinations(path: Path) -> list[Any]:
    """The destinations of a YAML or JSON file (``destinations: [...]``); every mistake is
    named with where it is and what is valid."""
    import json

    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(
            f"destinations file {path}: cannot be read ({exc.strerror or type(exc).__name__})"
        ) from None
    try:
        data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ValueError(
            f"destinations file {path}: not valid "
            f"{'JSON' if str(path).endswith('.json') else 'YAML'} "
            f"({type(exc).__name__})"
        ) from None
    if isinstance(data, list):
        data = {"destinations": data}
    try:
        return _DestinationsFile.model_validate(data or {"destinations": []}).destinations
    except ValidationError as exc:
        problems = "; ".join(
            e["msg"].removeprefix("Value error, ")
            if e["loc"] == ("destinations",)
            else f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise ValueError(f"destinations file {path}: {problems}") from None
