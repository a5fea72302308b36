"""One settings object for the whole platform, read from ``MEDAI_*`` environment variables.

The settings come in typed groups, one model each (``Settings.storage``, ``.dicom``,
``.outbox``, …): a part of the platform is handed the group it needs, not the whole. A field's
variable is ``MEDAI_<FIELD>`` whatever its group (``DicomSettings.dicom_port`` is
``MEDAI_DICOM_PORT``), so a group is a way to pass settings around, never part of a name an
operator types."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from medai.destinations_config import (
    Destination,
    DicomDestination,
    DicomWebDestination,
    FhirDestination,
    Hl7Destination,
    check_ae_title,
    check_http_url,
    load_destinations,
    parse_dicom_address,
    parse_host_port,
)

ANY_CALLER = "*"
"""In ``MEDAI_DICOM_ALLOW``: any calling AE title may associate (an explicit choice; the empty
list, a fresh install's, admits none)."""


def check_allow_list(titles: list[str] | tuple[str, ...]) -> list[str]:
    """The calling AE titles a DICOM node admits: valid AE titles, or ``*`` alone (any caller).
    Empty stays empty: the node then refuses every association, saying why."""
    out = [ANY_CALLER if str(t).strip() == ANY_CALLER else check_ae_title(t) for t in titles]
    if ANY_CALLER in out and len(out) > 1:
        raise ValueError(
            "the calling AE title '*' (any caller) stands alone: list the titles, or '*' only"
        )
    return out


def check_hl7_senders(names: list[str] | tuple[str, ...]) -> list[str]:
    """Senders an HL7 listener takes: ``APP`` or ``APP^FACILITY`` (MSH-3, MSH-4), or ``*``
    alone (any sender). Empty stays empty: every message is then refused, the log says why."""
    out = []
    for raw in names:
        name = str(raw).strip()
        if not name or len(name) > 96 or any(c in name for c in "|~\\&\r\n"):
            raise ValueError(
                "an HL7 sender is APP or APP^FACILITY (MSH-3, MSH-4; at most 96 characters, "
                f"none of the separators | ~ \\ &), or '*' alone: got {name[:40]!r}"
            )
        out.append(name)
    if ANY_CALLER in out and len(out) > 1:
        raise ValueError("the HL7 sender '*' (any sender) stands alone: list the senders, or '*'")
    return out


def optional_http_url(value: str | None) -> str | None:
    """An http(s) URL setting: checked when given, an empty value is no URL."""
    if value:
        check_http_url(value)
    return value or None


class SettingsGroup(BaseSettings):
    """One group of settings, read from its fields' own ``MEDAI_<FIELD>`` variables (and the
    ``.env`` file): the prefix is the same for every group, so a field keeps its variable's
    name whichever group holds it."""

    # no input value in an error: a wrong setting must not print a secret beside it
    model_config = SettingsConfigDict(
        env_prefix="MEDAI_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        """``MEDAI_<NAME>_FILE``: the secret is read from a file (a Kubernetes or podman
        secret, a systemd credential), so it is in no environment variable, process listing
        or image. Setting both the value and its file is refused: which one wins would be a
        guess."""
        if not isinstance(data, dict):
            return data
        for name in SECRET_FILES:
            if name not in cls.model_fields:
                continue
            path = data.get(f"{name}_file")
            if path in (None, ""):
                continue
            if data.get(name) not in (None, "", []):
                raise ValueError(
                    f"both MEDAI_{name.upper()} and MEDAI_{name.upper()}_FILE are "
                    "set: keep one (the file keeps the secret out of the "
                    "environment)"
                )
            data = {**data, name: read_secret_file(name, Path(path))}
        return data


class StorageSettings(SettingsGroup):
    """Where medai keeps its files, database, queue and keys."""

    home: Path = Field(
        default=Path.home() / ".medai",
        description="medai's working folder: the default parent of models_dir and cache_dir",
    )
    models_dir: Path | None = Field(
        default=None, description="where user models are registered (default HOME/models)"
    )
    cache_dir: Path | None = Field(
        default=None,
        description="embedding cache and other recomputable files (default HOME/cache)",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL (default: the SQLite file HOME/medai.db); "
        "e.g. postgresql+psycopg://user@host/medai",
    )
    database_url_file: Path | None = Field(
        default=None, description="read MEDAI_DATABASE_URL from this file (a mounted secret)"
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker (redis://… or amqp://…): studies are analysed "
        "by `medai worker` processes; unset: by the pool inside serve",
    )
    broker_url_file: Path | None = Field(
        default=None, description="read MEDAI_BROKER_URL from this file"
    )
    auto_migrate: bool = Field(
        default=True,
        description="serve, worker and dicom listen migrate the database to "
        "this release's schema on start; false (deployments with "
        "replicas): only `medai migrate` does, and they exit 2 "
        "naming the revisions on a database not at this release's",
    )
    secret_keys: list[str] = Field(
        default_factory=list,
        description="Fernet keys (JSON list, newest first) encrypting chat messages and "
        "complaints at rest; default: a key generated once in HOME/secret.key, on a new "
        "site only (a site whose data is sealed and whose keys are missing refuses to "
        "start: medai keys ids)",
    )
    secret_keys_file: Path | None = Field(
        default=None,
        description="read MEDAI_SECRET_KEYS from this file: one key per line, "
        "newest first (blank lines and # comments ignored)",
    )

    @model_validator(mode="after")
    def _under_home(self) -> StorageSettings:
        """Folders not set on their own live under ``home`` (MEDAI_HOME moves them all)."""
        if self.models_dir is None:
            self.models_dir = self.home / "models"
        if self.cache_dir is None:
            self.cache_dir = self.home / "cache"
        return self


class ServingSettings(SettingsGroup):
    """The HTTP server, its workers and the model calls they make."""

    host: str = Field(default="127.0.0.1", description="bind address of `medai serve`")
    port: int = Field(default=8000, description="port of `medai serve`")
    workers: int = Field(default=1, ge=1, description="server worker processes")
    inference_concurrency: int | None = Field(
        default=None, ge=1, description="model calls at once per worker (default: cores / workers)"
    )
    inference_queue: int = Field(
        default=32, ge=0, description="requests that may wait for a model slot"
    )
    inference_timeout_s: float = Field(
        default=15.0, gt=0, description="longest wait for a slot before a 503"
    )
    imaging_runtime: str = Field(default="auto", description="auto | onnx | torch")
    e5_micro_batch: int = Field(
        default=1,
        ge=1,
        le=256,
        description=(
            "the most complaint windows embedded in one e5 call when requests arrive together "
            "(1: each on its own — the default: on 2 CPU cores e5 costs the same per text in a "
            "batch, and the hand-over cost 8-14 % of throughput; docs/benchmarks.md)"
        ),
    )
    http_read_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="longest a client may take to send a request's headers, and the grace for "
        "its body; slower: 408 and the connection closed (server.http_timeouts)",
    )
    http_min_body_rate: int = Field(
        default=16384,
        ge=1,
        description="bytes per second a request body must keep after that grace (each "
        "such many bytes received extend its deadline by a second)",
    )
    trusted_hosts: list[str] = Field(
        default=["localhost", "127.0.0.1"],
        description="Host headers the server answers (JSON list; '*' allows any)",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description='addresses or networks (JSON list, e.g. ["10.0.0.5"]) of the reverse '
        "proxies whose X-Forwarded-For and X-Forwarded-Proto are believed; empty "
        "(the default): none, the client is the connection's own address (quotas "
        "and sign-in throttles count it)",
    )
    job_threads: int = Field(
        default=1, ge=0, description="analysis threads inside serve (0: none in this process)"
    )
    job_lease_s: float = Field(
        default=60.0,
        gt=0,
        description="a running job whose worker has not renewed its "
        "lease for this long is taken over by another",
    )
    study_stable_s: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description="a study a modality sends (DICOM) is analysed once no instance of it "
        "has arrived for this long (seconds; like Orthanc's StableAge): a series is read "
        "whole, never from its first slice; an upload is analysed at once",
    )
    model_watch_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="how often each serve process, Celery worker and "
        "DICOM node looks for a newly promoted or rolled "
        "back model in the registry (seconds)",
    )
    viewer_dir: Path | None = Field(
        default=None,
        description="the diagnostic viewer's files (OHIF's prebuilt dist, installed by `make "
        "viewer-deps`), served under /viewer; unset: the checkout's .viewer/ohif/dist",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        return [check_proxy(v) for v in value]


class ModelSettings(SettingsGroup):
    """Which models serve, triage's red flags, and model validation."""

    models: Annotated[dict[str, Path], NoDecode] = Field(
        default_factory=dict,
        description="the model folder of each task, TASK=DIR,TASK2=DIR2 or a JSON object "
        "(e.g. triage=/models/my-triage,cxr=/models/my-cxr); a task not named serves its "
        "bundled default (`medai serve --model TASK=DIR` adds to it)",
    )
    triage_min_confidence: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="abstain below this top probability (default: the model card's value)",
    )
    red_flag_rules: Path | None = Field(
        default=None,
        description="a sealed red-flag engine folder (medai triage "
        "seal-red-flags; default, or when empty: the bundled engine)",
    )
    red_flag_embeddings: bool = Field(
        default=True, description="run the e5 nearest-exemplar red-flag detector beside the rules"
    )
    red_flag_classifier: bool = Field(
        default=True,
        description="run the learned red-flag classifier (RED_FLAG_RULES/classifier "
        "or the bundled one) beside the rules",
    )
    site_set_fraction: float = Field(
        default=0.3,
        gt=0,
        lt=1,
        description=(
            "the share of each task's signed studies held out for site validation (never used "
            "for retraining)"
        ),
    )
    validation_margin: float = Field(
        default=0.05,
        ge=0,
        le=0.5,
        description=(
            "non-inferiority margin: a candidate's macro AUROC and sensitivity may be at most "
            "this much below the active model's (95 % lower bound of the paired difference)"
        ),
    )

    @field_validator("models", mode="before")
    @classmethod
    def _models(cls, value: Any) -> Any:
        return parse_models(value)

    @field_validator("red_flag_rules", mode="before")
    @classmethod
    def _no_folder(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value


class LlmSettings(SettingsGroup):
    """The knowledge base and the LLM that write report drafts."""

    knowledge_dir: Path | None = Field(
        default=None, description="extra knowledge base (from `medai kb ingest`) for drafts"
    )
    llm_backend: str = Field(
        default="template", description="template | openai | gemini | llamacpp"
    )
    llm_url: str | None = Field(default=None, description="OpenAI-compatible base URL")
    llm_model: str | None = Field(
        default=None, description="model name asked of the OpenAI-compatible endpoint"
    )
    llm_api_key: str | None = Field(
        default=None, description="bearer key of the OpenAI-compatible endpoint (if it needs one)"
    )
    llm_api_key_file: Path | None = Field(
        default=None, description="read MEDAI_LLM_API_KEY from this file"
    )
    gemini_api_key: str | None = Field(
        default=None, description="enables the Gemini backend (text leaves the hospital)"
    )
    gemini_api_key_file: Path | None = Field(
        default=None, description="read MEDAI_GEMINI_API_KEY from this file"
    )
    llm_gguf: str | None = Field(default=None, description="local GGUF file for llamacpp")
    llm_timeout_s: float = Field(
        default=60.0,
        description="seconds one LLM request may take (on failure: the template draft)",
    )


class AuthSettings(SettingsGroup):
    """Sessions, tokens, login throttling and password hashing."""

    session_hours: float = Field(default=12.0, gt=0, description="session cookie lifetime")
    token_days: float = Field(default=90.0, gt=0, description="bearer token lifetime")
    secure_cookies: bool = Field(default=False, description="mark cookies Secure (set behind TLS)")
    login_max_failures: int = Field(
        default=5, ge=1, description="failed logins per user or client before 429"
    )
    login_window_s: float = Field(default=900.0, gt=0, description="throttling window")
    password_hash: Literal["rfc9106-low-memory", "owasp-minimum", "insecure-fast"] = Field(
        default="rfc9106-low-memory",
        description="argon2id cost of stored passwords (platform.access.passwords.HASH_PROFILES); "
        "a hash is made stronger, never weaker, at its user's next login. "
        "insecure-fast: test suites only, with password_hash_insecure_ok",
    )
    password_hash_insecure_ok: bool = Field(
        default=False,
        description="a second, explicit yes for password_hash=insecure-fast "
        "(test suites): without it that profile is refused at start",
    )

    @model_validator(mode="after")
    def _password_hash(self) -> AuthSettings:
        """The test suites' profile needs a second setting: one stray variable must not
        weaken every password a server stores."""
        if self.password_hash == "insecure-fast" and not self.password_hash_insecure_ok:
            raise ValueError(
                "MEDAI_PASSWORD_HASH=insecure-fast is for test suites only; set "
                "MEDAI_PASSWORD_HASH_INSECURE_OK=true as well to use it, or choose "
                "rfc9106-low-memory or owasp-minimum"
            )
        return self


class KioskSettings(SettingsGroup):
    """The anonymous triage kiosk."""

    kiosk_enabled: bool = Field(default=True, description="anonymous triage kiosk")
    kiosk_daily_quota: int = Field(
        default=3,
        ge=0,
        description="anonymous triage requests per client address "
        "per day (registered kiosks have their own)",
    )
    kiosk_device_quota: int = Field(
        default=500,
        ge=0,
        le=1_000_000,
        description="daily quota of a newly registered kiosk device "
        "(each kiosk's own can be changed)",
    )
    kiosk_idle_s: int = Field(
        default=75,
        ge=10,
        le=3600,
        description="seconds without a touch after which the triage "
        "kiosk screen clears itself for the next patient",
    )
    kiosk_enrol_minutes: int = Field(
        default=30,
        ge=1,
        le=7 * 24 * 60,
        description="how long a kiosk's one-time enrolment code stays valid",
    )


class DicomSettings(SettingsGroup):
    """Studies in: the DICOM node and DICOMweb pulls (docs/integration.md)."""

    dicom_ae_title: str = Field(
        default="MEDAI", description="the DICOM node's AE title; associations must call it"
    )
    dicom_host: str = Field(default="127.0.0.1", description="bind address of `medai dicom listen`")
    dicom_port: int = Field(
        default=11112,
        ge=1,
        le=65535,
        description="port of the DICOM node (`medai dicom listen`, or `medai serve` "
        "with MEDAI_DICOM_IN_SERVE)",
    )
    dicom_in_serve: bool = Field(
        default=False,
        description="`medai serve` also runs the DICOM node (MEDAI_DICOM_HOST, "
        "MEDAI_DICOM_PORT) in its one worker process; `serve --dicom-port P` sets it, "
        "with the port P and serve's bind address",
    )
    dicom_allow: list[str] = Field(
        default_factory=list,
        description="calling AE titles allowed to send (JSON list), e.g. "
        '["CR01", "PACS"]; empty (a fresh install): none, every association is '
        'refused and the log says why; ["*"]: any caller that can reach the port '
        "(a test bench, never a hospital network)",
    )
    dicom_tls_cert: Path | None = Field(
        default=None,
        description="the DICOM node's certificate (PEM, with its chain): set with "
        "dicom_tls_key, the node speaks only DICOM TLS on its port (PS3.15 B.1; 2762 "
        "by convention); unset: plain DICOM",
    )
    dicom_tls_key: Path | None = Field(
        default=None, description="the private key (PEM) of dicom_tls_cert, readable by medai only"
    )
    dicom_tls_ca: Path | None = Field(
        default=None,
        description="CA certificates (PEM) a sender's certificate must be signed by: "
        "set, the node requires one (mutual TLS); unset, any sender may connect over TLS "
        "and the calling AE title list still decides",
    )
    dicom_max_associations: int = Field(
        default=12,
        ge=1,
        le=256,
        description="associations the DICOM node keeps open at once, "
        "from all peers; one more is rejected (transient, "
        "local limit exceeded)",
    )
    dicom_max_per_ae: int = Field(
        default=6, ge=1, le=256, description="associations open at once from one calling AE title"
    )
    dicom_max_per_address: int = Field(
        default=6, ge=1, le=256, description="associations open at once from one peer address"
    )
    dicom_idle_s: float = Field(
        default=60.0,
        ge=1,
        le=3600,
        description="an association that has stored nothing (C-STORE) "
        "for this long is aborted: C-ECHOs do not keep it "
        "open",
    )
    dicomweb_pull_url: str | None = Field(
        default=None,
        description="a PACS's DICOMweb base URL to pull new studies from "
        "(QIDO-RS, WADO-RS) on a schedule, for a PACS that does not "
        "push; `medai serve` polls it, or `medai dicom pull`",
    )
    dicomweb_pull_every_s: float = Field(
        default=60.0, ge=5, le=86_400, description="seconds between two pulls"
    )
    dicomweb_pull_lookback_days: int = Field(
        default=1,
        ge=0,
        le=3650,
        description="a pull asks for the studies of this many days back (StudyDate)",
    )

    @field_validator("dicom_ae_title")
    @classmethod
    def _ae_title(cls, value: str) -> str:
        return check_ae_title(value)

    @field_validator("dicom_allow")
    @classmethod
    def _ae_titles(cls, value: list[str]) -> list[str]:
        return check_allow_list(value)

    @model_validator(mode="after")
    def _dicom_tls_pair(self) -> DicomSettings:
        """A certificate without its key (or the reverse) would start a node that can do
        neither plain DICOM as configured nor TLS: refused, naming both."""
        if (self.dicom_tls_cert is None) != (self.dicom_tls_key is None):
            raise ValueError(
                "MEDAI_DICOM_TLS_CERT and MEDAI_DICOM_TLS_KEY go together: set both "
                "(the node speaks DICOM TLS) or neither (plain DICOM)"
            )
        if self.dicom_tls_ca is not None and self.dicom_tls_cert is None:
            raise ValueError(
                "MEDAI_DICOM_TLS_CA needs MEDAI_DICOM_TLS_CERT and MEDAI_DICOM_TLS_KEY"
            )
        return self

    @field_validator("dicomweb_pull_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return optional_http_url(value)


class Hl7Settings(SettingsGroup):
    """Orders in: the HL7 v2 listener (ORM^O01, OMI^O23 over MLLP; docs/integration.md)."""

    hl7_host: str = Field(default="127.0.0.1", description="bind address of `medai hl7 listen`")
    hl7_port: int = Field(
        default=2575, ge=1, le=65535, description="port of the HL7 order listener (MLLP)"
    )
    hl7_allow: list[str] = Field(
        default_factory=list,
        description="senders whose orders are taken (JSON list): an application (MSH-3), or "
        'an application and facility (MSH-3^MSH-4), e.g. ["RIS", "HIS^HASTANE"]; empty (a '
        "fresh install): none, every message is answered AR and the log says why; "
        '["*"]: any sender that can reach the port (a test bench, never a hospital network)',
    )
    hl7_max_connections: int = Field(
        default=8, ge=1, le=256, description="MLLP connections open at once; one more is closed"
    )
    hl7_idle_s: float = Field(
        default=60.0,
        ge=1,
        le=3600,
        description="an MLLP connection that sends nothing for this long is closed",
    )
    hl7_tls_cert: Path | None = Field(
        default=None,
        description="the HL7 listener's certificate (PEM, with its chain): set with "
        "hl7_tls_key, the listener speaks only MLLP over TLS (TLS 1.2 or newer) on its port; "
        "unset: plain MLLP (a closed hospital network or a TLS-terminating interface engine)",
    )
    hl7_tls_key: Path | None = Field(
        default=None, description="the private key (PEM) of hl7_tls_cert, readable by medai only"
    )
    hl7_tls_ca: Path | None = Field(
        default=None,
        description="CA certificates (PEM) a sender's certificate must be signed by: set, the "
        "listener requires one (mutual TLS); unset, any sender may connect over TLS and "
        "MEDAI_HL7_ALLOW still decides",
    )

    @field_validator("hl7_allow")
    @classmethod
    def _senders(cls, value: list[str]) -> list[str]:
        return check_hl7_senders(value)

    @model_validator(mode="after")
    def _hl7_tls_pair(self) -> Hl7Settings:
        """A certificate without its key (or the reverse), or a CA without either, would
        start a listener that does not do what was configured: refused, naming them."""
        if (self.hl7_tls_cert is None) != (self.hl7_tls_key is None):
            raise ValueError(
                "MEDAI_HL7_TLS_CERT and MEDAI_HL7_TLS_KEY go together: set both (MLLP over "
                "TLS) or neither (plain MLLP)"
            )
        if self.hl7_tls_ca is not None and self.hl7_tls_cert is None:
            raise ValueError("MEDAI_HL7_TLS_CA needs MEDAI_HL7_TLS_CERT and MEDAI_HL7_TLS_KEY")
        return self


class OutboxSettings(SettingsGroup):
    """Results out: where AI results and signed reports are sent (docs/integration.md)."""

    dicom_send_to: str | None = Field(
        default=None,
        description="a PACS to C-STORE AI results and signed reports to: "
        "AE@HOST:PORT (destination name 'dicom')",
    )
    dicomweb_url: str | None = Field(
        default=None,
        description="a DICOMweb service to STOW-RS them to, e.g. "
        "http://pacs/dicom-web (destination name 'dicomweb')",
    )
    fhir_url: str | None = Field(
        default=None,
        description="a FHIR R4 server's base URL: DiagnosticReports as "
        "transactions (destination name 'fhir')",
    )
    hl7_mllp: str | None = Field(
        default=None,
        description="an HL7 v2 receiver for ORU^R01 over MLLP: HOST:PORT (destination name 'hl7')",
    )
    destinations_file: Path | None = Field(
        default=None,
        description="a YAML or JSON file listing several destinations "
        "(docs/integration.md); beside the variables above",
    )
    institution_name: str = Field(
        default="",
        max_length=64,
        description="the hospital's name, written into the DICOM objects and messages sent",
    )
    outbox_threads: int = Field(
        default=1,
        ge=0,
        le=16,
        description="delivery threads inside serve (0: none; run `medai outbox run` instead)",
    )
    outbox_lease_s: float = Field(
        default=300.0,
        ge=5,
        description="a delivery whose sender died is taken over after this long",
    )
    outbox_retry_s: float = Field(
        default=30.0,
        gt=0,
        description="first wait after a failed delivery; it doubles each time, with jitter",
    )
    outbox_retry_max_s: float = Field(
        default=3600.0, gt=0, description="longest wait between delivery attempts"
    )
    outbox_poll_s: float = Field(
        default=5.0, gt=0, description="how often the delivery loop looks for due work"
    )

    @field_validator("dicom_send_to")
    @classmethod
    def _dicom_send_to(cls, value: str | None) -> str | None:
        if value:
            parse_dicom_address(value)
        return value or None

    @field_validator("hl7_mllp")
    @classmethod
    def _hl7_mllp(cls, value: str | None) -> str | None:
        if value:
            parse_host_port(value, "MEDAI_HL7_MLLP")
        return value or None

    @field_validator("dicomweb_url", "fhir_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return optional_http_url(value)


class MonitorSettings(SettingsGroup):
    """Drift and agreement monitoring of the served models."""

    monitor_reference_n: int = Field(
        default=100,
        ge=20,
        le=100_000,
        description=("monitoring: the first N analyses of a model at this site are its reference"),
    )
    monitor_window: int = Field(
        default=50,
        ge=10,
        le=10_000,
        description=("monitoring: the most recent analyses compared with the reference"),
    )
    monitor_min_window: int = Field(
        default=30,
        ge=5,
        le=10_000,
        description=(
            "monitoring: no drift verdict on fewer analyses than this after the reference"
        ),
    )
    monitor_p: float = Field(
        default=1e-4,
        gt=0,
        lt=1,
        description=(
            "monitoring: a two-sample test's p-value under which a distribution has moved"
        ),
    )
    monitor_psi: float = Field(
        default=0.25,
        gt=0,
        description=("monitoring: the population stability index at which a shift is large enough"),
    )
    monitor_shift: float = Field(
        default=0.05,
        gt=0,
        description=(
            "monitoring: the least change of an image statistic's median (0-1 scale) that counts"
        ),
    )
    monitor_embedding_shift: float = Field(
        default=0.5,
        gt=0,
        description=(
            "monitoring: the least Mahalanobis distance between the reference's and the window's "
            "mean embedding (whitened penultimate features) that counts as embedding drift"
        ),
    )
    monitor_agreement: float = Field(
        default=0.7,
        gt=0,
        le=1,
        description=(
            "monitoring: per-label agreement with signatures below which an alert is raised"
        ),
    )
    monitor_agreement_n: int = Field(
        default=20,
        ge=5,
        le=100_000,
        description=("monitoring: signed studies needed before agreement can alert"),
    )
    monitor_webhook_url: str | None = Field(
        default=None,
        description=("monitoring: an http(s) URL each new alert is POSTed to as JSON (optional)"),
    )

    @field_validator("monitor_webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return optional_http_url(value)


class GeneralSettings(SettingsGroup):
    """Time zone, logs, metrics and the build."""

    timezone: str = Field(
        default="Europe/Istanbul",
        description="the hospital's IANA time zone: every date people read "
        "(report history, signatures, PDFs) is shown in it, and "
        "daily quotas restart at its midnight",
    )
    log_level: str = Field(
        default="info", description="debug | info | warning | error (the server's log)"
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text: one plain line per record; json: one JSON object "
        "per line (time, level, logger, message, place; request "
        "id and route on access lines), for a log shipper. The "
        "same records are withheld either way (server.logs)",
    )
    metrics: bool = Field(
        default=True,
        description="answer GET /metrics (Prometheus text) "
        "to the networks of metrics_allow; off: "
        "404",
    )
    metrics_allow: list[str] = Field(
        default=[
            "127.0.0.0/8",
            "::1/128",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "fc00::/7",
        ],
        description="client networks (JSON list of CIDRs) GET /metrics answers; any other "
        "client, and any request that came through a proxy (Forwarded, "
        "X-Forwarded-For or X-Real-IP present), gets 403: Prometheus scrapes each "
        "process directly, never through the front door",
    )
    tls_watch_certs: list[Path] = Field(
        default_factory=list,
        description="certificate files (PEM; JSON list) whose expiry medai watches: "
        "the site certificate of the front door, mounted read-only (only the "
        "certificate, never its key); medai_tls_certificate_expiry_timestamp_seconds "
        "on /metrics and a WARNING line when one expires within tls_warn_days "
        "(dicom_tls_cert is watched too)",
    )
    tls_warn_days: int = Field(
        default=30,
        ge=1,
        le=365,
        description="a watched certificate expiring within this many days is "
        "logged as a WARNING at start and at each scrape (once a day per file)",
    )
    build_commit: str | None = Field(
        default=None,
        description="the source commit of this build, shown by "
        "medai_build_info (the image sets it; a source checkout "
        "reads its .git)",
    )

    @field_validator("metrics_allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for v in value:
            try:
                ipaddress.ip_network(v.strip(), strict=False)
            except ValueError:
                raise ValueError(
                    f"MEDAI_METRICS_ALLOW: {v!r} is not an IP address or network "
                    "(e.g. 127.0.0.1, 10.0.0.0/8)"
                ) from None
        return [v.strip() for v in value]

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; give an IANA name such as "
                "Europe/Istanbul or UTC (zoneinfo.available_timezones())"
            ) from None
        return value


class Settings(BaseModel):
    """Every setting, by group: ``settings.dicom.dicom_port``. ``Settings()`` reads each group
    from the environment (``MEDAI_<FIELD>``, then ``.env``). The fields of each group are
    documented in docs/settings.md, in this order (``settings_doc``)."""

    model_config = ConfigDict(hide_input_in_errors=True)

    storage: StorageSettings = Field(default_factory=StorageSettings, title="Storage")
    serving: ServingSettings = Field(default_factory=ServingSettings, title="Serving")
    models: ModelSettings = Field(default_factory=ModelSettings, title="Models")
    llm: LlmSettings = Field(default_factory=LlmSettings, title="Report drafts and LLM")
    auth: AuthSettings = Field(default_factory=AuthSettings, title="Sign-in")
    kiosk: KioskSettings = Field(default_factory=KioskSettings, title="Triage kiosk")
    dicom: DicomSettings = Field(default_factory=DicomSettings, title="DICOM node")
    hl7: Hl7Settings = Field(default_factory=Hl7Settings, title="HL7 orders in")
    outbox: OutboxSettings = Field(default_factory=OutboxSettings, title="Outbox and destinations")
    monitor: MonitorSettings = Field(default_factory=MonitorSettings, title="Monitoring")
    general: GeneralSettings = Field(
        default_factory=GeneralSettings, title="General and operations"
    )
    _file_destinations: list[Destination] = PrivateAttr(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _into_groups(cls, data: Any) -> Any:
        """``Settings(dicom_port=11113)``: a field given by its flat name, the name of its
        variable, is placed in its group. Accepted because that name is unique across the
        groups (it is the variable an operator sets), so it says the same as
        ``MEDAI_DICOM_PORT=11113`` and cannot be ambiguous; tests and commands change one
        setting without spelling out where it is filed. A group given anything is built by its
        own model, so its other fields still come from the environment as in ``Settings()``."""
        if not isinstance(data, dict):
            return data
        out = {key: value for key, value in data.items() if key not in FIELD_GROUPS}
        for name, value in data.items():
            if name not in FIELD_GROUPS:
                continue
            group = FIELD_GROUPS[name]
            whole = out.get(group, {})
            if not isinstance(whole, dict):
                raise ValueError(f"settings group {group} is given whole and {name} beside it")
            out[group] = {**whole, name: value}
        return {
            key: GROUP_MODELS[key](**value)
            if key in GROUP_MODELS and isinstance(value, dict)
            else value
            for key, value in out.items()
        }

    @model_validator(mode="after")
    def _destinations(self) -> Settings:
        """The destinations file is read and checked at start: a wrong one stops serve
        with every mistake named (and the valid values)."""
        file = self.outbox.destinations_file
        self._file_destinations = load_destinations(file) if file else []
        self.destinations()  # duplicate names refused here too
        return self

    def destinations(self) -> list[Destination]:
        """Every configured destination: the one-destination variables, then the file's.
        Sending C-STOREs calls with the DICOM node's own AE title (``dicom.dicom_ae_title``)."""
        out: list[Destination] = []
        outbox = self.outbox
        if outbox.dicom_send_to:
            ae, host, port = parse_dicom_address(outbox.dicom_send_to)
            out.append(
                DicomDestination(
                    name="dicom",
                    kind="dicom",
                    ae_title=ae,
                    host=host,
                    port=port,
                    calling_ae=self.dicom.dicom_ae_title,
                )
            )
        if outbox.dicomweb_url:
            out.append(
                DicomWebDestination(name="dicomweb", kind="dicomweb", url=outbox.dicomweb_url)
            )
        if outbox.fhir_url:
            out.append(FhirDestination(name="fhir", kind="fhir", url=outbox.fhir_url))
        if outbox.hl7_mllp:
            host, port = parse_host_port(outbox.hl7_mllp, "MEDAI_HL7_MLLP")
            out.append(Hl7Destination(name="hl7", kind="hl7", host=host, port=port))
        out += self._file_destinations
        names = [d.name for d in out]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(
                f"destination names must be unique: {', '.join(twice)} given "
                "twice (the variables use dicom, dicomweb, fhir, hl7)"
            )
        return out


def parse_models(value: Any, var: str = "MEDAI_MODELS") -> dict[str, Path]:
    """The task → model folder mapping of ``MEDAI_MODELS``: ``TASK=DIR,TASK2=DIR2`` or a JSON
    object (a folder whose name holds a comma), or a mapping already. A malformed entry or a
    task given twice is refused naming ``var``. Which tasks exist is the task registry's to
    say (``core.model_dir.check_tasks``: settings import nothing of medai)."""
    import json

    example = "e.g. triage=/models/my-triage,cxr=/models/my-cxr, or a JSON object"
    if value is None:
        return {}
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(("{", "[")):
            try:
                value = json.loads(text)
            except ValueError:
                raise ValueError(f"{var}: not a valid JSON object ({example})") from None
        else:
            pairs: dict[str, str] = {}
            for entry in (e.strip() for e in text.split(",")):
                if not entry:
                    continue
                task, sep, folder = (part.strip() for part in entry.partition("="))
                if not (sep and task and folder):
                    raise ValueError(f"{var}: {entry!r} is not TASK=DIR ({example})")
                if task in pairs:
                    raise ValueError(f"{var}: task {task!r} is given twice")
                pairs[task] = folder
            value = pairs
    if not isinstance(value, dict):
        raise ValueError(f"{var}: give TASK=DIR pairs ({example})")
    out: dict[str, Path] = {}
    for task, folder in value.items():
        if not isinstance(task, str) or not task.strip():
            raise ValueError(f"{var}: {task!r} is not a task name ({example})")
        if not isinstance(folder, str | Path) or not str(folder).strip():
            raise ValueError(f"{var}: the folder of task {task!r} is not a path ({example})")
        out[task.strip()] = Path(str(folder).strip())
    return out


SECRET_FILES = ("secret_keys", "database_url", "broker_url", "llm_api_key", "gemini_api_key")
"""The settings that may be read from a file named by ``MEDAI_<NAME>_FILE``."""


def read_secret_file(name: str, path: Path) -> str | list[str]:
    """The value of ``MEDAI_<NAME>`` kept in ``path``: its text without the final newline,
    or for the key list one key per line, newest first (blank lines and ``#`` comments
    ignored). A missing, unreadable or empty file is refused naming the file, never the
    secret (a line that is not a key is named by its number)."""
    var = f"MEDAI_{name.upper()}_FILE"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(
            f"{var} {path}: cannot be read ({exc.strerror or type(exc).__name__})"
        ) from None
    except UnicodeDecodeError:
        raise ValueError(f"{var} {path}: not UTF-8 text") from None
    if name != "secret_keys":
        value = text.strip()
        if not value:
            raise ValueError(f"{var} {path}: the file is empty")
        return value
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not _is_fernet_key(line):
            raise ValueError(
                f"{var} {path}: line {number} is not a key (44 characters of "
                "url-safe base64, as `medai keys generate` prints)"
            )
        keys.append(line)
    if not keys:
        raise ValueError(f"{var} {path}: no key in the file (one key per line, newest first)")
    return keys


def _is_fernet_key(line: str) -> bool:
    import base64
    import binascii

    try:
        return len(line) == 44 and len(base64.urlsafe_b64decode(line.encode("ascii"))) == 32
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return False


def check_proxy(value: str) -> str:
    """An IP address or network (``10.0.0.0/8``) of a trusted proxy, or '*' (any peer: only
    when nothing but the proxy can reach the server)."""
    import ipaddress

    value = value.strip()
    if value != "*":
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(
                f"MEDAI_TRUSTED_PROXIES: {value!r} is not an IP address or "
                "network (e.g. 127.0.0.1, 10.0.0.0/8) nor '*'"
            ) from None
    return value


# --- groups ---------------------------------------------------------------------------------

GROUP_MODELS: dict[str, type[SettingsGroup]] = {
    # every field of Settings is annotated with its group's model (a SettingsGroup subclass)
    name: cast(type[SettingsGroup], field.annotation)
    for name, field in Settings.model_fields.items()
}
"""Every group's model by its name (``Settings.<name>``), in the order they are documented."""

GROUPS: dict[str, tuple[str, str]] = {
    name: (field.title or name, " ".join((field.annotation.__doc__ or "").split()).rstrip("."))
    for name, field in Settings.model_fields.items()
}
"""Every group's title (its field's in ``Settings``) and what it holds (its model's docstring):
``settings_doc`` and ``medai settings`` show them."""


def _field_groups() -> dict[str, str]:
    """Each setting's group. A field in two groups would make one variable set two settings:
    refused when this module is imported, naming it."""
    out: dict[str, str] = {}
    for group, model in GROUP_MODELS.items():
        for name in model.model_fields:
            if name in out:
                raise TypeError(
                    f"the setting {name} is in the groups {out[name]} and {group}: "
                    f"MEDAI_{name.upper()} must set one field"
                )
            out[name] = group
    return out


FIELD_GROUPS: dict[str, str] = _field_groups()
"""Each setting's group by the setting's name: ``FIELD_GROUPS["dicom_port"] == "dicom"``."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
