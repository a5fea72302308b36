"""DICOM values checked where they come in, and made safe where they go out.

In (``check``, called by ``identity.read`` for every way a file arrives: the DICOM node's
C-STORE, STOW-RS, the DICOMweb pull and a browser upload): the attributes medai files a study
by must be what PS3.5 says they are, or the instance is refused with ``InvalidAttribute``
naming the attribute and the rule (never the value: it may be patient data). Before this
check, a SOPInstanceUID ``../../etc/passwd`` or a 3,000-character PatientName was filed, and
then every export of the study failed (FHIR ids, the PACS refusing the SR).

- UIDs (Study, Series, SOP Instance, SOP Class, and the file meta's): at most 64 characters,
  digits and dots, no empty component. A component with a leading zero (``1.2.040``) is
  *accepted*: PS3.5 9.1 forbids it, but modalities in service do send such UIDs, and refusing
  them would lose studies for a rule no output depends on.
- PatientID, IssuerOfPatientID (LO): 64 characters; AccessionNumber (SH): 16; PatientName
  (PN): at most three component groups of 64 characters and five components each;
  PatientBirthDate (DA): ``YYYYMMDD`` (or the pre-1993 ``YYYY.MM.DD``), not checked against
  the calendar (``00000000`` for "unknown" is common). All single-valued.
- No control characters (C0, DEL, C1) and no bidirectional embedding, override or isolate
  characters (U+202A–U+202E, U+2066–U+2069): they make a name display as something it is not.
  ESC is allowed (ISO 2022 code extensions), and so are the bidi *marks* (LRM, RLM, ALM) a
  right-to-left keyboard inserts; outputs strip both (``printable``). Trailing spaces and NUL
  padding are padding, not content.

Out (``outgoing_*``): values stored before these checks existed must still export. Every
output clips a value to its VR, drops characters ``printable`` drops, and replaces a UID that
is not one with a UID derived from it (``2.25.<UUID v5>``: the same on every build, so a
resend is the same object).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from medai.core.errors import MedaiError
from medai.platform.records.printable import printable, printable_tree

UID_MAX = 64
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_DA = re.compile(r"^(\d{8}|\d{4}\.\d{2}\.\d{2})$")
_DA8 = re.compile(r"^\d{8}$")  # what goes out: the pre-1993 form is not sent
_TM = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")
_CS = re.compile(r"^[A-Z0-9 _]*$")
# C0 but ESC, DEL, C1, bidi embeddings/overrides/isolates: never part of a name or an id
_REFUSED = re.compile(r"[\x00-\x1a\x1c-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
META_UIDS = ("MediaStorageSOPInstanceUID", "MediaStorageSOPClassUID")
TEXT_LIMITS = {"PatientID": 64, "IssuerOfPatientID": 64, "AccessionNumber": 16}
PN_GROUP_MAX, PN_GROUPS, PN_COMPONENTS = 64, 3, 5
_REPAIRED = uuid.UUID("6f0c2b1e-9d4a-5e7f-8a3b-2c1d0e9f8a7b")  # medai's namespace for them


class IdentityError(MedaiError, ValueError):
    """A DICOM header that cannot be read, or that lacks what grouping needs (re-exported by
    ``identity``, whose readers raise it)."""

    code = "invalid"


class InvalidAttribute(IdentityError):
    """An identity attribute that breaks its VR's rules: the instance is refused, naming the
    attribute (``keyword``) and the rule (``why``), never the value."""

    code = "invalid_dicom_attribute"

    def __init__(self, keyword: str, why: str) -> None:
        super().__init__(f"{keyword}: {why}")
        self.keyword, self.why = keyword, why


# --- in ---------------------------------------------------------------------------------------


def _raw(ds: Any, keyword: str) -> list[str]:
    """The values of an attribute as text, padding removed ([] when absent or empty)."""
    try:
        value = ds.get(keyword)
    except Exception:  # broad: pydicom raises many types on a malformed element (InvalidAttribute)
        raise InvalidAttribute(keyword, "cannot be read") from None
    if value is None:
        return []
    values = (
        list(value)
        if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue"
        else [value]
    )
    out = [str(v).rstrip(" \x00") for v in values]
    return [] if out == [""] else out


def _single(ds: Any, keyword: str) -> str:
    values = _raw(ds, keyword)
    if len(values) > 1:
        raise InvalidAttribute(keyword, f"has {len(values)} values; one is allowed")
    return values[0] if values else ""


def _no_control(keyword: str, value: str) -> None:
    if _REFUSED.search(value):
        raise InvalidAttribute(keyword, "contains control or bidi override characters")


def is_uid(value: str) -> bool:
    """A DICOM UID: at most 64 characters, digits and dots, no empty component (leading
    zeros tolerated, see the module's docstring)."""
    return len(value) <= UID_MAX and _UID.match(value) is not None


class InvalidUID(InvalidAttribute):
    """A Study, Series or SOP Instance UID, or a SOP Class UID, that is not a UID: the
    instance cannot be identified, as when the UID is absent, so the node answers as it does
    for an absent one (0xA900 *Data Set does not match SOP Class*: the IOD requires each as a
    Type 1 UID), not with the "cannot understand" of another attribute."""


def check_uid(keyword: str, value: str) -> None:
    if not value:
        return  # absent: ``DicomIdentity.missing`` names it
    if len(value) > UID_MAX:
        raise InvalidUID(keyword, f"longer than {UID_MAX} characters")
    if not _UID.match(value):
        raise InvalidUID(keyword, "not a UID (digits and dots, no empty component)")


def check_text(keyword: str, value: str, limit: int) -> None:
    _no_control(keyword, value)
    if len(value) > limit:
        raise InvalidAttribute(keyword, f"longer than {limit} characters")


def check_person_name(keyword: str, value: str) -> None:
    _no_control(keyword, value)
    groups = value.split("=")
    if len(groups) > PN_GROUPS:
        raise InvalidAttribute(keyword, f"more than {PN_GROUPS} component groups")
    for group in groups:
        if len(group) > PN_GROUP_MAX:
            raise InvalidAttribute(
                keyword, f"a component group longer than {PN_GROUP_MAX} characters"
            )
        if group.count("^") >= PN_COMPONENTS:
            raise InvalidAttribute(keyword, f"more than {PN_COMPONENTS} name components")


def check_date(keyword: str, value: str) -> None:
    if value and not _DA.match(value):
        raise InvalidAttribute(keyword, "not a DICOM date (YYYYMMDD)")


def check(ds: Any) -> None:
    """Raise ``InvalidAttribute`` for the first identity attribute of ``ds`` (a dataset read
    with its file meta) that breaks its rules."""
    meta = getattr(ds, "file_meta", None)
    for keyword in UIDS:
        check_uid(keyword, _single(ds, keyword))
    for keyword in META_UIDS if meta is not None else ():
        check_uid(keyword, _single(meta, keyword))
    for keyword, limit in TEXT_LIMITS.items():
        check_text(keyword, _single(ds, keyword), limit)
    check_person_name("PatientName", _single(ds, "PatientName"))
    check_date("PatientBirthDate", _single(ds, "PatientBirthDate"))


# --- out --------------------------------------------------------------------------------------


def outgoing_uid(value: str | None) -> str:
    """``value`` when it is a UID; else (a row or file from before ``check``) a valid UID
    derived from it, the same every time; "" stays ""."""
    text = str(value or "").strip(" \x00")
    if not text or is_uid(text):
        return text
    return f"2.25.{uuid.uuid5(_REPAIRED, text).int}"


def outgoing_text(value: Any, limit: int) -> str:
    """One line of text for an LO/SH/CS-like field: printable, no value delimiter, clipped."""
    return printable(str(value or "")).replace("\\", " ").strip()[:limit].rstrip()


def outgoing_person_name(value: Any) -> str:
    """A DICOM PN that any receiver takes: printable, at most three groups of five
    components, each group clipped to 64 characters."""
    text = printable(str(value or "")).replace("\\", " ").strip()
    groups = []
    for group in text.split("=")[:PN_GROUPS]:
        parts = group.split("^")
        kept = "^".join(
            parts[: PN_COMPONENTS - 1] + ["".join(parts[PN_COMPONENTS - 1 :])]
            if len(parts) > PN_COMPONENTS
            else parts
        )
        groups.append(kept[:PN_GROUP_MAX])
    return "=".join(groups).rstrip("=")


def _matching(value: Any, pattern: re.Pattern[str], limit: int) -> str:
    text = outgoing_text(value, limit)
    return text if pattern.match(text) else ""


# attribute -> how it goes out, for a dataset copied from a stored header
_PN = ("PatientName", "ReferringPhysicianName")
_LO = {**TEXT_LIMITS, "StudyID": 16}
_DATES = ("PatientBirthDate", "StudyDate", "SeriesDate", "ContentDate")
_TIMES = ("StudyTime", "SeriesTime", "ContentTime")
_CODES = ("PatientSex", "Modality", "BodyPartExamined")
_OUT_UIDS = (*UIDS, "FrameOfReferenceUID")


def _first(value: Any) -> Any:
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return value[0] if len(value) else ""
    return value


def _outgoing_value(keyword: str, value: Any) -> str:
    value = _first(value)
    if keyword in _PN:
        return outgoing_person_name(value)
    if keyword in _LO:
        return outgoing_text(value, _LO[keyword])
    if keyword in _DATES:
        return _matching(value, _DA8, 8)
    if keyword in _TIMES:
        return _matching(value, _TM, 16)
    if keyword in _CODES:
        return _matching(str(value or "").upper(), _CS, 16)
    return outgoing_uid(value)


def outgoing_header(ds: Any) -> Any:
    """A copy of a stored header whose identity attributes any PACS takes (``ds`` is left
    as it is; only the elements replaced here are new, the others are shared)."""
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset

    out = Dataset()
    for element in ds:
        out.add(element)
    if hasattr(ds, "file_meta"):
        out.file_meta = ds.file_meta
    for keyword in (*_PN, *_LO, *_DATES, *_TIMES, *_CODES, *_OUT_UIDS):
        if keyword not in ds:
            continue
        element = ds[keyword]
        value = _outgoing_value(keyword, element.value)
        out[element.tag] = DataElement(element.tag, element.VR, value or None)
    return out


_STUDY_UIDS = ("study_uid", "series_uid", "sop_uid", "sop_class")


def outgoing_study(study: dict[str, Any]) -> dict[str, Any]:
    """A study's dict (``listing.as_dict``) as outputs may print or send it: every text
    printable, and its DICOM identity's UIDs, name, PatientID and accession as DICOM allows
    (rows stored before the checks on the way in may hold anything)."""
    out = printable_tree(study)
    d = out.get("dicom")
    if not isinstance(d, dict):
        return out
    d = {**d, **{k: outgoing_uid(d[k]) or None for k in _STUDY_UIDS if d.get(k)}}
    if d.get("patient_name"):
        d["patient_name"] = outgoing_person_name(d["patient_name"]) or None
    for key, limit in (
        ("patient_id", TEXT_LIMITS["PatientID"]),
        ("accession", TEXT_LIMITS["AccessionNumber"]),
    ):
        if d.get(key):
            d[key] = outgoing_text(d[key], limit) or None
    d["series"] = (
        [_outgoing_series(s) for s in d.get("series") or []]
        if d.get("series") is not None
        else None
    )
    return {**out, "dicom": d}


def _outgoing_series(series: dict[str, Any]) -> dict[str, Any]:
    return {
        **series,
        "series_uid": outgoing_uid(series.get("series_uid")),
        "instances": [
            {
                **i,
                "sop_uid": outgoing_uid(i.get("sop_uid")),
                "sop_class": outgoing_uid(i.get("sop_class")),
            }
            for i in series.get("instances") or []
        ],
    }


__all__ = [
    "InvalidAttribute",
    "check",
    "is_uid",
    "outgoing_header",
    "outgoing_person_name",
    "outgoing_study",
    "outgoing_text",
    "outgoing_uid",
]
