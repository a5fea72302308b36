"""The study catalog: the one list of a study's DICOM objects that medai's DICOMweb
(QIDO-RS/WADO-RS, ``api.routes.dicomweb_read``) serves, and of the studies it serves them for.

Why one place: the viewer (OHIF) finds a study's objects only through DICOMweb, and more than
one part of medai makes them: the modality's instances filed to the study, the AI's own DICOM
objects (findings SR, heatmap, key images) and the radiologist's measurement SRs. Each source
adds its objects here (``SOURCES``), so that every DICOMweb answer (search, metadata, frames,
rendered, bulk data) sees the same set with the same rules.

The rules every source keeps:
- only what is filed to the study: an instance quarantined as an identity conflict lives in
  ``IdentityConflict``, never in a source, until a person reassigns it to a study;
- a retracted study (``entered_in_error``) is not served at all (``served_study`` is None):
  its PACS got an IOCM rejection note for it, and IHE IOCM asks a consumer to hide rejected
  instances; its page says it was retracted, and a viewer showing its images beside a
  current study would invite reading a study known to be wrong;
- an object names its stored file (``file_sha``: the encrypted blob store), content-addressed,
  so what a SOP Instance UID answers never changes (the ETag of its metadata and frames).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from medai.platform.context import Platform
from medai.platform.reading import ai_objects, measurements
from medai.platform.reading.catalog_object import CatalogObject
from medai.platform.records.tables import Study
from medai.platform.worklist import listing, study_state


def _filed_instances(db: Session, study: Study) -> Iterable[CatalogObject]:
    """The instances filed to the study (C-STORE, STOW-RS, a browser upload, a reassigned
    conflict), in series and instance order."""
    for i in listing.instances(db, [study.id])[study.id]:
        yield CatalogObject(
            i.sop_uid,
            i.series_uid,
            i.sop_class,
            i.modality,
            i.series_number,
            i.series_description,
            i.instance_number,
            i.file_sha256,
            "filed",
        )


Source = Callable[[Session, Study], Iterable[CatalogObject]]

# THE EXTENSION POINT: every source of a study's DICOM objects that the DICOMweb serves.
# Another kind of object (the AI's findings SR, heatmap and KOS; the radiologist's measurement
# SRs) is added by appending one function here: (db, study) -> its CatalogObjects, each with
# its stored file's sha256 in the blob store and its own ``source`` name. A function must keep
# the module's rules (only what belongs to this study; never a superseded or quarantined
# object). A SOP Instance UID yielded by two sources is served once (the first source wins).
SOURCES: list[Source] = [_filed_instances]


def _measurement_reports(db: Session, study: Study) -> Iterable[CatalogObject]:
    """The radiologists' current measurement SRs of the study (``reading.measurements``),
    so the viewer shows them again; a superseded one is not served."""
    for r in measurements.served(db, study.id):
        yield CatalogObject(
            r.sr_sop_uid,
            r.sr_series_uid,
            r.sr_sop_class,
            "SR",
            None,
            None,
            None,
            r.file_sha,
            measurements.SOURCE,
        )


SOURCES.append(_measurement_reports)


def _ai_objects(p: Platform, db: Session, study: Study) -> Iterable[CatalogObject]:
    """The AI's DICOM objects of the study's current reading (findings SR, heatmap SC and
    Parametric Map, the KOS after sign-off), built as delivery builds them for the PACS and
    stored in the blob store (``reading.ai_objects``: which reading, and why)."""
    yield from ai_objects.current(p, db, study)


BuiltSource = Callable[[Platform, Session, Study], Iterable[CatalogObject]]

# Sources of objects medai builds itself (they need the blob store and the settings, so they
# are handed the Platform): listed after SOURCES, by the same rules.
BUILT_SOURCES: list[BuiltSource] = [_ai_objects]


def served_study(db: Session, study_uid: str) -> Study | None:
    """The study a StudyInstanceUID names, if the DICOMweb serves it: None for no such study
    and for a retracted one (see the module's rules)."""
    study = db.scalar(select(Study).where(Study.study_uid == study_uid))
    if study is None or study.status == study_state.RETRACTED:
        return None
    return study


def objects(db: Session, study: Study, p: Platform | None = None) -> list[CatalogObject]:
    """Every DICOM object of the study that the DICOMweb serves, from every source, each SOP
    Instance UID once; the built ones (``BUILT_SOURCES``) only when ``p`` is given."""
    seen: set[str] = set()
    out: list[CatalogObject] = []
    built = [lambda db, study, b=b: b(p, db, study) for b in BUILT_SOURCES] if p else []
    for source in [*SOURCES, *built]:
        for obj in source(db, study):
            if obj.sop_uid not in seen:
                seen.add(obj.sop_uid)
                out.append(obj)
    return out
