"""The AI's key slices as an IHE Key Image Note: a DICOM Key Object Selection document (KOS,
titled DCM 113000 "Of Interest", CID 7010) that tells the PACS which images of the study the
radiologist should look at first — the slices that carried the AI's decision (the imaging
result's ``read.key_instances``, ``imaging.series``).

When it goes: with the signed report's SR (the outbox's ``signed`` event), never with the
analysis. A key image note in the PACS reads as a person's selection; before sign-off the AI's
slices are only a suggestion, and a reader in the PACS viewer would see them flagged with no
radiologist behind them. After sign-off they still remain the AI's: the note names the model as
the observer that selected them (TID 2010's device observer context: the model's name, version
and content hash) and its description says they are the AI's suggestion, not a diagnosis, and
that the signed report states the findings. A result with no key slices (a series read as
having none of the findings, a refusal) sends no note; neither does one whose decision is normal
(nothing there is "of interest"), nor one whose key slices are every image of the study (a
single film: a selection that selects nothing).

It carries the same patient and study attributes as the SR (the source image's, as every object
medai sends) and references each key image by its SOP class and instance UIDs (frames of a
multi-frame instance by their Referenced Frame Number), in its content and in the Current
Requested Procedure Evidence Sequence. Its UIDs derive from the study, the model and the key
slices, and its times are the analysis's: every rebuild (a retry, an amendment's signature, a
retraction's rejection note listing it) is the same object, which the PACS keeps once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from medai.core.task_registry import Task
from medai.platform.documents.dicom_objects import (
    MANUFACTURER,
    DicomObjectError,
    SourceImage,
    _coded,
    model_of,
    reading_parts,
    uid,
)
from medai.platform.documents.ko import dicom_kos as kos_builder
from medai.services.imaging import decision_of

SERIES_KEY_IMAGES = 9906
OF_INTEREST = ("DCM", "113000", "Of Interest")
WORDS = {
    "en": (
        "Key images selected by the AI ({model}): the slices that carry its suggestion "
        "({labels}). An AI suggestion, not a diagnosis: the radiologist's signed report states "
        "the findings."
    ),
    "tr": (
        "Yapay zekânın seçtiği anahtar görüntüler ({model}): önerisini taşıyan kesitler "
        "({labels}). Yapay zekâ önerisidir, tanı değildir: bulguları radyoloğun imzaladığı "
        "rapor bildirir."
    ),
}


def key_refs(payload: Mapping[str, Any] | None, images: int | None = None) -> list[str]:
    """The key slices of a stored imaging result worth a key image note ("<sop>" or
    "<sop>#<frame>", in the result's order); [] for none (see the module's rules).
    ``images``: how many images the study holds (slices, frames counted): key slices that are
    all of them select nothing (a single film), and make no note either."""

    if not payload or payload.get("refused"):
        return []
    read = payload.get("read") or {}
    keys = list(dict.fromkeys(str(k) for k in read.get("key_instances") or [] if k))
    if not keys:
        return []
    decision = decision_of(dict(payload)) or {}
    if decision.get("state") in ("normal", "none"):
        return []
    held = max(int(read.get("instances_in_series") or 0), images or 0)
    if images is not None and len(keys) >= held:
        return []
    return keys


def split_ref(ref: str) -> tuple[str, int | None]:
    sop, _, frame = ref.partition("#")
    return sop, int(frame) if frame.isdigit() and int(frame) > 0 else None


def _labels(payload: Mapping[str, Any], task: Task | None, lang: str) -> str:

    decision = decision_of(dict(payload)) or {}
    labels = (
        decision.get("candidates")
        if decision.get("state") == "indeterminate"
        else decision.get("stated") or decision.get("positives")
    ) or [decision.get("primary")]
    named = [task.label_name(x, lang) if task else x for x in labels if x]
    return ", ".join(named) or "—"


def key_image_note(
    source: SourceImage,
    payload: Mapping[str, Any],
    images: Sequence[Dataset],
    *,
    created: dt.datetime,
    task: Task | None = None,
    language: str = "tr",
    institution: str | None = None,
    uid_root: str | None = None,
    reading: str = "",
) -> Dataset:
    """The key image note of an imaging result ``payload`` (``key_refs`` names its slices).

    ``images``: a header (no pixels needed) of each key instance, for its UIDs, SOP class and
    size (a key slice whose instance is not among them is left out); ``created``: when the
    analysis finished; ``reading``: which reading of the study (``reading_parts``). Raises
    DicomObjectError when no key slice is left to note."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    model = model_of(payload)
    headers = {str(ds.SOPInstanceUID): ds for ds in images}
    refs = [r for r in key_refs(payload) if split_ref(r)[0] in headers]
    if not refs:
        raise DicomObjectError("the result has no key slices among the images given")
    frames: dict[str, list[int]] = {}
    for ref in refs:
        sop, frame = split_ref(ref)
        wanted = frames.setdefault(sop, [])
        if frame is not None:
            wanted.append(frame)
    references = []
    for sop in frames:  # the result's order: its first key slice first
        image = headers[sop]
        if str(image.StudyInstanceUID) != source.study_instance_uid:
            raise DicomObjectError("a key slice is not of the study")
        references.append(kos_builder.reference(source, image, sop))
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=uid("device", model["content_hash"], root=uid_root),
            name=model["name"][:64],
            manufacturer_name=MANUFACTURER,
            model_name=model["version"][:64],
        ),
    )
    lang = language if language in WORDS else "en"
    content = hd.ko.KeyObjectSelection(
        document_title=_coded(OF_INTEREST),
        referenced_objects=references,
        observer_device_context=device,
        description=WORDS[lang].format(
            model=f"{model['name']} {model['version']}", labels=_labels(payload, task, lang)
        ),
    )
    for item in content[0].ContentSequence:  # a frame of a multi-frame instance, by number
        if item.ValueType == "IMAGE":
            sop = str(item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
            if frames.get(sop):
                item.ReferencedSOPSequence[0].ReferencedFrameNumber = sorted(set(frames[sop]))
    return kos_builder.document(
        references,
        content,
        series_uid=uid("key-images-series", source.study_instance_uid, root=uid_root),
        series_number=SERIES_KEY_IMAGES,
        sop_uid=uid(
            "key-images",
            source.study_instance_uid,
            model["content_hash"],
            *sorted(refs),
            *reading_parts(reading),
            root=uid_root,
        ),
        institution=institution,
        created=created,
        series_description="medai AI key images (AI suggestion, not a diagnosis)",
    )


def read_key_image_note(ds: Dataset) -> dict[str, Any]:
    """What a key image note says, read back through highdicom (tests, delivery checks): its
    title code, the observer devices' names, its description, and the images it references —
    (SOP class, SOP instance, frames) from its content, (SOP class, SOP instance) from its
    evidence."""
    import highdicom as hd

    content = hd.ko.KeyObjectSelectionDocument.from_dataset(ds).content
    title = ds.ConceptNameCodeSequence[0]
    images = []
    for item in content.get_references():
        sop = item.ReferencedSOPSequence[0]
        value = sop.get("ReferencedFrameNumber")
        many = isinstance(value, MultiValue | list)
        frames = [] if value is None else [int(f) for f in (value if many else [value])]
        images.append((str(sop.ReferencedSOPClassUID), str(sop.ReferencedSOPInstanceUID), frames))
    texts = [
        item.TextValue
        for item in ds.ContentSequence
        if item.ValueType == "TEXT" and item.ConceptNameCodeSequence[0].CodeValue == "113012"
    ]
    evidence = [
        (str(sop.ReferencedSOPClassUID), str(sop.ReferencedSOPInstanceUID))
        for study in ds.get("CurrentRequestedProcedureEvidenceSequence") or []
        for series in study.ReferencedSeriesSequence
        for sop in series.ReferencedSOPSequence
    ]
    return {
        "code": (title.CodingSchemeDesignator, title.CodeValue, title.CodeMeaning),
        "observers": [
            str(c.observer_identifying_attributes.name) for c in content.get_observer_contexts()
        ],
        "description": texts[0] if texts else None,
        "images": images,
        "evidence": sorted(evidence),
    }
