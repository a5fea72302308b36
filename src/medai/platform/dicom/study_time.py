"""When a study was taken, as a report's ``effectiveDateTime`` states it (issue 59).

A study that arrived as DICOM was taken at its StudyDate and StudyTime (local time: the
header's TimezoneOffsetFromUTC when it has one, else the hospital's zone, ``MEDAI_TIMEZONE``);
a header with a StudyDate and no usable StudyTime gives the date alone. An uploaded image
(a PNG) has no acquisition time: it falls back to when it was uploaded. Never the time of the
signature: that is the report's ``issued``.
"""

from __future__ import annotations

import io
import logging
import re
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from medai.core.errors import MedaiError
from medai.platform.records.localtime import as_utc, hospital_zone

log = logging.getLogger("medai.integration")

_DA = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_TM = re.compile(r"^(\d{2})(?::?(\d{2})(?::?(\d{2}))?)?(?:\.(\d{1,6}))?$")
_OFFSET = re.compile(r"^([+-])(\d{2})(\d{2})$")


def header(data: bytes | None) -> Any:
    """A stored file's DICOM header (pydicom Dataset without pixels); None when it is not
    DICOM or cannot be read."""
    if not data or len(data) < 132 or data[128:132] != b"DICM":
        return None
    import pydicom

    try:
        return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except Exception as exc:  # broad: pydicom raises many types: no time to give (logged)
        log.warning("stored DICOM header unreadable (%s): no study time", type(exc).__name__)
        return None


def _text(ds: Any, keyword: str) -> str:
    value = getattr(ds, keyword, None) if ds is not None else None
    return str(value or "").strip()


def _date(value: str) -> date | None:
    m = _DA.match(value.strip())
    if not m:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def _time(value: str) -> time | None:
    m = _TM.match(value.strip())
    if not m:
        return None
    hh, mm, ss = int(m[1]), int(m[2] or 0), int(m[3] or 0)
    if hh > 23 or mm > 59 or ss > 60:
        return None
    return time(hh, mm, min(ss, 59))


def _zone(ds: Any, zone: str | None):
    m = _OFFSET.match(_text(ds, "TimezoneOffsetFromUTC"))
    if m:
        minutes = int(m[2]) * 60 + int(m[3])
        if minutes <= 14 * 60:
            return timezone(timedelta(minutes=minutes if m[1] == "+" else -minutes))

    return hospital_zone(zone)


def taken(
    ds: Any, study_date: str | None, uploaded: datetime | str | None, zone: str | None = None
) -> str | None:
    """A FHIR dateTime: StudyDate and StudyTime of the header ``ds`` (with its offset), else
    the date alone (``ds``'s StudyDate, else the stored ``study_date``), else the upload time
    ``uploaded`` (naive UTC, or an ISO string) as a UTC instant; None with none of them."""
    day = _date(_text(ds, "StudyDate")) or _date(study_date or "")
    if day is not None:
        at = _time(_text(ds, "StudyTime")) if _date(_text(ds, "StudyDate")) else None
        if at is None:
            return day.isoformat()
        return datetime.combine(day, at, tzinfo=_zone(ds, zone)).isoformat()
    if uploaded is None:
        return None

    return as_utc(uploaded).astimezone(UTC).replace(microsecond=0).isoformat()


def of_study(
    store: Any, sha: str | None, study_date: str | None, uploaded: datetime | str | None
) -> str | None:
    """``taken`` for a study whose stored image is ``sha`` in ``store`` (a DICOM file's
    header; a PNG has none)."""
    data = None
    if sha:
        try:
            data = store.read(sha)
        except (OSError, MedaiError):  # a missing or unreadable file: the stored date or upload
            data = None
    return taken(header(data), study_date, uploaded)
