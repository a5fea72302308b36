"""What an outbox row sends, built when it is sent from rows that never change (the stored AI
result, the report version), so a resend is the same message: the DICOM objects for a PACS
(``dicom_objects``, ``dicom_heatmap``, ``dicom_report``, and with a signed report the AI's key
slices as a key image note, ``dicom_key_images``), the FHIR report bundle
(``documents.fhir.fhir_bundle``) and the parts an HL7 ORU^R01 is made of; each destination kind
builds its message from these (``destinations``). A ``retracted`` row
(``platform.reading.retraction``) repeats the newest version the destination got, as entered in
error (FHIR) or withdrawn (HL7), and for a PACS builds the rejection note over the very objects its
earlier rows sent (``rejected_objects``: rebuilt, so their UIDs are the ones sent).

Each reading of a study (``AIResultRow.reading``: the instances it read) has AI objects of its
own UIDs (``reading_tag``). A later reading's ``analysed`` row sends a PACS, after its own
objects, the rejection note over the earlier readings' objects that PACS got (``superseding``,
IOCM "Rejected for Quality Reasons"), so the PACS never shows a replaced AI result as current
(issue 67); an earlier reading's row retried after a later one reached the PACS is not sent
(``superseded_reading``). FHIR and HL7 need no note: the later reading's report replaces the
earlier one under the same ids (the FHIR DiagnosticReport, the HL7 order).

The database is read in one short read-only session (``gather``); building and sending happen
outside any transaction.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from dataclasses import dataclass
from typing import Any, cast

from pydicom import dcmread
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medai.core.errors import MedaiError
from medai.core.task_registry import TaskError
from medai.core.task_registry import get as get_task
from medai.platform.context import Platform
from medai.platform.dicom import study_time
from medai.platform.dicom.identity import is_dicom
from medai.platform.documents.dicom_objects import DicomObjectError, SourceImage
from medai.platform.documents.fhir import fhir_bundle as exports
from medai.platform.documents.ko.dicom_key_images import key_image_note, key_refs, split_ref
from medai.platform.documents.ko.dicom_rejection import SUPERSEDED, rejection_note
from medai.platform.documents.sc_pm.dicom_heatmap import (
    heatmap_pm,
    heatmap_region,
    heatmap_sc,
    overlay_on_film,
    pm_suitable,
    region_suitable,
)
from medai.platform.documents.sr.dicom_report import report_sr
from medai.platform.documents.sr.findings_sr import findings_sr
from medai.platform.documents.words import finding_states
from medai.platform.records.tables import (
    AIResultRow,
    DicomInstance,
    Measurement,
    OutboxItem,
    ReportVersion,
    Study,
    StudyRetraction,
    User,
)
from medai.platform.worklist import ai_results, filing, listing, versions
from medai.services import imaging as imaging_service

# SOP classes that hold no image (structured reports, key object notes, presentation states,
# encapsulated documents): not counted among a study's images
NOT_IMAGES = (
    "1.2.840.10008.5.1.4.1.1.88.",
    "1.2.840.10008.5.1.4.1.1.11.",
    "1.2.840.10008.5.1.4.1.1.104.",
)
log = logging.getLogger("medai.integration.outbox")


class NothingToSend(MedaiError, Exception):
    """The row has nothing for this destination (recorded as skipped, with ``code``)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True)
class Parts:
    """Plain values of an event, read once."""

    study: dict[str, Any]  # listing.as_dict, with its DICOM series
    report: dict[str, Any]  # versions.as_dict of the event's version, with the decision
    report_created: dt.datetime
    report_signed: dt.datetime | None
    model: dict[str, Any] | None
    ai_payload: dict[str, Any] | None
    ai_created: dt.datetime | None
    heatmap_sha: str | None
    heatmap_label: str | None
    # the stored image the AI result was read from (a DICOM file when the study has an
    # identity): its objects' source and UIDs, whatever the study's file became since
    source_sha: str
    film_sha: str  # its display rendition when there is one, else the original
    previous_signed: int | None  # the signed version an amendment follows
    taken: str | None = None  # when the study was taken (``study_time``: FHIR effectiveDateTime)
    reading: str = ""  # which reading the AI result is (``reading_tag``: its objects' UIDs)
    # the last instance row that reading saw (None: all of them): what its objects count
    read_through: int | None = None
    measurement_sha: str | None = None  # the signer's measurement SR as it was when signing


def signer_measurements(db: Session, row: ReportVersion) -> str | None:
    """The blob of the measurement report (TID 1500 SR, ``reading.measurements``) the signer of
    ``row`` had saved when signing: their latest filed before the signature, so a PACS gets
    the measurements the report states, and a rebuild (a later rejection) names the same SR
    whatever was measured after. None: unsigned, or the signer measured nothing."""
    if row.signed_by is None or row.signed_at is None:
        return None
    return db.scalar(
        select(Measurement.file_sha)
        .where(
            Measurement.study_id == row.study_id,
            Measurement.author_id == row.signed_by,
            Measurement.created_at <= row.signed_at,
        )
        .order_by(Measurement.id.desc())
        .limit(1)
    )


def _utc(t: dt.datetime | None) -> dt.datetime | None:
    return None if t is None else (t if t.tzinfo else t.replace(tzinfo=dt.UTC))


def reading_tag(db: Session, ai: AIResultRow) -> str:
    """What the AI objects of result ``ai`` add to their UIDs (``dicom_objects.reading_parts``):
    "" for the study's first result of its kind by that model (the UIDs its objects had
    before readings had their own, so a PACS's copy is still named by a later rejection),
    else its reading key (unique per study, kind and model: ``uq_ai_results_reading``; its
    row id where the key is empty, as only an upload's first reading's is)."""
    first = db.scalar(
        select(func.min(AIResultRow.id)).where(
            AIResultRow.study_id == ai.study_id,
            AIResultRow.kind == ai.kind,
            AIResultRow.model_hash == ai.model_hash,
        )
    )
    return "" if first is None or first >= ai.id else ai.reading or f"result {ai.id}"


def gather(p: Platform, item: OutboxItem) -> Parts:
    with p.db.reader() as db:
        study = db.get(Study, item.study_id)
        if study is None:
            raise LookupError(f"study {item.study_id} is gone")
        row = db.scalar(
            select(ReportVersion).where(
                ReportVersion.study_id == study.id, ReportVersion.version == item.report_version
            )
        )
        if row is None:
            raise LookupError(f"study {study.id} has no report version {item.report_version}")
        ai = (
            db.get(AIResultRow, item.ai_result_id)
            if item.ai_result_id
            else ai_results.signed_with(db, study.id, row)  # a row from before rows kept it
        )
        report = finding_states.of_version(
            db, versions.as_dict(db, row), ai.payload if ai else None
        )
        source = (ai.source_sha256 if ai is not None else None) or study.file_sha256
        previous = (
            db.scalar(
                select(func.max(ReportVersion.version)).where(
                    ReportVersion.study_id == study.id,
                    ReportVersion.version < row.version,
                    ReportVersion.signed_by.is_not(None),
                )
            )
            if row.status == "amended"
            else None
        )
        return Parts(
            study=listing.as_dict(db, study, with_result=False, with_series=True),
            report=report,
            report_created=row.created_at,
            report_signed=row.signed_at,
            model=(ai.payload or {}).get("model") if ai else None,
            ai_payload=ai.payload if ai else None,
            ai_created=_utc(ai.created_at) if ai else None,
            heatmap_sha=ai.heatmap_sha256 if ai else None,
            heatmap_label=ai.heatmap_label if ai else None,
            source_sha=source,
            film_sha=study.display_sha256
            if study.display_sha256 and source == study.file_sha256
            else source,
            previous_signed=previous,
            taken=study_time.of_study(
                p.store, study.file_sha256, study.study_date, study.created_at
            ),
            reading=reading_tag(db, ai) if ai else "",
            read_through=filing.reading_last(ai.reading) if ai else None,
            measurement_sha=signer_measurements(db, row),
        )


def source_header(p: Platform, sha: str):
    """The stored DICOM image's header (a pydicom Dataset without its pixels)."""
    import pydicom

    data = p.store.read(sha)
    if not is_dicom(data):
        raise NothingToSend("no_dicom_identity", "the study's image is not DICOM")
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except Exception as exc:  # broad: pydicom raises many types (DicomObjectError)
        raise DicomObjectError(
            f"the stored DICOM header cannot be read ({type(exc).__name__})"
        ) from None
    return ds


def heatmap_rgb(p: Platform, parts: Parts, overlay_png: bytes):
    """The Grad-CAM overlay (the stored PNG) laid on the film (the display rendition, at
    most 2048 px)."""
    import numpy as np
    from PIL import Image

    raw = p.store.read(parts.film_sha)
    # the display rendition is already an 8-bit PNG of at most 2048 px: decode it once, not
    # through preview_png's decode, resize and re-encode (~0.2 s a study on this machine)
    film_png = raw if parts.film_sha != parts.source_sha else imaging_service.preview_png(raw, 2048)
    film = np.asarray(Image.open(io.BytesIO(film_png)).convert("L"))
    overlay = np.asarray(Image.open(io.BytesIO(overlay_png)).convert("RGBA"))
    return overlay_on_film(film, overlay)


def dicom_objects(p: Platform, item: OutboxItem, parts: Parts) -> list:
    """``analysed``: the findings SR and the heatmap SC (and its Parametric Map where the
    source has the geometry for one, its region as a SEG on a projection film); ``signed``: the report SR and, when the AI's result has
    key slices, their key image note."""

    header = source_header(p, parts.source_sha)
    source = SourceImage.from_dataset(header)
    institution = p.settings.outbox.institution_name or None
    task = _task(parts.study.get("task"))
    if item.event == "signed":  # the signer's findings, the AI's suggestions marked as such
        return [
            report_sr(
                source,
                parts.report,
                organization=institution or "",
                previous_version=parts.previous_signed,
                institution=institution,
                task=task,
            ),
            *key_images(p, item, parts, source, institution, task),
            # the signer's own measurement report, as the viewer saved it (issue 68)
            *(
                [dcmread(io.BytesIO(p.store.read(parts.measurement_sha)))]
                if parts.measurement_sha
                else []
            ),
        ]
    if parts.ai_payload is None or parts.ai_created is None:
        raise NothingToSend("no_ai_result", "the analysis stored no AI result")
    objects = [
        findings_sr(
            source,
            parts.ai_payload,
            created=parts.ai_created,
            institution=institution,
            reading=parts.reading,
        )
    ]
    if parts.heatmap_sha and parts.heatmap_label:
        overlay = p.store.read(parts.heatmap_sha)
        # the map says what the AI decided: an undecided result's candidates, a conflict
        decision = imaging_service.decision_of(parts.ai_payload)
        objects.append(
            heatmap_sc(
                source,
                heatmap_rgb(p, parts, overlay),
                label=parts.heatmap_label,
                decision=decision,
                model=parts.ai_payload["model"],
                created=parts.ai_created,
                task=task,
                institution=institution,
                reading=parts.reading,
            )
        )
        # the saliency itself: a Parametric Map on a tomographic slice, its region as a SEG on
        # a projection film
        builder = (
            heatmap_pm
            if pm_suitable(header)
            else heatmap_region
            if region_suitable(header)
            else None
        )
        if builder is not None:
            try:  # the map is extra: the SR and the picture go even when it cannot be made
                saliency = imaging_service.saliency_of_overlay(
                    overlay, int(header.Rows), int(header.Columns)
                )
                objects.append(
                    builder(
                        header,
                        saliency,
                        label=parts.heatmap_label,
                        decision=decision,
                        model=parts.ai_payload["model"],
                        created=parts.ai_created,
                        task=task,
                        institution=institution,
                        reading=parts.reading,
                    )
                )
            except Exception as exc:  # broad: highdicom raises many types (logged)
                log.warning(
                    "outbox %s: no %s for study %s (%s)",
                    item.id,
                    "Parametric Map" if builder is heatmap_pm else "saliency SEG",
                    item.study_id,
                    type(exc).__name__,
                )
    return objects


def key_image_objects(p: Platform, item: OutboxItem, parts: Parts) -> list:
    """A ``signed`` row's key image note alone (``key_images``), without the report SR: what
    medai's DICOMweb serves the viewer beside the AI's other objects (``reading.ai_objects``),
    built as the PACS gets it."""
    header = source_header(p, parts.source_sha)
    return key_images(
        p,
        item,
        parts,
        SourceImage.from_dataset(header),
        p.settings.outbox.institution_name or None,
        _task(parts.study.get("task")),
    )


def key_images(
    p: Platform, item: OutboxItem, parts: Parts, source: SourceImage, institution, task
) -> list:
    """The AI's key slices as an IHE Key Image Note beside the signed report's SR
    (``dicom_key_images``: why only after sign-off); none when its result has no key slices.
    A key slice whose instance the study no longer holds is left out of the note (the report
    goes whatever the note lacks). The study's images are counted as that reading saw them
    (instances filed after it do not turn its objects into others)."""
    seen = [] if parts.read_through is None else [DicomInstance.id <= parts.read_through]
    with p.db.reader() as db:
        classes = db.scalars(
            select(DicomInstance.sop_class).where(DicomInstance.study_id == item.study_id, *seen)
        ).all()
    refs = key_refs(parts.ai_payload, sum(1 for c in classes if not c.startswith(NOT_IMAGES)))
    if not refs or parts.ai_created is None:
        return []
    wanted = list(dict.fromkeys(split_ref(r)[0] for r in refs))
    with p.db.reader() as db:
        files = dict(
            db.execute(
                select(DicomInstance.sop_uid, DicomInstance.file_sha256).where(
                    DicomInstance.study_id == item.study_id, DicomInstance.sop_uid.in_(wanted)
                )
            ).all()
        )
    if len(files) < len(wanted):
        log.warning(
            "outbox %s: %d of study %s's key slices are not stored instances",
            item.id,
            len(wanted) - len(files),
            item.study_id,
        )
    if not files:
        return []
    return [
        key_image_note(
            source,
            cast(dict[str, Any], parts.ai_payload),  # key slices found: the AI's payload is there
            [source_header(p, files[sop]) for sop in wanted if sop in files],
            created=parts.ai_created,
            task=task,
            language=str(parts.study.get("language") or "tr"),
            institution=institution,
            reading=parts.reading,
        )
    ]


def _task(name: Any):
    """The study's task (names its labels and their codes); None for one the registry lacks."""

    try:
        return get_task(str(name)) if name else None
    except TaskError:
        return None


def fhir_bundle(parts: Parts, entered_in_error: bool = False) -> dict[str, Any]:
    """The report's FHIR bundle as the export route makes it (status preliminary, final or
    amended, or ``entered-in-error`` for a retracted study's correction; the ImagingStudy
    and accession number when the study has a DICOM identity)."""
    return exports.fhir_bundle(
        parts.study,
        parts.report,
        parts.model,
        parts.report.get("signed_by"),
        parts.report_created,
        parts.report_signed,
        entered_in_error=entered_in_error,
        taken=parts.taken,
        ai_created=parts.ai_created,
    )


def _delivered(p: Platform, item: OutboxItem, *conditions: Any) -> list[OutboxItem]:
    """The rows (no correction) delivered to ``item``'s destination for its study before it,
    oldest first, detached; ``conditions``: more of the query's."""
    with p.db.reader() as db:
        rows = list(
            db.scalars(
                select(OutboxItem)
                .where(
                    OutboxItem.study_id == item.study_id,
                    OutboxItem.destination == item.destination,
                    OutboxItem.state == "delivered",
                    OutboxItem.event != "retracted",
                    OutboxItem.id < item.id,
                    *conditions,
                )
                .order_by(OutboxItem.id)
            )
        )
        for row in rows:
            db.expunge(row)
    return rows


def rejected_objects(p: Platform, item: OutboxItem) -> list:
    """Every object the rows delivered to ``item``'s destination before it sent for the
    study, rebuilt from the same stored rows (their UIDs are the ones the PACS holds)."""
    objects = []
    for row in _delivered(p, item):
        objects += dicom_objects(p, row, gather(p, row))
    return objects


def superseded_reading(p: Platform, item: OutboxItem) -> bool:
    """Whether ``item`` is an earlier reading's ``analysed`` row and a later reading's already
    reached its destination (retried by hand after it, it would put a replaced AI result
    back as current: it is skipped, ``superseded``)."""
    if item.event != "analysed":
        return False
    with p.db.reader() as db:
        return (
            db.scalar(
                select(OutboxItem.id)
                .where(
                    OutboxItem.study_id == item.study_id,
                    OutboxItem.destination == item.destination,
                    OutboxItem.event == "analysed",
                    OutboxItem.state == "delivered",
                    OutboxItem.id > item.id,
                    OutboxItem.ai_result_id != item.ai_result_id,
                )
                .limit(1)
            )
            is not None
        )


def superseding(p: Platform, item: OutboxItem, parts: Parts, sent: list) -> list:
    """For a PACS, after a reading's own objects (``sent``): the IOCM rejection note over the
    AI objects that earlier readings' ``analysed`` rows delivered there, rebuilt with the
    UIDs they were sent under (``reading_tag``); none when there are none. Titled "Rejected
    for Quality Reasons" (``dicom_rejection.SUPERSEDED``: why in docs/integration.md); an
    object this row sends itself is never rejected. An earlier row that cannot be rebuilt is
    logged (ids and error type only) and left out: the new reading still goes."""
    if item.event != "analysed" or item.ai_result_id is None or parts.ai_created is None:
        return []
    rows = _delivered(
        p,
        item,
        OutboxItem.event == "analysed",
        OutboxItem.ai_result_id != item.ai_result_id,
    )
    keep = {str(ds.SOPInstanceUID) for ds in sent}
    old: dict[str, Any] = {}
    for row in rows:
        try:
            built = dicom_objects(p, row, gather(p, row))
        except (NothingToSend, DicomObjectError, LookupError, FileNotFoundError) as exc:
            log.warning(
                "outbox %s: the objects of delivery %s cannot be rebuilt to reject (%s)",
                item.id,
                row.id,
                type(exc).__name__,
            )
            continue
        for ds in built:
            if str(ds.SOPInstanceUID) not in keep:
                old.setdefault(str(ds.SOPInstanceUID), ds)
    if not old:
        return []
    source = SourceImage.from_dataset(source_header(p, parts.source_sha))
    return [
        rejection_note(
            source,
            list(old.values()),
            reason=SUPERSEDED,
            retracted_at=parts.ai_created,
            destination=item.destination,
            institution=p.settings.outbox.institution_name or None,
            replaced_by=str(item.ai_result_id),
        )
    ]


def rejection(p: Platform, item: OutboxItem, parts: Parts) -> list:
    """A retracted study's correction for a PACS: the IOCM rejection note (a Key Object
    Selection titled with the retraction's CID 7011 reason) over what it was sent."""
    with p.db.reader() as db:
        row = db.scalar(select(StudyRetraction).where(StudyRetraction.study_id == item.study_id))
        if row is None:
            raise LookupError(f"study {item.study_id} has no retraction")
        by = db.get(User, row.retracted_by)
        reason, at, observer = row.reason, _utc(row.created_at), by.username if by else None
    objects = rejected_objects(p, item)
    if not objects:
        raise NothingToSend("nothing_sent", "nothing was delivered to this PACS to reject")
    source = SourceImage.from_dataset(source_header(p, parts.source_sha))
    return [
        rejection_note(
            source,
            objects,
            reason=reason,
            retracted_at=cast(dt.datetime, at),  # a retraction's created_at is always set
            destination=item.destination,
            observer=observer,
            institution=p.settings.outbox.institution_name or None,
        )
    ]
