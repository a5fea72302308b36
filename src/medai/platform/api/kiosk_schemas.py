"""Request and response bodies of the kiosk routes (admin registration and a kiosk's own
enrolment and status)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from medai.platform.access.kiosks import MAX_QUOTA, NAME_PATTERN
from medai.platform.api.schemas import Strict


class KioskIn(Strict):
    name: str = Field(
        ...,
        min_length=1,
        max_length=64,
        # what ``kiosks.check_name`` takes (NAME_CHARS, not only spaces), so that a request the
        # schema allows is never refused
        pattern=NAME_PATTERN,
        description="unique among registered kiosks, e.g. 'Acil giriş 1': letters, digits, "
        "spaces, '.', '_' or '-'",
    )
    daily_quota: int | None = Field(
        None,
        ge=0,
        le=MAX_QUOTA,
        description="triage requests a day (default MEDAI_KIOSK_DEVICE_QUOTA)",
    )


class KioskQuotaIn(Strict):
    daily_quota: int = Field(..., ge=0, le=MAX_QUOTA)


class KioskOut(BaseModel):
    id: int
    name: str
    daily_quota: int
    used_today: int = Field(..., description="requests since midnight (MEDAI_TIMEZONE)")
    enrolled: bool = Field(..., description="a browser holds this kiosk's cookie")
    enrolled_at: str | None
    enrol_code_expires_at: str | None = Field(
        ..., description="an unused enrolment code is waiting until then"
    )
    created_at: str
    revoked: bool
    revoked_at: str | None


class KioskEnrolment(BaseModel):
    enrol_code: str = Field(
        ..., description="one-time, shown once: type it on the kiosk's /kiosk page"
    )
    enrol_code_expires_at: str
    enrol_path: str = "/kiosk"


class KioskIssued(KioskOut):
    token: str = Field(
        ...,
        description="the kiosk's API token, shown once: send it as X-Kiosk-Token (machine clients)",
    )
    enrol_code: str = Field(
        ..., description="one-time, shown once: type it on the kiosk's /kiosk page"
    )
    enrol_path: str = "/kiosk"


class KioskEnrolIn(Strict):
    code: str = Field(..., min_length=1, max_length=64)


class KioskSelf(BaseModel):
    """What a kiosk may know about itself."""

    name: str
    daily_quota: int
    used_today: int
    resets_in_s: int = Field(
        ..., description="seconds until the quota restarts (midnight in MEDAI_TIMEZONE)"
    )
