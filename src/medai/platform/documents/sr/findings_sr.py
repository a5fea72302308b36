"""The AI's findings as a DICOM SR.

- ``findings_sr``: a Comprehensive SR following TID 1500 (Imaging Measurement Report) with one
  measurement group per label of the study's decision: the label's code (``Task.codes``), its
  probability, the operating threshold and the decision (Present / Absent / Indeterminate,
  with the decision's basis), the algorithm (TID 4019: model name, version, content hash),
  referencing the source image. AI output is a suggestion: CompletionFlag PARTIAL,
  VerificationFlag UNVERIFIED, PreliminaryFlag PRELIMINARY.
- ``read_findings_sr``: the findings of such an SR read back (tests, delivery checks).

What every DICOM object shares (UIDs, times, the source) is ``documents.dicom_objects``'s."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, cast

from pydicom.dataset import Dataset

from medai.core.task_registry import PRIVATE_SCHEME, Task
from medai.core.task_registry import get as get_task
from medai.platform.documents.dicom_objects import (
    ABSENT,
    INDETERMINATE,
    MANUFACTURER,
    PRESENT,
    SERIES_AI_SR,
    DicomObjectError,
    SourceImage,
    _coded,
    content_times,
    model_of,
    pin_times,
    reading_parts,
    uid,
)
from medai.platform.records.printable import printable
from medai.services.imaging import decision_of
from medai.services.reports import read_sentences

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

    # pydicom's table: scheme -> keyword -> {code: (meaning, context groups)}
    table = cast(dict[str, dict[str, tuple]], concepts["DCM"])
    for entries in table.values():
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
        code = cast("hd.sr.CodedConcept", group.finding_type)  # medai's groups name a finding
        numbers = {m.name.value: float(m.value) for m in group.get_measurements()}
        values: dict[tuple[str, str], Any] = {  # coded values (highdicom types them as numbers)
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
