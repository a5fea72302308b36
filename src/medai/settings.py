"""One settings object for the whole platform, read from ``MEDAI_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDAI_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path.home() / ".medai", description="medai's working folder: "
                       "the default parent of models_dir and cache_dir")
    models_dir: Path | None = Field(
        default=None, description="where user models are registered (default HOME/models)")
    cache_dir: Path | None = Field(
        default=None, description="embedding cache and other recomputable files "
                                  "(default HOME/cache)")
    triage_model: Path | None = Field(default=None, description="triage model served by default")
    cxr_model: Path | None = Field(default=None, description="chest X-ray model served")
    mri_model: Path | None = Field(default=None, description="brain MRI model served")
    triage_min_confidence: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="abstain below this top probability (default: the model card's value)")
    red_flag_rules: Path | None = Field(
        default=None, description="folder with your own concepts.yaml, flags.yaml and "
                                  "exemplars.yaml (default: the bundled red-flag rules)")
    red_flag_embeddings: bool = Field(
        default=True, description="run the e5 nearest-exemplar red-flag detector beside the rules")
    red_flag_classifier: bool = Field(
        default=True, description="run the learned red-flag classifier (RED_FLAG_RULES/classifier "
                                  "or the bundled one) beside the rules")
    knowledge_dir: Path | None = Field(
        default=None, description="extra knowledge base (from `medai kb ingest`) for drafts")
    llm_backend: str = Field(default="template",
                             description="template | openai | gemini | llamacpp")
    llm_url: str | None = Field(default=None, description="OpenAI-compatible base URL")
    llm_model: str | None = None
    llm_api_key: str | None = None
    gemini_api_key: str | None = Field(
        default=None, description="enables the Gemini backend (text leaves the hospital)")
    llm_gguf: str | None = Field(default=None, description="local GGUF file for llamacpp")
    llm_timeout_s: float = 60.0
    workers: int = Field(default=1, ge=1, description="server worker processes")
    inference_concurrency: int | None = Field(
        default=None, ge=1, description="model calls at once per worker (default: cores / "
                                        "workers)")
    inference_queue: int = Field(default=32, ge=0,
                                 description="requests that may wait for a model slot")
    inference_timeout_s: float = Field(default=15.0, gt=0,
                                       description="longest wait for a slot before a 503")
    imaging_runtime: str = Field(default="auto", description="auto | onnx | torch")
    trusted_hosts: list[str] = Field(
        default=["localhost", "127.0.0.1"],
        description="Host headers the server answers (JSON list; '*' allows any)")
    # --- the clinical platform (medai.platform) ---
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL (default: the SQLite file HOME/medai.db); "
                                  "e.g. postgresql+psycopg://user@host/medai")
    broker_url: str | None = Field(
        default=None, description="Celery broker (redis://… or amqp://…): studies are analysed "
                                  "by `medai worker` processes; unset: by the pool inside serve")
    job_threads: int = Field(default=1, ge=0,
                             description="analysis threads inside serve (0: none in this "
                                         "process)")
    job_lease_s: float = Field(default=60.0, gt=0,
                               description="a running job whose worker has not renewed its "
                                           "lease for this long is taken over by another")
    secret_keys: list[str] = Field(
        default_factory=list,
        description="Fernet keys (JSON list, newest first) encrypting chat messages and "
                    "complaints at rest; default: a key generated once in HOME/secret.key")
    session_hours: float = Field(default=12.0, gt=0, description="session cookie lifetime")
    token_days: float = Field(default=90.0, gt=0, description="bearer token lifetime")
    secure_cookies: bool = Field(default=False,
                                 description="mark cookies Secure (set behind TLS)")
    login_max_failures: int = Field(default=5, ge=1,
                                    description="failed logins per user or client before 429")
    login_window_s: float = Field(default=900.0, gt=0, description="throttling window")
    kiosk_enabled: bool = Field(default=True, description="anonymous triage kiosk")
    kiosk_daily_quota: int = Field(default=3, ge=0,
                                   description="anonymous triage requests per client address "
                                               "per day (registered kiosks have their own)")
    kiosk_device_quota: int = Field(default=500, ge=0, le=1_000_000,
                                    description="daily quota of a newly registered kiosk device "
                                                "(each kiosk's own can be changed)")
    kiosk_idle_s: int = Field(default=75, ge=10, le=3600,
                              description="seconds without a touch after which the triage "
                                          "kiosk screen clears itself for the next patient")
    kiosk_enrol_minutes: int = Field(default=30, ge=1, le=7 * 24 * 60,
                                     description="how long a kiosk's one-time enrolment code "
                                                 "stays valid")
    timezone: str = Field(default="Europe/Istanbul",
                          description="the hospital's IANA time zone: every date people read "
                                      "(report history, signatures, PDFs) is shown in it, and "
                                      "daily quotas restart at its midnight")
    # --- the DICOM node (medai.platform.integration) ---
    dicom_ae_title: str = Field(
        default="MEDAI", description="the DICOM node's AE title; associations must call it")
    dicom_host: str = Field(default="127.0.0.1",
                            description="bind address of `medai dicom listen`")
    dicom_port: int = Field(default=11112, ge=1, le=65535,
                            description="port of `medai dicom listen` (`medai serve` starts "
                                        "the node only when given --dicom-port)")
    dicom_allow: list[str] = Field(
        default_factory=list, description="calling AE titles allowed to send (JSON list); "
                                          "empty: any modality or PACS that can reach the port")
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"

    @field_validator("dicom_ae_title")
    @classmethod
    def _ae_title(cls, value: str) -> str:
        return check_ae_title(value)

    @field_validator("dicom_allow")
    @classmethod
    def _ae_titles(cls, value: list[str]) -> list[str]:
        return [check_ae_title(v) for v in value]

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; give an IANA name such as "
                             "Europe/Istanbul or UTC (zoneinfo.available_timezones())") from None
        return value

    @model_validator(mode="after")
    def _under_home(self) -> Settings:
        """Folders not set on their own live under ``home`` (MEDAI_HOME moves them all)."""
        if self.models_dir is None:
            self.models_dir = self.home / "models"
        if self.cache_dir is None:
            self.cache_dir = self.home / "cache"
        return self

    def default_model(self, task: str) -> Path | None:
        """``MEDAI_<TASK>_MODEL`` (declared above for the bundled tasks; read from the
        environment for a task a hospital added)."""
        import os

        value = getattr(self, f"{task}_model", None) or os.environ.get(
            f"MEDAI_{task.upper()}_MODEL")
        return Path(value) if value else None


AE_TITLE_CHARS = "letters, digits, space and the printable ASCII signs except '\\'"


def check_ae_title(value: str) -> str:
    """A DICOM AE title (PS3.5 AE: 1–16 characters, leading and trailing spaces not
    significant); a wrong one is refused with what is allowed."""
    title = str(value).strip()
    if not 1 <= len(title) <= 16 or any(not (32 <= ord(c) < 127) or c == "\\"
                                          for c in title):
        raise ValueError(f"AE title {value!r} is not valid: 1 to 16 characters, "
                         f"{AE_TITLE_CHARS}")
    return title


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
