"""The Key Object Selection document both of medai's KOS kinds are built with: the AI's key
images (``dicom_key_images``) and the IOCM rejection note (``dicom_rejection``). Each says
*what* it selects and *why* (its title, observer and description); how a selected object is
referenced and how the document is dated, numbered and described is the same for both, here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from pydicom.dataset import Dataset

from medai.platform.documents.dicom_objects import (
    MANUFACTURER,
    SourceImage,
    content_times,
    pin_times,
)

KOS_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"  # Key Object Selection Document Storage


def reference(source: SourceImage, obj: Dataset, sop: str | None = None) -> Dataset:
    """One selected object as the document references it: its UIDs (and, for an image, its
    size, so that it is referenced as an image, as KIN wants), under the source's patient and
    study. ``sop``: the instance's UID when the caller has it already."""
    ref = source.evidence()
    ref.StudyInstanceUID = str(obj.StudyInstanceUID)
    ref.SeriesInstanceUID = str(obj.SeriesInstanceUID)
    ref.SOPClassUID = str(obj.SOPClassUID)
    ref.SOPInstanceUID = sop or str(obj.SOPInstanceUID)
    ref.Modality = obj.get("Modality") or None
    if "Rows" in obj and "Columns" in obj:
        ref.Rows, ref.Columns = obj.Rows, obj.Columns
    return ref


def document(
    references: Sequence[Dataset],
    content: Any,
    *,
    series_uid: str,
    series_number: int,
    sop_uid: str,
    institution: str | None,
    created: dt.datetime,
    series_description: str,
) -> Dataset:
    """The KOS of ``content`` (a highdicom ``KeyObjectSelection``) over ``references``: its
    series and instance UIDs (derived by the caller, stable for the same selection), the
    content and series dates of ``created``, every time pinned to it."""
    import highdicom as hd

    kos = hd.ko.KeyObjectSelectionDocument(
        evidence=references,
        content=content,
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        institution_name=institution,
    )
    times = content_times(created)
    kos.ContentDate = times["content_date"].strftime("%Y%m%d")
    kos.ContentTime = times["content_time"].strftime("%H%M%S")
    kos.SeriesDate, kos.SeriesTime = kos.ContentDate, kos.ContentTime
    kos.SeriesDescription = series_description
    pin_times(kos, created)
    return kos
