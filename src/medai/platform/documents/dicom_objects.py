"""What every DICOM object medai builds shares, from plain values (no database needed): the
source image it answers (``SourceImage``: patient, study and its evidence reference), stable
UIDs, the series numbers, the content and series times, the manufacturer, the bytes.

Each kind of object is built in its own folder, as highdicom lays them out: ``sr/`` (the AI
findings SR and the signed report SR), ``ko/`` (key images and the IOCM rejection note),
``sc_pm/`` (the heatmap as Secondary Capture, Parametric Map or SEG). UIDs derive from the
source, the model and the reading (``uid``, ``reading_parts``): building an object twice gives
the same instance, so a resend is the same object at the PACS (which keeps the first copy),
and a later reading of the study (instances that arrived after the first, issue 67) is a new
object in a series of its own, never new content under an old UID (the PACS would keep the
old). The earlier reading's objects are then withdrawn by an IOCM rejection note
(``ko.dicom_rejection``, ``delivery.payloads.superseding``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import PYDICOM_ROOT_UID, generate_uid

from medai.core.errors import MedaiError
from medai.platform.dicom.dicom_values import outgoing_header

MANUFACTURER = "medai"
UTF8 = "ISO_IR 192"  # names and report text in Turkish: every object is written in UTF-8
SERIES_AI_SR, SERIES_HEATMAP, SERIES_REPORT, SERIES_HEATMAP_MAP = 9901, 9902, 9903, 9904


SERIES_HEATMAP_REGION = 9907  # the saliency region of a projection film, as a SEG


PRESENT, ABSENT, INDETERMINATE = "present", "absent", "indeterminate"


class DicomObjectError(MedaiError, ValueError):
    """The inputs cannot make this object (a refused result, an unsigned report, ...)."""

    code = "invalid"


@dataclass(frozen=True)
class SourceImage:
    """The image a result is about: the identifiers every object copies (so the PACS files it
    under the same patient and study) and references. Plain values, as the study stores them;
    DICOM formats (dates YYYYMMDD, names Family^Given)."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    modality: str = ""
    patient_id: str = ""
    patient_name: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    accession_number: str = ""
    study_id: str = ""
    study_date: str = ""
    study_time: str = ""
    referring_physician_name: str = ""
    patient_orientation: tuple[str, str] | None = None
    body_part: str = ""
    rows: int | None = None
    columns: int | None = None

    @classmethod
    def from_dataset(cls, ds: Dataset) -> SourceImage:
        """The values of a received DICOM image (its pixels are not needed), as a PACS takes
        them (``outgoing_header``: a file stored before values were checked on the way in may
        hold a 3,000-character name or a UID that is none)."""
        ds = outgoing_header(ds)
        orientation = ds.get("PatientOrientation")
        text = lambda key: str(ds.get(key, "") or "")  # noqa: E731
        return cls(
            study_instance_uid=text("StudyInstanceUID"),
            series_instance_uid=text("SeriesInstanceUID"),
            sop_instance_uid=text("SOPInstanceUID"),
            sop_class_uid=text("SOPClassUID"),
            modality=text("Modality"),
            patient_id=text("PatientID"),
            patient_name=text("PatientName"),
            patient_birth_date=text("PatientBirthDate"),
            patient_sex=text("PatientSex"),
            accession_number=text("AccessionNumber"),
            study_id=text("StudyID"),
            study_date=text("StudyDate"),
            study_time=text("StudyTime"),
            referring_physician_name=text("ReferringPhysicianName"),
            patient_orientation=tuple(orientation)
            if orientation and len(orientation) == 2
            else None,
            body_part=text("BodyPartExamined"),
            rows=ds.get("Rows"),
            columns=ds.get("Columns"),
        )

    def evidence(self) -> Dataset:
        """The source as highdicom's evidence: patient and study attributes and its UIDs."""
        ds = Dataset()
        ds.SpecificCharacterSet = UTF8
        ds.StudyInstanceUID, ds.SeriesInstanceUID = (
            self.study_instance_uid,
            self.series_instance_uid,
        )
        ds.SOPInstanceUID, ds.SOPClassUID = self.sop_instance_uid, self.sop_class_uid
        ds.Modality = self.modality or None
        ds.PatientID, ds.PatientName = self.patient_id, self.patient_name
        ds.PatientBirthDate, ds.PatientSex = self.patient_birth_date, self.patient_sex or None
        ds.AccessionNumber, ds.StudyID = self.accession_number, self.study_id
        ds.StudyDate, ds.StudyTime = self.study_date, self.study_time
        ds.ReferringPhysicianName = self.referring_physician_name
        return ds

    def patient_study(self) -> dict[str, Any]:
        """highdicom's patient and study keyword arguments (empty values stay empty)."""
        return {
            "specific_character_set": UTF8,
            "study_instance_uid": self.study_instance_uid,
            "patient_id": self.patient_id,
            "patient_name": self.patient_name,
            "patient_birth_date": self.patient_birth_date,
            "patient_sex": self.patient_sex or None,
            "accession_number": self.accession_number,
            "study_id": self.study_id,
            "study_date": self.study_date or None,
            "study_time": self.study_time or None,
            "referring_physician_name": self.referring_physician_name,
        }


def uid(kind: str, *parts: object, root: str | None = None) -> str:
    """A UID derived from what the object is (kind, study, model, version ...): the same
    inputs give the same UID on every run and every machine (pydicom hashes the parts under
    ``root``, a hospital's own UID root or pydicom's)."""
    return generate_uid(
        prefix=root or PYDICOM_ROOT_UID, entropy_srcs=["medai", kind, *map(str, parts)]
    )


def reading_parts(reading: str) -> tuple[str, ...]:
    """What a reading adds to the UIDs of its AI objects (``uid``'s parts). ``reading`` is
    ``delivery.payloads.reading_tag``'s: "" for a study's first reading by a model, which
    keeps the UIDs medai gave before readings had UIDs of their own (objects a PACS holds
    from then are still the ones a later rejection names), else the reading's key
    (``AIResultRow.reading``, unique per study and model): each later reading's objects are
    new instances, and the same reading built again is the same object."""
    return ("reading", reading) if reading else ()


def model_of(payload: Mapping[str, Any]) -> dict[str, str]:
    model = payload.get("model") or {}
    missing = [k for k in ("name", "version", "content_hash") if not model.get(k)]
    if missing:
        raise DicomObjectError(f"the result names no model {', '.join(missing)}")
    return {k: str(model[k]) for k in ("name", "version", "content_hash")}


def _coded(code: tuple[str, str, str]):
    from highdicom.sr import CodedConcept

    scheme, value, meaning = code
    return CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def utc_naive(when: dt.datetime) -> dt.datetime:
    """DICOM dates and times carry no zone: an aware time is written in UTC (and the object
    says so in TimezoneOffsetFromUTC), a naive one as given."""
    return when.astimezone(dt.UTC).replace(tzinfo=None) if when.tzinfo else when


def content_times(when: dt.datetime) -> dict[str, Any]:
    """highdicom's content and series date/time arguments for ``when`` (whole seconds)."""
    at = utc_naive(when).replace(microsecond=0)
    return {
        "content_date": at.date(),
        "content_time": at.time(),
        "series_date": at.date(),
        "series_time": at.time(),
    }


def pin_times(ds: Dataset, when: dt.datetime) -> None:
    """Times highdicom takes from the clock, set to the object's own (a rebuilt object is
    byte for byte the same)."""
    ds.InstanceCreationDate, ds.InstanceCreationTime = ds.ContentDate, ds.ContentTime
    for item in ds.get("ContributingEquipmentSequence") or []:
        if "ContributionDateTime" in item:
            item.ContributionDateTime = utc_naive(when).strftime("%Y%m%d%H%M%S")
    if when.tzinfo:
        ds.TimezoneOffsetFromUTC = "+0000"


def save_bytes(ds: Dataset) -> bytes:
    """The object as a DICOM file (PS3.10), e.g. for a spool or a test."""
    import io

    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
