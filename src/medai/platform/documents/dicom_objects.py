"""AI results as DICOM objects for the PACS, from plain values (no database needed).

- ``findings_sr``: a Comprehensive SR following TID 1500 (Imaging Measurement Report) with one
  measurement group per label of the study's decision: the label's code (``Task.codes``), its
  probability, the operating threshold and the decision (Present / Absent / Indeterminate,
  with the decision's basis), the algorithm (TID 4019: model name, version, content hash),
  referencing the source image. AI output is a suggestion: CompletionFlag PARTIAL,
  VerificationFlag UNVERIFIED, PreliminaryFlag PRELIMINARY.
- ``read_findings_sr``: the findings of such an SR read back (tests, delivery checks).

The heatmap is ``dicom_heatmap``'s, the signed report ``dicom_report``'s. UIDs derive from the
source, the model and the reading (``uid``, ``reading_parts``): building an object twice gives
the same instance, so a resend is the same object at the PACS (which keeps the first copy),
and a later reading of the study (instances that arrived after the first, issue 67) is a new
object in a series of its own, never new content under an old UID (the PACS would keep the
old). The earlier reading's objects are then withdrawn by an IOCM rejection note
(``dicom_rejection``, ``delivery.payloads.superseding``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import PYDICOM_ROOT_UID, generate_uid

from medai.core.errors import MedaiError
from medai.core.task_registry import PRIVATE_SCHEME, Task
from medai.core.task_registry import get as get_task
from medai.platform.dicom.dicom_values import outgoing_header
from medai.platform.records.printable import printable
from medai.services.imaging import decision_of
from medai.services.reports import read_sentences

MANUFACTURER = "medai"
UTF8 = "ISO_IR 192"  # names and report text in Turkish: every object is written in UTF-8
SERIES_AI_SR, SERIES_HEATMAP, SERIES_REPORT, SERIES_HEATMAP_MAP = 9901, 9902, 9903, 9904
SERIES_HEATMAP_REGION = 9907  # the saliency region of a projection film, as a SEG
PRESENT, ABSENT, INDETERMINATE = "present", "absent", "indeterminate"
# private concepts of the findings SR (declared in the document with the label codes)
BASIS = (PRIVATE_SCHEME, "BASIS", "Decision basis")
FRAGILE = (PRIVATE_SCHEME, "FRAGILE", "Operating point from few validation images")
# what each basis (``LabelDecision.basis``) means, as the basis code's meaning (at most 64)
BASES = {
    "above_threshold": "Above operating threshold",
    "implied": "Implied by a sub-finding",
    "most_likely": "Most likely (none passed)",
    "below_threshold": "Below threshold",
    "excluded": "Excluded by a stronger finding",
    "not_top": "Not the top class",
    "candidate": "Undecided: one of the candidates the model could not separate",
    "conflict": "Conflict: the normal label and a finding both passed",
    "outweighed": "Passed, but the normal label outweighed it by the model's lead",
    "indeterminate": "Indeterminate",
}  # what results stored before "candidate" said


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


def finding_rows(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each label's row (label, probability, threshold, state, basis, fragile) as the stored
    result's decision states it (``services.imaging.decision_of``, results stored before
    states existed included): present, absent or indeterminate with why, read and never
    derived here from probabilities."""

    if payload.get("refused"):
        raise DicomObjectError("a refused result has no findings to send")
    decision = decision_of(dict(payload))
    rows = (decision or {}).get("labels") or []
    if not rows:
        raise DicomObjectError("the result has no findings")
    return [
        {
            "label": row["label"],
            "probability": float(row["probability"]),
            "threshold": float(row["threshold"]),
            "basis": row["basis"],
            "fragile": bool(row.get("fragile")),
            "state": row["state"],
        }
        for row in rows
    ]


def _procedure(modality: str):
    from pydicom.sr.codedict import codes

    if modality in ("CR", "DX", "DR", "RG", "XA", "RF"):
        return codes.LN.XRUnspecifiedBodyRegion
    if modality == "MR":
        return codes.LN.MRIUnspecifiedBodyRegion
    if modality == "CT":
        return codes.LN.CTUnspecifiedBodyRegion
    return codes.SCT.ImagingProcedure


def _modality_code(modality: str):
    """The acquisition modality as a code (CID 29): DICOM's own code for the modality."""
    from pydicom.sr._concepts_dict import concepts

    for entries in concepts["DCM"].values():
        if modality in entries:
            return _coded(("DCM", modality, entries[modality][0]))
    return _coded(("DCM", "OT", "Other"))


def _image_library(source: SourceImage):
    """TID 1600 Image Library naming the source image (OHIF lists it from here); built from
    the plain values, since highdicom's needs the image's geometry attributes."""
    from highdicom.sr import CodeContentItem as CodeItem
    from highdicom.sr import (
        CodedConcept,
        ContainerContentItem,
        ContentSequence,
        ImageContentItem,
        NumContentItem,
    )
    from pydicom.sr.codedict import codes

    acq = "HAS ACQ CONTEXT"
    image = ImageContentItem(
        name=_coded(("SCT", "260753009", "Source")),
        referenced_sop_class_uid=source.sop_class_uid,
        referenced_sop_instance_uid=source.sop_instance_uid,
        relationship_type="CONTAINS",
    )
    image.ContentSequence = ContentSequence(
        [
            CodeItem(
                name=codes.DCM.Modality,
                value=_modality_code(source.modality),
                relationship_type=acq,
            )
        ]
    )
    pixels = CodedConcept(value="{pixels}", meaning="Pixels", scheme_designator="UCUM")
    for name, value in (
        (codes.DCM.PixelDataRows, source.rows),
        (codes.DCM.PixelDataColumns, source.columns),
    ):
        if value:
            image.ContentSequence.append(
                NumContentItem(name=name, value=int(value), unit=pixels, relationship_type=acq)
            )
    group = ContainerContentItem(name=codes.DCM.ImageLibraryGroup, relationship_type="CONTAINS")
    group.ContentSequence = ContentSequence([image])
    library = ContainerContentItem(name=codes.DCM.ImageLibrary, relationship_type="CONTAINS")
    library.ContentSequence = ContentSequence([group])
    return library


def coding_schemes():
    """The private scheme the documents use, declared (CodingSchemeIdentificationSequence)."""
    from highdicom.coding_schemes import CodingSchemeIdentificationItem

    return [
        CodingSchemeIdentificationItem(
            designator=PRIVATE_SCHEME,
            name="medai finding labels and decision concepts",
            responsible_organization="medai project",
        )
    ]


def read_notes(payload: Mapping[str, Any], task: Task) -> list[str]:
    """The series reading's words for a PACS reader (English, ``reporting.series_words``): the
    slices of a small lesion the AI did not decide and why, and every series of the study
    read or named with why not — what the page and the draft say too."""
    notes = read_sentences(payload.get("read"), task.name, "en")
    return [printable(n)[:1024] for n in notes]


def findings_sr(
    source: SourceImage,
    payload: Mapping[str, Any],
    *,
    created: dt.datetime,
    task: Task | None = None,
    uid_root: str | None = None,
    institution: str | None = None,
    reading: str = "",
) -> Dataset:
    """The TID 1500 SR of an imaging result ``payload`` (the stored ImagingResult JSON).

    ``created``: when the analysis finished (content date/time; a resend gives the same
    object); ``reading``: which reading of the study it is (``reading_parts``). Raises
    DicomObjectError for a refused result or one without its model."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    model = model_of(payload)
    task = task or get_task(str(payload.get("task")))
    rows = finding_rows(payload)
    sr_uid = uid(
        "ai-sr",
        source.sop_instance_uid,
        model["content_hash"],
        model["version"],
        *reading_parts(reading),
        root=uid_root,
    )
    algorithm = hd.sr.AlgorithmIdentification(
        name=model["name"],
        version=model["version"],
        parameters=[f"content_hash={model['content_hash']}", f"task={task.name}"],
        manufacturer=MANUFACTURER,
    )
    states = {
        PRESENT: codes.SCT.Present,
        ABSENT: codes.SCT.Absent,
        INDETERMINATE: codes.SCT.Indeterminate,
    }
    groups = []
    for row in rows:
        code = _coded(task.finding_code(row["label"]))
        evaluations = [
            hd.sr.QualitativeEvaluation(code, states[row["state"]]),
            hd.sr.QualitativeEvaluation(
                _coded(BASIS),
                _coded((PRIVATE_SCHEME, row["basis"], BASES.get(row["basis"], row["basis"]))),
            ),
        ]
        if row["fragile"]:
            evaluations.append(hd.sr.QualitativeEvaluation(_coded(FRAGILE), codes.SCT.Yes))
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=uid("ai-sr-finding", sr_uid, row["label"], root=uid_root),
                    identifier=row["label"],
                ),
                finding_type=code,
                algorithm_id=algorithm,
                source_images=[
                    hd.sr.SourceImageForMeasurementGroup(
                        referenced_sop_class_uid=source.sop_class_uid,
                        referenced_sop_instance_uid=source.sop_instance_uid,
                    )
                ],
                measurements=[
                    hd.sr.Measurement(
                        name=codes.DCM.Probability,
                        value=row["probability"],
                        unit=codes.UCUM.NoUnits,
                        algorithm_id=algorithm,
                    ),
                    hd.sr.Measurement(
                        name=codes.DCM.ThresholdValue,
                        value=row["threshold"],
                        unit=codes.UCUM.NoUnits,
                        algorithm_id=algorithm,
                    ),
                ],
                qualitative_evaluations=evaluations,
            )
        )
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=uid("device", model["content_hash"], root=uid_root),
            name=model["name"][:64],
            manufacturer_name=MANUFACTURER,
            model_name=model["version"][:64],
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=_procedure(source.modality),
        imaging_measurements=groups,
    )
    root = report[0]
    at = next(
        i
        for i, item in enumerate(root.ContentSequence)
        if item.ConceptNameCodeSequence[0].CodeValue == "126010"
    )
    root.ContentSequence.insert(at, _image_library(source))
    for note in read_notes(payload, task):  # what the series reading found beyond the codes
        root.ContentSequence.append(
            hd.sr.TextContentItem(name=codes.DCM.Comment, value=note, relationship_type="CONTAINS")
        )
    sr = hd.sr.ComprehensiveSR(
        evidence=[source.evidence()],
        content=report,
        series_instance_uid=uid(
            "ai-sr-series",
            source.study_instance_uid,
            model["content_hash"],
            *reading_parts(reading),
            root=uid_root,
        ),
        series_number=SERIES_AI_SR,
        sop_instance_uid=sr_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=False,
        is_final=False,
        is_verified=False,
        institution_name=institution,
        series_description="medai AI findings (not verified)",
        manufacturer_model_name=model["name"][:64],
        software_versions=model["version"][:64],
        coding_schemes=coding_schemes(),
        **content_times(created),
    )
    pin_times(sr, created)
    return sr


def save_bytes(ds: Dataset) -> bytes:
    """The object as a DICOM file (PS3.10), e.g. for a spool or a test."""
    import io

    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def read_findings_sr(ds: Dataset) -> dict[str, Any]:
    """What a findings SR says, through highdicom's TID 1500 reader: the algorithm and, per
    finding, its code, probability, threshold, decision state and basis."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    report = hd.sr.MeasurementReport.from_sequence([ds])
    states = {
        codes.SCT.Present.value: PRESENT,
        codes.SCT.Absent.value: ABSENT,
        codes.SCT.Indeterminate.value: INDETERMINATE,
    }
    findings, algorithms = [], set()
    for group in report.get_image_measurement_groups():
        code = group.finding_type
        numbers = {m.name.value: float(m.value) for m in group.get_measurements()}
        values = {
            (q.name.scheme_designator, q.name.value): q.value
            for q in group.get_qualitative_evaluations()
        }
        basis = values.get(BASIS[:2])
        text = [
            (item.ConceptNameCodeSequence[0].CodeValue, item.TextValue)
            for item in group[0].ContentSequence
            if item.ValueType == "TEXT"
        ]
        algorithms.add(
            (
                *(
                    next((v for c, v in text if c == key), None)  # TID 4019
                    for key in ("111001", "111003")
                ),
                tuple(v for c, v in text if c == "111002"),
            )
        )
        findings.append(
            {
                "label": group.tracking_identifier,
                "code": (code.scheme_designator, code.value, code.meaning),
                "probability": numbers.get(codes.DCM.Probability.value),
                "threshold": numbers.get(codes.DCM.ThresholdValue.value),
                "state": states.get(values[(code.scheme_designator, code.value)].value),
                "basis": basis.value if basis is not None else None,
                "source": [
                    (str(i.referenced_sop_class_uid), str(i.referenced_sop_instance_uid))
                    for i in group.source_images
                ],
            }
        )
    return {
        "findings": findings,
        "algorithms": sorted(algorithms, key=str),
        "completion": ds.CompletionFlag,
        "verification": ds.VerificationFlag,
        "preliminary": ds.get("PreliminaryFlag"),
    }
