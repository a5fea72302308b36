"""The DICOM identity of a study: who (PatientID, PatientName; PatientSex, PatientBirthDate and
PatientAge for the patient's context, ``platform.worklist.patient_context``), which order
(AccessionNumber), which study, series and instance (their UIDs) and what the image shows (Modality,
ViewPosition, BodyPartExamined, SeriesDescription).

Read from the header only (the pixel data is never parsed here, and the caller has already
bounded the file), kept with the patient's ID and name encrypted like other patient text,
and given back, decrypted, to every view and export. Log lines never carry any of it.
"""

from __future__ import annotations

import io
import json
import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from medai.platform.dicom import dicom_values
from medai.platform.dicom.dicom_values import IdentityError
from medai.platform.records.crypto import InvalidToken, cipher
from medai.platform.records.printable import printable
from medai.platform.records.tables import DicomInstance, Study
from medai.services import imaging as imaging_service

log = logging.getLogger("medai.integration")
_DATE = re.compile(r"^\d{8}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
REQUIRED = {
    "study_uid": "StudyInstanceUID",
    "series_uid": "SeriesInstanceUID",
    "sop_uid": "SOPInstanceUID",
    "sop_class": "SOPClassUID",
}


@dataclass(frozen=True)
class DicomIdentity:
    patient_id: str = ""
    patient_name: str = ""  # the DICOM PN value (Family^Given^Middle^Prefix^Suffix)
    issuer: str = ""  # IssuerOfPatientID: whose PatientID it is
    birth_date: str = ""  # PatientBirthDate, DICOM DA (YYYYMMDD)
    accession: str = ""
    study_uid: str = ""
    series_uid: str = ""
    sop_uid: str = ""
    sop_class: str = ""
    study_date: str = ""
    modality: str = ""
    view_position: str = ""
    body_part: str = ""
    series_description: str = ""
    study_description: str = ""
    protocol_name: str = ""
    series_number: int | None = None
    instance_number: int | None = None
    sex: str = ""  # PatientSex (M, F, O; anything else is kept as unknown)
    age: str = ""  # PatientAge, DICOM AS ("054Y"): the age when no birth date is given
    # the order's clinical question as the modality copied it into the header (``QUESTION``)
    clinical_question: str = ""

    def missing(self) -> list[str]:
        """The DICOM keywords of the UIDs this instance lacks (grouping needs them all)."""
        return [kw for attr, kw in REQUIRED.items() if not getattr(self, attr)]

    @property
    def descriptions(self) -> tuple[str, ...]:
        return (self.series_description, self.study_description, self.protocol_name)


def _text(ds: Any, keyword: str, limit: int) -> str:
    try:
        value = ds.get(keyword, "")
    except Exception as exc:  # broad: pydicom raises many types: taken as absent (logged)
        log.warning("DICOM %s unreadable (%s): taken as absent", keyword, type(exc).__name__)
        return ""
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else ""
    return _CONTROL.sub("", str(value)).strip(" \x00")[:limit]


def _int(ds: Any, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _date(ds: Any, keyword: str) -> str:
    date = _text(ds, keyword, 8)
    return date if _DATE.match(date) else ""


# Where a modality copies the order's clinical question (the RIS sends it with the order; the
# worklist gives it to the modality), most specific first: the reason for the requested
# procedure, the (retired) reason for the study, the admitting diagnoses, and at last what
# was requested. Each is read from the dataset, then from its Request Attributes Sequence
# (0040,0275), where many modalities put the order's attributes. The first found is the
# question: the others say the same less precisely.
QUESTION = (
    "ReasonForTheRequestedProcedure",
    "ReasonForStudy",
    "AdmittingDiagnosesDescription",
    "RequestedProcedureDescription",
)
QUESTION_CHARS = 1024  # the upload form's question may be as long


def _question(ds: Any) -> str:
    try:
        requests = list(ds.get("RequestAttributesSequence") or [])[:1]
    except Exception as exc:  # broad: pydicom raises many types on a malformed sequence (logged)
        log.warning("DICOM RequestAttributesSequence unreadable (%s): none", type(exc).__name__)
        requests = []
    for keyword in QUESTION:
        for source in (ds, *requests):
            try:
                value = source.get(keyword)
            except Exception as exc:  # broad: pydicom raises many types: skipped (logged)
                log.warning("DICOM %s unreadable (%s): skipped", keyword, type(exc).__name__)
                continue
            if value in (None, ""):
                continue
            if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
                value = "; ".join(str(v) for v in value if str(v).strip())
            # free text a person reads: no control or bidi characters (``printable``)
            text = printable(str(value)).strip(" \x00")
            if text:
                return text[:QUESTION_CHARS]
    return ""


def from_dataset(ds: Any) -> DicomIdentity:
    """The identity of one instance (the file meta fills in a SOP class or instance UID the
    dataset itself lacks)."""
    meta = getattr(ds, "file_meta", None)
    return DicomIdentity(
        patient_id=_text(ds, "PatientID", 64),
        patient_name=_text(ds, "PatientName", 324),
        issuer=_text(ds, "IssuerOfPatientID", 64),
        birth_date=_date(ds, "PatientBirthDate"),
        accession=_text(ds, "AccessionNumber", 16),
        study_uid=_text(ds, "StudyInstanceUID", 64),
        series_uid=_text(ds, "SeriesInstanceUID", 64),
        sop_uid=_text(ds, "SOPInstanceUID", 64)
        or (_text(meta, "MediaStorageSOPInstanceUID", 64) if meta is not None else ""),
        sop_class=_text(ds, "SOPClassUID", 64)
        or (_text(meta, "MediaStorageSOPClassUID", 64) if meta is not None else ""),
        study_date=_date(ds, "StudyDate"),
        modality=_text(ds, "Modality", 16).upper(),
        view_position=_text(ds, "ViewPosition", 16).upper(),
        body_part=_text(ds, "BodyPartExamined", 64).upper(),
        series_description=_text(ds, "SeriesDescription", 64),
        study_description=_text(ds, "StudyDescription", 64),
        protocol_name=_text(ds, "ProtocolName", 64),
        series_number=_int(ds, "SeriesNumber"),
        instance_number=_int(ds, "InstanceNumber"),
        sex=_text(ds, "PatientSex", 16).upper()[:1],
        age=_text(ds, "PatientAge", 4).upper(),
        clinical_question=_question(ds),
    )


def is_dicom(data: bytes) -> bool:
    """A Part 10 file: the 128-byte preamble, then ``DICM``."""
    return len(data) >= 132 and data[128:132] == b"DICM"


def read(data: bytes) -> DicomIdentity | None:
    """The identity in a stored file's header (its plaintext bytes), or None when the file
    is not DICOM. Call it after the file's limits were checked
    (``services.imaging.check_upload``)."""
    if not is_dicom(data):
        return None
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except Exception as exc:  # broad: pydicom raises many types on a bad header (IdentityError)
        raise IdentityError(f"malformed DICOM header ({type(exc).__name__})") from None
    dicom_values.check(ds)  # InvalidAttribute: a UID, name or ID that breaks its VR
    return from_dataset(ds)


def checked_read(data: bytes) -> DicomIdentity | None:
    """What every way in does with a file's plaintext before filing it: its limits checked
    from its header (``ImageTooLarge`` for a bomb, before anything decodes a pixel), then
    its identity (``read``)."""

    imaging_service.check_upload(io.BytesIO(data))
    return read(data)


# --- at rest ----------------------------------------------------------------------------------


def seal(text: str) -> bytes | None:
    return cipher().encrypt(text) if text else None


def unseal(token: bytes | None, study_id: int) -> str | None:
    if token is None:
        return None
    try:
        return cipher().decrypt(token)
    except InvalidToken:  # a removed key: say so in the log, never fail the view
        log.warning(
            "study %s: a patient attribute cannot be decrypted with the present keys", study_id
        )
        return None


def seal_json(value: dict[str, Any]) -> bytes:
    return cipher().encrypt(json.dumps(value, ensure_ascii=False, sort_keys=True))


def unseal_json(token: bytes | None, study_id: int) -> dict[str, Any] | None:
    text = unseal(token, study_id)
    return json.loads(text) if text else None


# --- one patient per study ---------------------------------------------------------------------

PATIENT_FIELDS = {
    "patient_id": "PatientID",
    "issuer": "IssuerOfPatientID",
    "patient_name": "PatientName",
    "birth_date": "PatientBirthDate",
    "accession": "AccessionNumber",
}
"""What an instance must share with the study it joins: who the patient is (ID and its issuer,
name, birth date) and which order it answers (accession)."""


def patient_identity(identity: DicomIdentity) -> dict[str, str]:
    return {attr: getattr(identity, attr) for attr in PATIENT_FIELDS}


_ONE_I = str.maketrans({"İ": "i", "I": "i", "ı": "i"})
_DOT_ABOVE = "\u0307"


def fold_name(text: str) -> str:
    """A name component as it is compared (never stored or shown): letter case aside, with
    Turkish in mind. ``str.casefold`` knows only the ASCII pairing (``İ`` becomes ``i̇``, ``ı``
    stays ``ı``), so ``ŞAHİN`` and ``şahin`` would differ. The Turkish pairing (İ/i, I/ı) is
    not enough either: a PACS or RIS that upper- or lower-cases the ASCII way writes ``AYDIN``
    for ``Aydın`` and ``aydin`` back, and whether a given system did is unknowable from the
    value. So the four letters İ, I, ı, i are one letter here, after canonical composition (a
    decomposed ``I`` + combining dot is ``İ``; the ``i̇`` Python's ``lower`` leaves is ``i``).
    Every casing of one name then compares equal, whatever convention each side used; the
    only names it can equate that differ otherwise are ones differing solely in an i's dot,
    and the PatientID, issuer, birth date and accession (compared exactly) still have to
    agree. No other letter is folded: ``Ş`` is not ``S``, ``Ö`` is not ``O``."""
    text = unicodedata.normalize("NFC", text).translate(_ONE_I).casefold()
    return text.replace("i" + _DOT_ABOVE, "i")


def _same_name(a: str, b: str) -> bool:
    """Two PN values name the same person: every component group (alphabetic, ideographic,
    phonetic) that both write agrees, letter case (Turkish too: ``fold_name``), spaces and
    empty trailing components aside (``YILMAZ^AYSE^^`` is ``Yilmaz^Ayse``, ``ŞAHİN^GÜLŞEN`` is
    ``şahin^gülşen``), and they share at least one group, or both are empty. ``=山田^太郎`` is
    not ``=佐藤^花子``, and a name written only in one script is not taken for one written
    only in another."""

    def groups(pn: str) -> list[tuple[str, ...]]:
        out = []
        for group in (pn.split("=") + ["", ""])[:3]:
            parts = [fold_name(p.strip()) for p in group.split("^")]
            while parts and not parts[-1]:
                parts.pop()
            out.append(tuple(parts))
        return out

    ga, gb = groups(a), groups(b)
    both = [(x, y) for x, y in zip(ga, gb, strict=True) if x and y]
    if not both:
        return not any(ga) and not any(gb)
    return all(x == y for x, y in both)


def disagreements(known: dict[str, str], incoming: dict[str, str]) -> list[str]:
    """The DICOM keywords on which an incoming instance names another patient or order than
    the study (``known``; a key it lacks was not recorded and is not compared). An attribute
    one side has and the other lacks disagrees: an instance without a PatientID does not join
    a study that has one."""
    out = []
    for attr, keyword in PATIENT_FIELDS.items():
        if attr not in known:
            continue
        a, b = (known.get(attr) or "").strip(), (incoming.get(attr) or "").strip()
        same = _same_name(a, b) if attr == "patient_name" else a == b
        if not same:
            out.append(keyword)
    return out


def known_patient(study: Study) -> dict[str, str] | None:
    """The patient identity a study's instances must share (None: the study has no DICOM
    identity to compare). A study filed before its whole identity was recorded compares the
    PatientID, name and accession it kept."""
    sealed = unseal_json(study.patient_identity, study.id)
    if sealed is not None:
        return sealed
    if study.source is None and study.study_uid is None:
        return None
    return {
        "patient_id": unseal(study.patient_key, study.id) or "",
        "patient_name": unseal(study.patient_name, study.id) or "",
        "accession": study.accession or "",
    }


def study_columns(identity: DicomIdentity, source: str) -> dict[str, Any]:
    """The study's identity columns (patient ID and name encrypted; the whole patient identity
    its instances must agree with, sealed, for ``reconcile``)."""
    return {
        "study_uid": identity.study_uid or None,
        "accession": identity.accession or None,
        "patient_key": seal(identity.patient_id),
        "patient_name": seal(identity.patient_name),
        "patient_identity": seal_json(patient_identity(identity)),
        "study_date": identity.study_date or None,
        "source": source,
    }


def instance_row(
    identity: DicomIdentity, study_id: int, sha: str, size: int, calling_ae: str | None
) -> DicomInstance:
    return DicomInstance(
        study_id=study_id,
        sop_uid=identity.sop_uid,
        series_uid=identity.series_uid,
        sop_class=identity.sop_class,
        modality=identity.modality or None,
        view_position=identity.view_position or None,
        body_part=identity.body_part or None,
        series_description=identity.series_description or None,
        series_number=identity.series_number,
        instance_number=identity.instance_number,
        file_sha256=sha,
        file_size=size,
        calling_ae=calling_ae,
    )


# --- for people and exports -------------------------------------------------------------------


def name_parts(pn: str | None) -> dict[str, Any]:
    """A DICOM person name's alphabetic group as family, given (given and middle names),
    prefix, suffix."""
    group = (pn or "").split("=")[0]
    parts = [p.strip() for p in group.split("^")] + [""] * 5
    family, given, middle, prefix, suffix = parts[:5]
    return {
        "family": family,
        "given": [g for g in (given, middle) if g],
        "prefix": [prefix] if prefix else [],
        "suffix": [suffix] if suffix else [],
    }


def display_name(pn: str | None) -> str:
    """How a list or a report prints a DICOM name: ``FAMILY, Given Middle`` (as PACS viewers
    do), the parts that exist only."""
    parts = name_parts(pn)
    given = " ".join([*parts["prefix"], *parts["given"], *parts["suffix"]])
    return ", ".join(p for p in (parts["family"], given) if p)


_SERIES_KEYS = ("modality", "view_position", "body_part", "series_description", "series_number")


def as_dict(
    study: Study,
    instances: list[DicomInstance] | None,
    with_series: bool = True,
    shown_sha: str | None = None,
) -> dict[str, Any] | None:
    """The study's DICOM identity for the API (None for a study that has none): the patient,
    the order, the study, the instance the AI reads (``modality``, ``view_position``,
    ``body_part``, ``series_description``, ``series_uid``, ``sop_uid``) and its series with
    their instances (a worklist row leaves them out). ``shown_sha``: another image than the
    study's file that the caller shows (a signed report's reading)."""
    if study.source is None and not instances:  # an image without a DICOM identity
        return None
    instances = instances or []
    shown = next(
        (i for i in instances if i.file_sha256 == (shown_sha or study.file_sha256)),
        instances[0] if instances else None,
    )
    out: dict[str, Any] = {
        "patient_id": unseal(study.patient_key, study.id),
        "patient_name": unseal(study.patient_name, study.id),
        "accession": study.accession,
        "study_uid": study.study_uid,
        "study_date": study.study_date,
        "source": study.source or "upload",
        "series_uid": shown.series_uid if shown else None,
        "sop_uid": shown.sop_uid if shown else None,
        "sop_class": shown.sop_class if shown else None,
        **{k: getattr(shown, k) if shown else None for k in _SERIES_KEYS},
        "instances": len(instances),
    }
    series: dict[str, dict[str, Any]] = {}
    for i in instances if with_series else []:
        entry = series.setdefault(
            i.series_uid,
            {
                "series_uid": i.series_uid,
                **{k: getattr(i, k) for k in _SERIES_KEYS},
                "instances": [],
            },
        )
        entry["instances"].append(
            {"sop_uid": i.sop_uid, "sop_class": i.sop_class, "number": i.instance_number}
        )
    out["series"] = list(series.values()) if with_series else None
    return out


__all__ = [
    "PATIENT_FIELDS",
    "DicomIdentity",
    "IdentityError",
    "as_dict",
    "disagreements",
    "display_name",
    "fold_name",
    "from_dataset",
    "instance_row",
    "is_dicom",
    "known_patient",
    "name_parts",
    "patient_identity",
    "read",
    "seal",
    "seal_json",
    "study_columns",
    "unseal",
    "unseal_json",
]
