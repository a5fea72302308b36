"""The Grad-CAM heatmap as DICOM for the PACS: a Secondary Capture every viewer shows, and a
Parametric Map where the source has the geometry for one (a SEG of its region where not).

The transparent RGBA overlay the platform stores is laid on the film (``overlay_on_film``) and
sent as an RGB Secondary Capture image in the source's study, in a series of its own (one per
model), referencing the source image (SourceImageSequence) and saying in its derivation
description and comments that it is AI output for the named finding, not a diagnosis.

A tomographic source (MR, CT: a Frame of Reference and an image plane, one frame) also gets
the saliency itself as a Parametric Map (``heatmap_pm``): float values 0..1 on the source's
own grid and geometry, with a real-world value mapping, so a viewer can fuse it with the
slice, threshold it or window it. A projection radiograph has no patient geometry for one,
so it gets the saliency's region instead (``heatmap_region``): a binary Segmentation of where
the map is at least half its peak, which a viewer draws over the film.

Both say what the AI decided of the study (``decision``: the stored result's, as
``services.imaging.decision_of`` gives it): the map of an undecided result names the candidates
the model could not separate, and one of a self-contradicting result (the normal label and a
finding both above their thresholds) says so — in the series description where it fits, and
always in the derivation description and the image comments (``caption``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from medai.core.task_registry import Task
from medai.platform.dicom.dicom_values import outgoing_header
from medai.platform.documents.dicom_objects import (
    MANUFACTURER,
    SERIES_HEATMAP,
    SERIES_HEATMAP_MAP,
    SERIES_HEATMAP_REGION,
    DicomObjectError,
    SourceImage,
    content_times,
    model_of,
    pin_times,
    reading_parts,
    uid,
)

PM_GEOMETRY = (
    "FrameOfReferenceUID",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "SliceThickness",
)
_STUDY_TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
)
LO = 64  # the longest a series or content description may be
# the saliency region a projection film's SEG draws: where the map is at least half its peak
REGION_AT = 0.5


def caption(
    label: str, decision: Mapping[str, Any] | None, task: Task | None = None
) -> tuple[list[str], str]:
    """What the heatmap of ``label`` is called and what it says of the AI's decision: (titles,
    longest first, for a 64-character description; the sentence for the comments, '' for a
    decided result). ``decision``: the result's decision (state, candidates, conflict and
    its labels' states), read, never re-derived."""
    d = decision or {}
    named = lambda lab: task.label_name(lab, "en") if task is not None else str(lab)  # noqa: E731
    name = named(label)
    conflict = [str(x) for x in d.get("conflict") or []]
    undecided = (
        [str(x) for x in d.get("candidates") or []] if d.get("state") == "indeterminate" else []
    )
    if not conflict and not undecided:
        return [name], ""
    others = ", ".join(named(x) for x in (conflict or undecided) if x != label)
    everyone = ", ".join(named(x) for x in (conflict or undecided))
    if conflict:
        titles = [
            f"{name}; AI conflict with {others}",
            f"{name}; conflict with {others}",
            f"{name} (AI conflict)",
        ]
        sentence = (
            f"The AI contradicted itself: {everyone} all passed their thresholds"
            + ("; it left them undecided" if undecided else "")
            + "."
        )
    else:
        titles = [
            f"{name}; AI undecided vs {others}",
            f"{name}; undecided vs {others}",
            f"{name} (AI undecided)",
        ]
        sentence = f"The AI was undecided between: {everyone}."
    state = next(
        (
            row.get("state")
            for row in d.get("labels") or []
            if isinstance(row, Mapping) and row.get("label") == label
        ),
        None,
    )
    if state:
        sentence += f" AI decision for {name}: {state}; the map is not a decided finding."
    return titles, sentence


def _fit(prefix: str, titles: list[str]) -> str:
    """The first of ``titles`` after ``prefix`` that fits a description (LO), else the last
    one cut."""
    return next((prefix + t for t in titles if len(prefix + t) <= LO), prefix + titles[-1])[:LO]


def overlay_on_film(film: np.ndarray, overlay: np.ndarray) -> np.ndarray:
    """The transparent RGBA Grad-CAM overlay laid on the gray film (float 0..1 or uint8),
    resized to the film: the RGB picture the Secondary Capture carries."""
    from PIL import Image

    gray = np.asarray(film, dtype=np.float32)
    if gray.max(initial=0) > 1.0:
        gray = gray / 255.0
    layer = Image.fromarray(np.asarray(overlay, dtype=np.uint8), mode="RGBA")
    size = (gray.shape[1], gray.shape[0])
    rgba = np.asarray(layer.resize(size, Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    alpha = rgba[..., 3:4]
    out = gray[..., None] * (1.0 - alpha) + rgba[..., :3] * alpha
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def heatmap_sc(
    source: SourceImage,
    rgb: np.ndarray,
    *,
    label: str,
    decision: Mapping[str, Any] | None,
    model: Mapping[str, Any],
    created: dt.datetime,
    task: Task | None = None,
    uid_root: str | None = None,
    institution: str | None = None,
    reading: str = "",
) -> Dataset:
    """The Grad-CAM picture (``rgb``: rows × columns × 3, uint8) as a Secondary Capture in the
    source's study, new series, referencing the source image. ``model`` is the result's
    model (name, version, content_hash), ``decision`` its decision (``caption``),
    ``reading`` which reading of the study it is (``reading_parts``)."""
    import highdicom as hd

    model = model_of({"model": dict(model)})
    rgb = np.ascontiguousarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise DicomObjectError("the heatmap must be rows × columns × 3 uint8 (RGB)")
    name = task.label_name(label, "en") if task is not None else label
    titles, note = caption(label, decision, task)
    orientation = source.patient_orientation
    sc = hd.sc.SCImage(
        pixel_array=rgb,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        patient_orientation=orientation or ("L", "F"),
        series_instance_uid=uid(
            "heatmap-series",
            source.study_instance_uid,
            model["content_hash"],
            *reading_parts(reading),
            root=uid_root,
        ),
        series_number=SERIES_HEATMAP,
        sop_instance_uid=uid(
            "heatmap",
            source.sop_instance_uid,
            model["content_hash"],
            model["version"],
            label,
            *reading_parts(reading),
            root=uid_root,
        ),
        instance_number=1,
        manufacturer=MANUFACTURER,
        institution_name=institution,
        series_description=_fit("medai AI heatmap: ", titles),
        manufacturer_model_name=model["name"][:64],
        software_versions=model["version"][:64],
        **source.patient_study(),
        **content_times(created),
    )
    if orientation is None:  # unknown: left empty (type 2), never guessed
        sc.PatientOrientation = None  # type: ignore[assignment]  # type 2: None writes it empty
    sc.DateOfSecondaryCapture = sc.ContentDate
    sc.TimeOfSecondaryCapture = sc.ContentTime
    pin_times(sc, created)
    sc.BurnedInAnnotation = "NO"
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = (
        source.sop_class_uid,
        source.sop_instance_uid,
    )
    sc.SourceImageSequence = [ref]
    _say_ai_derived(sc, source.body_part, model, name, ", laid on the source image", note)
    return sc


def _say_ai_derived(
    ds: Dataset,
    body_part: str | None,
    model: Mapping[str, Any],
    name: str,
    how: str,
    note: str = "",
) -> None:
    """What both heatmap objects say of themselves: the body part (or an empty Laterality),
    how they were derived and by which model, that they are AI output, not a diagnosis, and
    ``note``: what the AI decided when it was undecided or contradicted itself."""
    if body_part:  # a chest or a brain: unpaired, so no Laterality
        ds.BodyPartExamined = str(body_part)[:16]
    else:  # type 2C, left empty: the part (paired or not) is unknown
        ds.Laterality = None
    note = f" {note}" if note else ""
    ds.DerivationDescription = (
        f"Grad-CAM saliency of {model['name']} {model['version']} for {name}{how}.{note}"
    )[:1024]
    ds.ImageComments = (
        "AI output (medai), a suggestion for the radiologist; not a diagnosis."
        f"{note} Model {model['content_hash']}"
    )


def _derivation_source(header: Dataset) -> Dataset:
    """The source's header as highdicom copies a derived object's patient and study from:
    without its pixels, and with the study's type 2 attributes present (empty where the
    modality left them out)."""
    source = Dataset()
    for element in header:
        if element.tag.group != 0x7FE0:
            source.add(element)
    for keyword in _STUDY_TYPE2:
        if keyword not in source:
            setattr(source, keyword, None)
    return source


def pm_suitable(header: Dataset) -> bool:
    """Whether a source can carry a Parametric Map: one frame on a patient geometry (a Frame
    of Reference and an image plane), as MR and CT slices have and radiographs do not."""
    frames = int(header.get("NumberOfFrames", 1) or 1)
    return frames == 1 and all(header.get(k) not in (None, "") for k in PM_GEOMETRY)


def _pin_dimensions(ds: Dataset, kind: str, uid_root: str | None) -> None:
    """The multi-frame object's Dimension Organization UID derived from its own instance UID:
    highdicom draws a fresh one each time, and a resend must be the same object."""
    organization = uid(kind, ds.SOPInstanceUID, root=uid_root)
    for seq in ("DimensionOrganizationSequence", "DimensionIndexSequence"):
        for item in ds.get(seq) or []:
            item.DimensionOrganizationUID = organization


def region_suitable(header: Dataset) -> bool:
    """Whether a source gets the saliency region as a SEG: a single-frame image without the
    patient geometry of a Parametric Map (a projection film)."""
    frames = int(header.get("NumberOfFrames", 1) or 1)
    return frames == 1 and not pm_suitable(header)


def heatmap_pm(
    header: Dataset,
    saliency: np.ndarray,
    *,
    label: str,
    decision: Mapping[str, Any] | None,
    model: Mapping[str, Any],
    created: dt.datetime,
    task: Task | None = None,
    uid_root: str | None = None,
    institution: str | None = None,
    reading: str = "",
) -> Dataset:
    """The Grad-CAM saliency (``saliency``: the source's rows × columns, float 0..1) as a
    Parametric Map on the source's grid, referencing it (``header``: the source's dataset,
    pixels not needed; ``decision``: the result's, see ``caption``; ``reading``: which
    reading of the study, ``reading_parts``). Raises ``DicomObjectError`` where the source is
    not suitable."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    header = outgoing_header(header)  # the identity as a PACS takes it (see SourceImage)
    if not pm_suitable(header):
        raise DicomObjectError("the source has no image plane geometry for a Parametric Map")
    values = np.ascontiguousarray(saliency, dtype=np.float32)
    if values.shape != (int(header.Rows), int(header.Columns)):
        raise DicomObjectError("the saliency must be on the source's grid (rows × columns)")
    model = model_of({"model": dict(model)})
    name = task.label_name(label, "en") if task is not None else label
    titles, note = caption(label, decision, task)
    source = _derivation_source(header)
    mapping = hd.pm.RealWorldValueMapping(
        lut_label="GRADCAM",
        lut_explanation=f"Grad-CAM saliency: {name}"[:64],
        unit=codes.UCUM.NoUnits,
        value_range=(0.0, 1.0),
        slope=1.0,
        intercept=0.0,
    )
    pm = hd.pm.ParametricMap(
        source_images=[source],
        pixel_array=values,
        # one map series per source series, model and reading: a series has one Frame of
        # Reference
        series_instance_uid=uid(
            "heatmap-map-series",
            header.SeriesInstanceUID,
            model["content_hash"],
            *reading_parts(reading),
            root=uid_root,
        ),
        series_number=SERIES_HEATMAP_MAP,
        sop_instance_uid=uid(
            "heatmap-map",
            header.SOPInstanceUID,
            model["content_hash"],
            model["version"],
            label,
            *reading_parts(reading),
            root=uid_root,
        ),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=model["name"][:64],
        software_versions=model["version"][:64],
        device_serial_number=model["content_hash"][:64],
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[mapping],
        voi_lut_transformations=[hd.VOILUTTransformation(window_center=0.5, window_width=1.0)],
        content_label="GRADCAM",
        content_qualification="RESEARCH",  # not a certified product
        content_description=_fit("medai AI saliency (suggestion, not a diagnosis): ", [name])
        if not note
        else _fit("medai AI saliency: ", titles),
        series_description=_fit("medai AI saliency map: ", titles),
        institution_name=institution,
        **content_times(created),
    )
    pin_times(pm, created)
    _pin_dimensions(pm, "heatmap-map-dimensions", uid_root)
    _say_ai_derived(
        pm, header.get("BodyPartExamined"), model, name, "; 0 = none, 1 = the map's peak", note
    )
    return pm


def heatmap_region(
    header: Dataset,
    saliency: np.ndarray,
    *,
    label: str,
    decision: Mapping[str, Any] | None,
    model: Mapping[str, Any],
    created: dt.datetime,
    task: Task | None = None,
    uid_root: str | None = None,
    institution: str | None = None,
    reading: str = "",
) -> Dataset:
    """Where the Grad-CAM saliency of a projection film is at least ``REGION_AT`` of its peak,
    as a binary DICOM Segmentation on the source's grid, referencing it: the overlay a viewer
    draws over the film itself (OHIF hydrates a SEG onto its source image; it shows neither a
    Parametric Map without patient geometry nor a fractional SEG). The segment is labelled AI
    output for the named finding, its algorithm identified by name, version and content hash
    (as TID 4019 does in the findings SR). Raises ``DicomObjectError`` where the saliency is not
    on the source's grid or has no region to draw."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    header = outgoing_header(header)  # the identity as a PACS takes it (see SourceImage)
    values = np.asarray(saliency, dtype=np.float32)
    if values.shape != (int(header.Rows), int(header.Columns)):
        raise DicomObjectError("the saliency must be on the source's grid (rows × columns)")
    region = values >= REGION_AT
    if not region.any():
        raise DicomObjectError("the saliency has no region to draw")
    model = model_of({"model": dict(model)})
    name = task.label_name(label, "en") if task is not None else label
    titles, note = caption(label, decision, task)
    algorithm = hd.AlgorithmIdentificationSequence(
        name=model["name"][:64],
        version=model["version"][:64],
        family=codes.cid7162.ArtificialIntelligence,
        source=MANUFACTURER,
        parameters={"content_hash": model["content_hash"], "region": f">= {REGION_AT:g} x peak"},
    )
    segment = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=_fit("AI saliency (suggestion): ", [name]),
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Finding,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
        # the heatmap's own warm colour, so the region reads as the AI's map in any viewer
        display_color=hd.color.CIELabColor.from_string("orange"),
    )
    seg = hd.seg.Segmentation(
        source_images=[_derivation_source(header)],
        pixel_array=region.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment],
        series_instance_uid=uid(
            "heatmap-region-series",
            header.SeriesInstanceUID,
            model["content_hash"],
            *reading_parts(reading),
            root=uid_root,
        ),
        series_number=SERIES_HEATMAP_REGION,
        sop_instance_uid=uid(
            "heatmap-region",
            header.SOPInstanceUID,
            model["content_hash"],
            model["version"],
            label,
            *reading_parts(reading),
            root=uid_root,
        ),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=model["name"][:64],
        software_versions=model["version"][:64],
        device_serial_number=model["content_hash"][:64],
        content_label="AIREGION",
        content_description=_fit("medai AI saliency region: ", titles),
        series_description=_fit("medai AI heatmap region: ", titles),
        institution_name=institution,
        **content_times(created),
    )
    pin_times(seg, created)
    # without a Frame of Reference the image's own orientation is type 2C: the source's, or
    # empty (never guessed)
    seg.PatientOrientation = header.get("PatientOrientation") or None
    # the frame's orientation in the image's own axes (rows along +x, columns along +y), as a
    # viewer takes a film without patient geometry: OHIF reads it to lay the region on the film
    orientation = Dataset()
    orientation.ImageOrientationPatient = list(
        header.get("ImageOrientationPatient") or [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    )
    seg.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence = [orientation]
    _pin_dimensions(seg, "heatmap-region-dimensions", uid_root)
    _say_ai_derived(
        seg,
        header.get("BodyPartExamined"),
        model,
        name,
        f"; the region where it is at least {REGION_AT:.0%} of its peak",
        note,
    )
    return seg
