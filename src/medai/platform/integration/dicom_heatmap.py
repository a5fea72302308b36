"""The Grad-CAM heatmap as a DICOM Secondary Capture for the PACS.

The transparent RGBA overlay the platform stores is laid on the film (``overlay_on_film``) and
sent as an RGB Secondary Capture image in the source's study, in a series of its own (one per
model), referencing the source image (SourceImageSequence) and saying in its derivation
description and comments that it is AI output for the named finding, not a diagnosis.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from medai.core.tasks import Task
from medai.platform.integration.dicom_objects import (
    MANUFACTURER,
    SERIES_HEATMAP,
    DicomObjectError,
    SourceImage,
    content_times,
    model_of,
    pin_times,
    uid,
)


def overlay_on_film(film: np.ndarray, overlay: np.ndarray) -> np.ndarray:
    """The transparent RGBA Grad-CAM overlay laid on the gray film (float 0..1 or uint8),
    resized to the film: the RGB picture the Secondary Capture carries."""
    from PIL import Image

    gray = np.asarray(film, dtype=np.float32)
    if gray.max(initial=0) > 1.0:
        gray = gray / 255.0
    rgba = Image.fromarray(np.asarray(overlay, dtype=np.uint8), mode="RGBA")
    rgba = np.asarray(rgba.resize((gray.shape[1], gray.shape[0]), Image.BILINEAR),
                      dtype=np.float32) / 255.0
    alpha = rgba[..., 3:4]
    out = gray[..., None] * (1.0 - alpha) + rgba[..., :3] * alpha
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def heatmap_sc(source: SourceImage, rgb: np.ndarray, *, label: str, model: Mapping[str, Any],
               created: dt.datetime, task: Task | None = None, uid_root: str | None = None,
               institution: str | None = None) -> Dataset:
    """The Grad-CAM picture (``rgb``: rows × columns × 3, uint8) as a Secondary Capture in the
    source's study, new series, referencing the source image. ``model`` is the result's
    model (name, version, content_hash)."""
    import highdicom as hd

    model = model_of({"model": dict(model)})
    rgb = np.ascontiguousarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise DicomObjectError("the heatmap must be rows × columns × 3 uint8 (RGB)")
    name = task.label_name(label, "en") if task is not None else label
    orientation = source.patient_orientation
    sc = hd.sc.SCImage(
        pixel_array=rgb, photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", patient_orientation=orientation or ("L", "F"),
        series_instance_uid=uid("heatmap-series", source.study_instance_uid,
                                model["content_hash"], root=uid_root),
        series_number=SERIES_HEATMAP,
        sop_instance_uid=uid("heatmap", source.sop_instance_uid, model["content_hash"],
                             model["version"], label, root=uid_root),
        instance_number=1, manufacturer=MANUFACTURER, institution_name=institution,
        series_description=f"medai AI heatmap: {name}"[:64],
        manufacturer_model_name=model["name"][:64], software_versions=model["version"][:64],
        **source.patient_study(), **content_times(created))
    if orientation is None:  # unknown: left empty (type 2), never guessed
        sc.PatientOrientation = None
    sc.DateOfSecondaryCapture = sc.ContentDate
    sc.TimeOfSecondaryCapture = sc.ContentTime
    pin_times(sc, created)
    if source.body_part:  # a chest or a brain: unpaired, so no Laterality
        sc.BodyPartExamined = source.body_part[:16]
    else:  # type 2C, left empty: the part (paired or not) is unknown
        sc.Laterality = None
    sc.BurnedInAnnotation = "NO"
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = source.sop_class_uid, \
        source.sop_instance_uid
    sc.SourceImageSequence = [ref]
    sc.DerivationDescription = (f"Grad-CAM saliency of {model['name']} {model['version']} "
                                f"for {name}, laid on the source image")[:1024]
    sc.ImageComments = ("AI output (medai), a suggestion for the radiologist; not a diagnosis. "
                        f"Model {model['content_hash']}")
    return sc
