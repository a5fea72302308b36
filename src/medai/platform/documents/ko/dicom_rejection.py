"""The IOCM rejection note: a DICOM Key Object Selection document that tells a PACS to reject
objects medai sent it (IHE Imaging Object Change Management): all of them for a study that
was retracted (``platform.reading.retraction``), or an earlier reading's AI objects once a later
reading of the study replaced them (``delivery.payloads.superseding``, issue 67).

The document's title (its Concept Name Code) is one of CID 7011's rejection reasons — a study
filed under the wrong patient or order is (113038, DCM, "Incorrect Modality Worklist Entry"),
one withdrawn for patient safety (113037, DCM, "Rejected for Patient Safety Reasons"), an AI
reading superseded by a later one (113001, DCM, "Rejected for Quality Reasons": see
docs/integration.md for why that code) — and it lists every object rejected: in its content
(one reference each) and in the Current Requested Procedure Evidence Sequence, grouped by
study and series with their SOP class and instance UIDs. It carries the patient and study
attributes the PACS filed those objects under (the source image's, as every object medai
sends), so the PACS matches it to that study. Built with highdicom (``highdicom.ko``); its
UIDs derive from the study, the destination, the reason's time and (for a superseded reading)
the reading that replaced it, so a resend is the same document.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pydicom.dataset import Dataset

from medai.platform.dicom.dicom_values import outgoing_person_name
from medai.platform.documents.dicom_objects import DicomObjectError, SourceImage, _coded, uid
from medai.platform.documents.ko import dicom_kos as kos_builder

SERIES_REJECTION = 9905
INCORRECT_WORKLIST_ENTRY = ("DCM", "113038", "Incorrect Modality Worklist Entry")
PATIENT_SAFETY = ("DCM", "113037", "Rejected for Patient Safety Reasons")
QUALITY = ("DCM", "113001", "Rejected for Quality Reasons")
SUPERSEDED = "superseded"
# CID 7011 (Data Retention Policy Expired 113039 is not a reason medai rejects anything for;
# Rejected for Quality Reasons is IOCM's "replaced by a better acquisition": a reading made
# from part of the study, replaced by a reading of more of it — docs/integration.md)
TITLES = {
    "wrong_patient": INCORRECT_WORKLIST_ENTRY,
    "wrong_study": INCORRECT_WORKLIST_ENTRY,
    "safety": PATIENT_SAFETY,
    SUPERSEDED: QUALITY,
}
DESCRIPTIONS = {
    SUPERSEDED: "Rejected by medai: a later AI reading of the study (more of its instances, "
    "or another type) replaces these AI results",
}
RETRACTED = "Rejected by medai: the study was retracted as entered in error"


def rejection_note(
    source: SourceImage,
    rejected: Sequence[Dataset],
    *,
    reason: str,
    retracted_at: dt.datetime,
    destination: str,
    observer: str | None = None,
    institution: str | None = None,
    uid_root: str | None = None,
    replaced_by: str = "",
) -> Dataset:
    """The KOS rejecting ``rejected`` (the objects medai sent one PACS for the study of
    ``source``), titled by ``reason`` (``retraction.REASONS``, or ``SUPERSEDED``).
    ``retracted_at``: when the rejection was decided (the retraction, or the replacing
    reading's result); ``replaced_by``: for ``SUPERSEDED``, the reading that replaced them
    (``dicom_objects.reading_parts``: one note per replacing reading and destination).
    Raises DicomObjectError when there is nothing to reject or the reason has no CID 7011
    code."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if reason not in TITLES:
        raise DicomObjectError(f"no rejection code for reason {reason!r}")
    refs: dict[str, Dataset] = {}
    for obj in rejected:
        if str(obj.StudyInstanceUID) != source.study_instance_uid:
            raise DicomObjectError("a rejected object is not of the retracted study")
        refs.setdefault(str(obj.SOPInstanceUID), kos_builder.reference(source, obj))
    if not refs:
        raise DicomObjectError("no object to reject")
    references = [refs[k] for k in sorted(refs)]
    person = None
    if observer:
        name = outgoing_person_name(observer)[:63]
        person = hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                name=name if "^" in name else name + "^"
            ),
        )
    content = hd.ko.KeyObjectSelection(
        document_title=_coded(TITLES[reason]),
        referenced_objects=references,
        observer_person_context=person,
        description=DESCRIPTIONS.get(reason, RETRACTED),
    )
    at = retracted_at.isoformat()
    return kos_builder.document(
        references,
        content,
        series_uid=uid("rejection-series", source.study_instance_uid, root=uid_root),
        series_number=SERIES_REJECTION,
        sop_uid=uid(
            "rejection",
            source.study_instance_uid,
            destination,
            at,
            *((SUPERSEDED, replaced_by) if reason == SUPERSEDED else ()),
            root=uid_root,
        ),
        institution=institution,
        created=retracted_at,
        series_description="medai rejection note (IOCM)",
    )


def read_rejection_note(ds: Dataset) -> dict[str, object]:
    """What a rejection note says: its title code and the (SOP class, SOP instance) UIDs it
    rejects, from the Current Requested Procedure Evidence Sequence."""
    title = ds.ConceptNameCodeSequence[0]
    rejected = [
        (str(sop.ReferencedSOPClassUID), str(sop.ReferencedSOPInstanceUID))
        for study in ds.get("CurrentRequestedProcedureEvidenceSequence") or []
        for series in study.ReferencedSeriesSequence
        for sop in series.ReferencedSOPSequence
    ]
    return {
        "code": (title.CodingSchemeDesignator, title.CodeValue, title.CodeMeaning),
        "rejected": sorted(rejected),
    }
