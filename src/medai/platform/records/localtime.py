"""Times people read: stored UTC instants shown in the hospital's time zone (``MEDAI_TIMEZONE``,
Europe/Istanbul by default), named so no reader has to guess the offset.

One formatter for every face: the PDF report, the FHIR text, and the API's ``*_local`` fields
the web UI's version history shows (``local_times``). The database keeps naive UTC datetimes
(``db.utcnow``); the API sends them as ISO strings ending in ``Z``; both are accepted here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from medai.settings import get_settings

MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def iso_utc(t: datetime | None) -> str | None:
    """A stored naive-UTC time as the API sends it (ISO 8601 ending in ``Z``); None stays."""
    return None if t is None else t.isoformat() + "Z"


def hospital_zone(name: str | None = None) -> ZoneInfo:
    """``name``, else the configured zone (validated by the settings)."""
    if name is None:
        name = get_settings().general.timezone
    return ZoneInfo(name)


def as_utc(when: datetime | str) -> datetime:
    """An aware UTC datetime from a naive-UTC datetime, an aware one or an ISO string."""
    if isinstance(when, str):
        when = datetime.fromisoformat(when.strip().replace("Z", "+00:00"))
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def format_local(when: datetime | str | None, lang: str, zone: str | None = None) -> str | None:
    """``23.11.2026 14:05 (Europe/Istanbul)`` in Turkish, ``23 Nov 2026 14:05
    (Europe/Istanbul)`` in English; None for None."""
    if when is None:
        return None
    tz = hospital_zone(zone)
    t = as_utc(when).astimezone(tz)
    if lang == "tr":
        return f"{t:%d.%m.%Y %H:%M} ({tz.key})"
    return f"{t.day} {MONTHS_EN[t.month - 1]} {t.year} {t:%H:%M} ({tz.key})"


def local_times(
    record: dict,
    lang: str,
    zone: str | None = None,
    fields: tuple[str, ...] = ("created_at", "signed_at"),
) -> dict[str, str | None]:
    """``{"created_at_local": …, "signed_at_local": …}`` for a dict carrying those ISO fields
    (a report version from ``versions.as_dict``), for the API to add beside them."""
    return {f"{name}_local": format_local(record.get(name), lang, zone) for name in fields}
