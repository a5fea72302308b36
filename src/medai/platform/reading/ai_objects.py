"""The AI's DICOM objects of a study's current reading, as medai's DICOMweb serves them to the
viewer (``reading.catalog``): the findings SR (TID 1500 with the algorithm's TID 4019 name,
version and content hash), the heatmap (the RGB Secondary Capture overlay, and the
Parametric Map where the source has the geometry for one, or its region as a SEG over a film)
and, once the report is signed,
the AI's key images as a KOS (IHE AI Results: the viewer shows what the PACS gets).

Why built by delivery's own code (``delivery.payloads``): the viewer and the PACS must show
the same objects under the same UIDs, so an object a radiologist saw in medai's viewer is the
one the PACS holds, and a later reading's IOCM rejection note names it. The objects are built
from the stored AI result exactly as an ``analysed`` outbox row builds them (and the KOS as a
``signed`` row does, after sign-off: before it the key images are the AI's unreviewed
suggestion, which the PACS does not get either).

Which reading: only the study's newest imaging result (``ai_results.latest_result``), and only
while the study is not being (re)analysed and its analysis did not end refused or failed: a
superseded reading's objects are never served (the PACS rejects them too), and a refused
image or a failed analysis has no AI objects. A retracted study serves nothing at all
(``catalog.served_study``).

Storage: an object holds the patient's name and identifiers, so it is written to the same
encrypted, content-addressed blob store as the instances (never a plain cache on disk); what
each reading's objects are is kept in a bounded in-process map (``_BUILT``), so a study's
objects are built once per process and reading (a restart builds them again: the same bytes,
the same blobs, as the builders pin their times and UIDs).
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from medai.platform.context import Platform
from medai.platform.delivery import payloads
from medai.platform.documents.dicom_objects import DicomObjectError, save_bytes
from medai.platform.documents.words.report_words import SIGNED
from medai.platform.reading.catalog_object import CatalogObject
from medai.platform.reading.series_view import _Lru
from medai.platform.records.tables import OutboxItem, ReportVersion, Study
from medai.platform.worklist import ai_results, study_state

log = logging.getLogger("medai.reading.ai_objects")

SOURCE = "ai"
CACHE_READINGS = 512  # readings whose objects' descriptions are kept (a few hundred bytes each)
# no AI objects while the study is being analysed (the reading about to be replaced) or when
# its analysis ended without a result to show
NOT_SHOWN = ("received", "analysing", "refused", "failed", "no_model")


_BUILT = _Lru(CACHE_READINGS)  # (study id, AI result id, signed version) -> tuple[CatalogObject]


def _signed_version(db: Session, study: Study) -> int | None:
    """The study's current report version when it is signed (final or amended): the KOS is
    served from then on, as the PACS gets it with the signed report."""
    row = db.scalar(
        select(ReportVersion)
        .where(ReportVersion.study_id == study.id)
        .order_by(ReportVersion.version.desc())
        .limit(1)
    )
    return row.version if row is not None and row.status in SIGNED else None


def _stored(p: Platform, ds) -> CatalogObject:
    sha = p.store.put_bytes(save_bytes(ds))
    number = ds.get("InstanceNumber")
    series = ds.get("SeriesNumber")
    return CatalogObject(
        str(ds.SOPInstanceUID),
        str(ds.SeriesInstanceUID),
        str(ds.SOPClassUID),
        str(ds.get("Modality") or "") or None,
        int(series) if series is not None else None,
        str(ds.get("SeriesDescription") or "") or None,
        int(number) if number is not None else None,
        sha,
        SOURCE,
    )


def _build(p: Platform, study: Study, ai_id: int, draft: int, signed: int | None) -> list:
    """The objects delivery builds for the reading ``ai_id``: an ``analysed`` row's (SR,
    heatmap SC, Parametric Map) and, after sign-off, a ``signed`` row's key image note. The
    rows are transient (never added to a session): only what ``payloads`` reads of them."""
    analysed = OutboxItem(
        event="analysed", study_id=study.id, report_version=draft, ai_result_id=ai_id
    )
    built = list(payloads.dicom_objects(p, analysed, payloads.gather(p, analysed)))
    if signed is not None:
        row = OutboxItem(
            event="signed", study_id=study.id, report_version=signed, ai_result_id=ai_id
        )
        built += payloads.key_image_objects(p, row, payloads.gather(p, row))
    return built


def current(p: Platform, db: Session, study: Study) -> tuple[CatalogObject, ...]:
    """The AI objects of the study's current reading (none: see the module's rules). An
    object that cannot be built (an uploaded PNG has no DICOM header to build on; an
    unreadable stored file) leaves the study's objects empty; logged with ids and the error
    type only."""
    if study.status in NOT_SHOWN or study.status == study_state.RETRACTED:
        return ()
    ai = ai_results.latest_result(db, study.id)
    if ai is None or (ai.payload or {}).get("refused"):
        return ()
    draft = db.scalar(
        select(ReportVersion.version)
        .where(ReportVersion.study_id == study.id)
        .order_by(ReportVersion.version.desc())
        .limit(1)
    )
    if draft is None:
        return ()
    signed = _signed_version(db, study)
    key = (study.id, ai.id, signed)
    hit = _BUILT.get(key)
    if hit is not None and all(p.store.exists(o.file_sha) for o in hit):
        return hit
    try:
        objs = tuple(_stored(p, ds) for ds in _build(p, study, ai.id, draft, signed))
    except payloads.NothingToSend:
        objs = ()  # no DICOM identity: nothing a DICOM viewer could lay beside the study
    except (DicomObjectError, LookupError, FileNotFoundError, ValueError) as exc:
        log.warning(
            "study %s: the AI objects of result %s cannot be built (%s)",
            study.id,
            ai.id,
            type(exc).__name__,
        )
        return ()  # not kept: the next request tries again
    _BUILT.put(key, objs)
    return objs
