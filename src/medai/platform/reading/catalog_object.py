"""One DICOM object medai's DICOMweb serves for a study, whoever made it: the modality's filed
instances, the AI's objects (``reading.ai_objects``), the radiologist's measurement reports
(``reading.measurements``); ``reading.catalog`` lists them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CatalogObject:
    """One DICOM object the DICOMweb serves for a study. ``series_description`` is operator
    text, decrypted in memory for an allowed reader: never logged, never stored again."""

    sop_uid: str
    series_uid: str
    sop_class: str
    modality: str | None
    series_number: int | None
    series_description: str | None
    instance_number: int | None
    file_sha: str
    source: str  # which SOURCES entry made it: "filed" (the modality's instances), …
