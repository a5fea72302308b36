"""DICOMweb read (PS3.18 QIDO-RS and WADO-RS) over the study catalog (``reading.catalog``):
what the routes (``api.routes.dicomweb_read``) answer, without HTTP.

Why here: the viewer (OHIF v3) reads a study only through DICOMweb, and what it may see is
decided by the catalog (filed instances only, never a quarantined conflict, never a retracted
study); this module turns the catalog into DICOM JSON and frames.

Speed: a 200-slice series' metadata is the viewer's first wait (OHIF#1491, #5287). An
instance's DICOM JSON is made once per stored file (its file is content-addressed: it never
changes) and kept in a bounded in-process cache, in memory only: it holds patient text, which
is sealed at rest and is never written anywhere new (a restart makes it again from the
encrypted blob, a few milliseconds per instance). Frames are cut from the stored file as
stored (no transcoding): the pixel bytes of a native transfer syntax, the fragments of an
encapsulated one.

Audit: a study opened through DICOMweb is audited once per user and study within
``OPEN_WINDOW_S`` (``opened``), whatever was read first (QIDO, metadata, a frame), never per
frame: the check and the insert run in one transaction holding the study's row lock, so two
requests at once (OHIF asks for series and metadata in parallel; two workers) record one.
"""

from __future__ import annotations

import fnmatch
import io
import json
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from medai.core.errors import MedaiError
from medai.platform.access import audit
from medai.platform.context import Platform
from medai.platform.dicom import identity as dicom_identity
from medai.platform.reading import catalog
from medai.platform.reading.series_view import _Lru
from medai.platform.records.db import utcnow
from medai.platform.records.tables import AuditEvent, Study
from medai.platform.worklist import study_state

ROOT_TOKEN = "@@MEDAI_WADO_ROOT@@"  # replaced by the service root of the request
BULK_THRESHOLD = 1024  # a binary value longer than this is a BulkDataURI, not inline
CACHE_INSTANCES = 4096  # instance DICOM JSON kept (a few kB each)
OPEN_WINDOW_S = 3600  # a study read again by the same user within an hour is one opening
MAX_SCAN = 5000  # studies a QIDO search looks at (newest first) before its filters in memory
UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")

NATIVE = {
    "1.2.840.10008.1.2",  # implicit VR little endian: the same pixel bytes as explicit
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",  # deflated: the dataset is inflated on read, pixels native
}
EXPLICIT_LE = "1.2.840.10008.1.2.1"
# the media type of one frame per stored (encapsulated) transfer syntax, PS3.18 table 8.7.3-5
ENCAPSULATED = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}


class NotServed(MedaiError, LookupError):
    """No such study, series, instance or frame among what the DICOMweb serves (a retracted
    study and a quarantined instance are not served either: they answer the same)."""

    status, code = 404, "not_found"


class NotAcceptable(MedaiError, ValueError):
    """The caller accepts no media type or transfer syntax the object is stored in (medai
    sends frames as stored, it does not transcode)."""

    status, code = 406, "not_acceptable"


class NoPixels(MedaiError, ValueError):
    """The instance holds no frames (a structured report, a key object note)."""

    status, code = 404, "not_found"


# --- the catalog, as a query sees it ------------------------------------------------------------


@dataclass(frozen=True)
class StudyView:
    """A served study and its objects, read in one transaction."""

    study: Study
    study_uid: str
    objects: list[catalog.CatalogObject]
    patient_name: str | None
    patient_id: str | None


def _view(db, study: Study, p: Platform | None = None) -> StudyView:
    return StudyView(
        study,
        study.study_uid or "",
        catalog.objects(db, study, p),
        dicom_identity.unseal(study.patient_name, study.id),
        dicom_identity.unseal(study.patient_key, study.id),
    )


_VIEWS = _Lru(256)  # study uid -> (when read, StudyView): the catalog kept a few seconds
VIEW_TTL_S = 5.0


def study_view(p: Platform, study_uid: str) -> StudyView:
    """The served study ``study_uid`` with its objects; ``NotServed`` for none (no such study,
    a retracted one, or one with no DICOM object: an uploaded PNG has nothing to serve).

    Why a cache: a viewer asks for a series' frames one request each (200 for an MR series);
    reading the catalog (and decrypting its sealed series descriptions) per frame made frames
    four times slower than Orthanc's. The object list is kept ``VIEW_TTL_S`` seconds per
    process (an instance filed meanwhile appears that much later); whether the study is still
    served (not retracted) is asked of the database on every request (one indexed row)."""
    import time

    now = time.monotonic()
    hit = _VIEWS.get(study_uid)
    if hit is not None and now - hit[0] < VIEW_TTL_S:
        with p.db.reader() as db:
            status = db.scalar(select(Study.status).where(Study.study_uid == study_uid))
        if status is not None and status != study_state.RETRACTED:
            return hit[1]
    with p.db.reader() as db:
        study = catalog.served_study(db, study_uid)
        view = _view(db, study, p) if study is not None else None
    if view is None or not view.objects:
        raise NotServed(f"no study {study_uid}")
    _VIEWS.put(study_uid, (now, view))
    return view


def one_object(
    view: StudyView, series_uid: str | None, sop_uid: str | None
) -> catalog.CatalogObject:
    for obj in view.objects:
        if obj.sop_uid == sop_uid and (series_uid is None or obj.series_uid == series_uid):
            return obj
    raise NotServed(f"no instance {sop_uid} in study {view.study_uid}")


def of_series(view: StudyView, series_uid: str | None) -> list[catalog.CatalogObject]:
    found = [o for o in view.objects if series_uid is None or o.series_uid == series_uid]
    if not found:
        raise NotServed(f"no series {series_uid} in study {view.study_uid}")
    return found


# --- audit: one opening per user and study ---------------------------------------------------

_OPENED = _Lru(8192)  # (user id, study id) -> when this process last saw it recorded
_OPEN_LOCK = threading.Lock()


def opened(p: Platform, actor: audit.Actor, study_id: int) -> bool:
    """Record that ``actor`` opened the study through DICOMweb, once per ``OPEN_WINDOW_S``:
    True when this call recorded it. A process remembers what it recorded (no database work
    per frame); the database decides between processes: the study's row is locked (PostgreSQL
    ``FOR UPDATE``; SQLite's session holds the write lock), the window's events of this user
    on this study read, and the event added only when there is none, in one transaction."""
    now = utcnow()
    key = (actor.id, study_id)
    seen = _OPENED.get(key)
    if seen is not None and now - seen < timedelta(seconds=OPEN_WINDOW_S):
        return False
    with p.db.session() as db:
        study = db.get(Study, study_id)
        if study is None:
            return False
        study_state.lock_study(db, study)
        since = now - timedelta(seconds=OPEN_WINDOW_S)
        earlier = db.scalars(
            select(AuditEvent.detail).where(
                AuditEvent.actor_id == actor.id,
                AuditEvent.action == "view",
                AuditEvent.target_type == "study",
                AuditEvent.target_id == str(study_id),
                AuditEvent.at >= since,
            )
        ).all()
        recorded = not any((d or {}).get("via") == "dicomweb" for d in earlier)
        if recorded:
            audit.record(db, actor, "view", "study", study_id, via="dicomweb")
    with _OPEN_LOCK:
        _OPENED.put(key, now)
    return recorded


# --- QIDO-RS -----------------------------------------------------------------------------------


def _v(vr: str, *values: Any) -> dict[str, Any]:
    kept = [v for v in values if v is not None and v != ""]
    return {"vr": vr, "Value": kept} if kept else {"vr": vr}


def _pn(name: str | None) -> dict[str, Any]:
    return {"vr": "PN", "Value": [{"Alphabetic": name}]} if name else {"vr": "PN"}


def uid_list(value: str) -> list[str]:
    """A UID-list match value (PS3.18 8.3.4.1: comma or backslash separated)."""
    return [u for u in re.split(r"[,\\]", value) if u]


def _matches(value: str | None, pattern: str) -> bool:
    """Single value matching with ``*`` and ``?`` wildcards, case-insensitively for names
    (PS3.4 C.2.2.2.4: OHIF sends ``Doe*``); the empty pattern matches anything."""
    if not pattern:
        return True
    text = (value or "").casefold()
    pattern = pattern.casefold()
    if "*" in pattern or "?" in pattern:
        return fnmatch.fnmatchcase(text, pattern.replace("[", "[[]"))
    return text == pattern


def _date_in(date: str | None, query: str) -> bool:
    """A DA range match: ``20240101``, ``20240101-``, ``-20241231``, ``20240101-20241231``
    (OHIF's study list sends ranges)."""
    if not query:
        return True
    if not date:
        return False
    low, dash, high = query.replace(".", "").partition("-")
    if not dash:
        return date == low
    return (not low or date >= low) and (not high or date <= high)


@dataclass(frozen=True)
class StudyQuery:
    study_uids: list[str]
    patient_name: str = ""
    patient_id: str = ""
    accession: str = ""
    study_date: str = ""
    modalities: list[str] | None = None


STUDY_FROM_HEADER = ("00080030", "00080090", "00081030")  # StudyTime, Referring, Description
SERIES_FROM_HEADER = ("00080021", "00080031")  # SeriesDate, SeriesTime


def _from_header(
    p: Platform, view: StudyView, obj: catalog.CatalogObject, tags: tuple[str, ...]
) -> dict[str, Any]:
    """Attributes the database does not hold (OHIF's list asks for StudyDescription, a
    series' SeriesDate), from the first instance's cached DICOM JSON; none when the file
    cannot be read."""
    try:
        body = json.loads(instance_json(p, view, obj))
    except Exception as exc:  # broad: storage, pydicom's many types: no header (logged)
        logging.getLogger("medai.platform").warning(
            "QIDO-RS: header of study %s unreadable (%s)", view.study.id, type(exc).__name__
        )
        return {}
    return {t: body[t] for t in tags if t in body}


def study_attributes(view: StudyView, root: str, p: Platform | None = None) -> dict[str, Any]:
    s = view.study
    header = _from_header(p, view, view.objects[0], STUDY_FROM_HEADER) if p else {}
    series = {o.series_uid for o in view.objects}
    modalities = sorted({o.modality for o in view.objects if o.modality})
    return {
        "00080020": _v("DA", s.study_date),
        "00080050": _v("SH", s.accession),
        "00080061": _v("CS", *modalities),
        "00081190": _v("UR", f"{root}/studies/{view.study_uid}"),
        "00100010": _pn(view.patient_name),
        "00100020": _v("LO", view.patient_id),
        # the column's SealedText type opens it as it is read (it was unsealed a second time
        # here, which failed and left every study's birth date out)
        "00100030": _v("DA", s.patient_birth_date),
        "00100040": _v("CS", s.patient_sex if s.patient_sex in ("M", "F", "O") else None),
        "0020000D": _v("UI", view.study_uid),
        "00201206": _v("IS", len(series)),
        "00201208": _v("IS", len(view.objects)),
        **header,
    }


def search_studies(
    p: Platform, q: StudyQuery, limit: int, offset: int, root: str
) -> list[dict[str, Any]]:
    """QIDO-RS studies: the served studies matching ``q`` (newest first), ``offset`` and
    ``limit`` applied after matching. The DB filters what it holds in clear (UIDs, accession,
    date); the patient's name and ID are sealed and matched after decrypting, over at most
    ``MAX_SCAN`` studies."""
    out: list[dict[str, Any]] = []
    skipped = 0
    with p.db.reader() as db:
        stmt = select(Study).where(
            Study.study_uid.is_not(None), Study.status != study_state.RETRACTED
        )
        if q.study_uids:
            stmt = stmt.where(Study.study_uid.in_(q.study_uids))
        if q.accession and "*" not in q.accession and "?" not in q.accession:
            stmt = stmt.where(Study.accession == q.accession)
        for study in db.scalars(stmt.order_by(Study.id.desc()).limit(MAX_SCAN)):
            if not (
                _date_in(study.study_date, q.study_date) and _matches(study.accession, q.accession)
            ):
                continue
            view = _view(db, study)
            if not view.objects:
                continue
            if not (
                _matches(view.patient_name, q.patient_name)
                and _matches(view.patient_id, q.patient_id)
            ):
                continue
            if q.modalities and not {o.modality for o in view.objects} & set(q.modalities):
                continue
            if skipped < offset:
                skipped += 1
                continue
            out.append(study_attributes(view, root, p))
            if len(out) >= limit:
                break
    return out


def search_series(
    p: Platform,
    view: StudyView,
    root: str,
    series_uids: list[str],
    modality: str,
    number: str,
) -> list[dict[str, Any]]:
    """QIDO-RS series of a study, in series number order."""
    groups: dict[str, list[catalog.CatalogObject]] = {}
    for obj in view.objects:
        groups.setdefault(obj.series_uid, []).append(obj)
    out = []
    for uid, members in groups.items():
        first = members[0]
        if series_uids and uid not in series_uids:
            continue
        if not _matches(first.modality, modality):
            continue
        if number and str(first.series_number) != number:
            continue
        out.append(
            {
                "00080060": _v("CS", first.modality),
                "0008103E": _v("LO", first.series_description),
                "00081190": _v("UR", f"{root}/studies/{view.study_uid}/series/{uid}"),
                "0020000D": _v("UI", view.study_uid),
                "0020000E": _v("UI", uid),
                "00200011": _v("IS", first.series_number),
                "00201209": _v("IS", len(members)),
                **_from_header(p, view, first, SERIES_FROM_HEADER),
            }
        )
    return out


def search_instances(
    view: StudyView,
    root: str,
    series_uid: str | None,
    sop_uids: list[str],
    sop_class: str,
    number: str,
) -> list[dict[str, Any]]:
    """QIDO-RS instances of a study or of one of its series."""
    out = []
    for obj in view.objects:
        if series_uid is not None and obj.series_uid != series_uid:
            continue
        if sop_uids and obj.sop_uid not in sop_uids:
            continue
        if sop_class and obj.sop_class != sop_class:
            continue
        if number and str(obj.instance_number) != number:
            continue
        url = f"{root}/studies/{view.study_uid}/series/{obj.series_uid}/instances/{obj.sop_uid}"
        out.append(
            {
                "00080016": _v("UI", obj.sop_class),
                "00080018": _v("UI", obj.sop_uid),
                "00080060": _v("CS", obj.modality),
                "00081190": _v("UR", url),
                "0020000D": _v("UI", view.study_uid),
                "0020000E": _v("UI", obj.series_uid),
                "00200011": _v("IS", obj.series_number),
                "00200013": _v("IS", obj.instance_number),
            }
        )
    return out


# --- WADO-RS metadata ------------------------------------------------------------------------

_JSON = _Lru(CACHE_INSTANCES)  # (study uid, sop uid, file sha) -> DICOM JSON text


def _drop_nested_bulk(ds) -> None:
    """Large binary values inside sequences (an icon image) are left out of the metadata: a
    BulkDataURI names a top-level attribute here."""
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                for inner in list(item):
                    if inner.VR == "SQ":
                        _drop_nested_bulk_item(inner)
                    elif _is_bulk(inner):
                        del item[inner.tag]


def _drop_nested_bulk_item(elem) -> None:
    for item in elem.value:
        for inner in list(item):
            if inner.VR == "SQ":
                _drop_nested_bulk_item(inner)
            elif _is_bulk(inner):
                del item[inner.tag]


def _is_bulk(elem) -> bool:
    return (
        elem.VR in ("OB", "OD", "OF", "OL", "OV", "OW", "UN")
        and isinstance(elem.value, bytes)
        and len(elem.value) > BULK_THRESHOLD
    )


def instance_json(p: Platform, view: StudyView, obj: catalog.CatalogObject) -> str:
    """The instance's DICOM JSON (its file meta's transfer syntax included, its PixelData and
    other large binary values as BulkDataURIs under ``ROOT_TOKEN``), made once per stored file
    and kept in memory (see the module's docstring)."""
    key = (view.study_uid, obj.series_uid, obj.sop_uid, obj.file_sha)
    hit = _JSON.get(key)
    if hit is not None:
        return hit
    from pydicom import dcmread

    ds = dcmread(io.BytesIO(p.store.read(obj.file_sha)), force=True)
    ts = str(getattr(ds.file_meta, "TransferSyntaxUID", "") or EXPLICIT_LE)
    _drop_nested_bulk(ds)
    base = f"{ROOT_TOKEN}/studies/{view.study_uid}/series/{obj.series_uid}/instances/{obj.sop_uid}"

    def bulk(elem) -> str:
        if elem.tag == 0x7FE00010:
            return f"{base}/bulk/7FE00010"
        return f"{base}/bulk/{elem.tag:08X}"

    body = ds.to_json_dict(bulk_data_threshold=BULK_THRESHOLD, bulk_data_element_handler=bulk)
    # the study, series and instance as served (a reassigned conflict keeps its own file)
    body["0020000D"] = {"vr": "UI", "Value": [view.study_uid]}
    body["0020000E"] = {"vr": "UI", "Value": [obj.series_uid]}
    body["00080018"] = {"vr": "UI", "Value": [obj.sop_uid]}
    body["00020010"] = {"vr": "UI", "Value": [ts]}
    body["00083002"] = {"vr": "UI", "Value": [ts]}  # Available Transfer Syntax UID
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    _JSON.put(key, text)
    return text


def metadata(p: Platform, view: StudyView, objs: Iterable[catalog.CatalogObject]) -> str:
    """The DICOM JSON array of these instances, with ``ROOT_TOKEN`` still in it."""
    return "[" + ",".join(instance_json(p, view, o) for o in objs) + "]"


def etag(view: StudyView, objs: Iterable[catalog.CatalogObject], what: str) -> str:
    """A strong validator of an answer made only from these stored files: the same instances
    answer the same bytes."""
    import hashlib

    h = hashlib.sha256(f"{what}|{view.study_uid}".encode())
    for o in objs:
        h.update(f"|{o.series_uid}|{o.sop_uid}|{o.file_sha}".encode())
    return f'"{h.hexdigest()[:40]}"'


# --- WADO-RS frames and bulk data ----------------------------------------------------------------


@dataclass(frozen=True)
class Frames:
    transfer_syntax: str  # as sent: EXPLICIT_LE for any native one
    media_type: str  # application/octet-stream, or the encapsulated syntax's image type
    parts: list[bytes]


def _frames_exist(obj: catalog.CatalogObject, numbers: list[int], count: int) -> None:
    bad = [n for n in numbers if n > count]
    if bad:
        raise NotServed(f"instance {obj.sop_uid} has {count} frame(s), not frame {bad[0]}")


# file sha -> (frames, bytes per frame, offset of the pixel value in the stored file) of a
# native explicit-VR-little-endian instance: a frame request then decrypts and slices, without
# parsing the file again (the parse was half of a frame's own work). The files are content-
# addressed, so an entry never goes stale; 16 bytes an instance.
_LAYOUT = _Lru(CACHE_INSTANCES)


def _pixel_dataset(p: Platform, obj: catalog.CatalogObject, raw: bytes | None = None):
    from pydicom import dcmread

    if raw is None:
        raw = p.store.read(obj.file_sha)
    ds = dcmread(io.BytesIO(raw), force=True)
    if not any(k in ds for k in PIXEL_KEYWORDS):
        raise NoPixels(f"instance {obj.sop_uid} has no pixel data")
    ts = str(getattr(ds.file_meta, "TransferSyntaxUID", "") or EXPLICIT_LE)
    return ds, ts


# where an instance's frames are: its PixelData, or the float values of a Parametric Map (the
# AI's saliency map, ``reading.ai_objects``), which are never encapsulated (PS3.5 A.4)
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


_SYNTAX = _Lru(CACHE_INSTANCES)  # file sha -> its transfer syntax as sent


def stored_syntax(p: Platform, view: StudyView, obj: catalog.CatalogObject) -> str:
    """The transfer syntax the instance's frames are sent in (a native one as explicit VR
    little endian: the same pixel bytes), from its cached metadata: known before any frame is
    cut, so an unacceptable request is refused before the work."""
    hit = _SYNTAX.get(obj.file_sha)
    if hit is None:
        body = json.loads(instance_json(p, view, obj))
        ts = body.get("00020010", {}).get("Value", [EXPLICIT_LE])[0]
        hit = EXPLICIT_LE if ts in NATIVE else ts
        _SYNTAX.put(obj.file_sha, hit)
    return hit


def media_type_of(ts: str) -> str | None:
    """The frame media type of a transfer syntax medai can send as stored; None: none."""
    if ts in NATIVE:
        return "application/octet-stream"
    return ENCAPSULATED.get(ts)


def frames(p: Platform, obj: catalog.CatalogObject, numbers: list[int]) -> Frames:
    """Frames ``numbers`` (1-based) of the instance as stored: a native frame's pixel bytes
    (little endian), an encapsulated frame's fragments joined. ``NotServed`` for a frame past
    the last; ``NotAcceptable`` for a stored syntax medai cannot send (big endian)."""
    from pydicom.encaps import generate_frames

    layout = _LAYOUT.get(obj.file_sha)
    if layout is not None:
        count, size, at = layout
        _frames_exist(obj, numbers, count)
        data = p.store.read(obj.file_sha)
        parts = [data[at + (n - 1) * size : at + n * size] for n in numbers]
        return Frames(EXPLICIT_LE, "application/octet-stream", parts)
    raw = p.store.read(obj.file_sha)
    ds, ts = _pixel_dataset(p, obj, raw)
    count = int(getattr(ds, "NumberOfFrames", 1) or 1)
    _frames_exist(obj, numbers, count)
    if ts in NATIVE:
        bits = int(ds.BitsAllocated)
        size = int(ds.Rows) * int(ds.Columns) * int(getattr(ds, "SamplesPerPixel", 1) or 1)
        keyword = next(k for k in PIXEL_KEYWORDS if k in ds)
        if bits == 1:  # a binary SEG's frames: bit-packed, each sent from a byte boundary
            return Frames(
                EXPLICIT_LE,
                "application/octet-stream",
                [_bit_frame(ds[keyword].value, size, n) for n in numbers],
            )
        size *= bits // 8
        at = getattr(ds.get_item(keyword), "value_tell", None)
        data = ds[keyword].value
        if (
            ts == EXPLICIT_LE
            and isinstance(at, int)
            and len(data) >= count * size
            and raw[at : at + count * size] == data[: count * size]
        ):
            # where the stored file's pixel bytes start, checked against the parsed value:
            # the instance's next frames are cut without parsing it again
            _LAYOUT.put(obj.file_sha, (count, size, at))
        parts = [bytes(data[(n - 1) * size : n * size]) for n in numbers]
        return Frames(EXPLICIT_LE, "application/octet-stream", parts)
    media = ENCAPSULATED.get(ts)
    if media is None:
        raise NotAcceptable(f"frames stored in transfer syntax {ts} are not served")
    every = list(generate_frames(ds.PixelData, number_of_frames=count))
    return Frames(ts, media, [every[n - 1] for n in numbers])


def _bit_frame(data: bytes, size: int, n: int) -> bytes:
    """Frame ``n`` (1-based) of ``size`` one-bit pixels packed back to back (PS3.5 8.1.1: a
    frame need not start on a byte), packed again from its own first byte as a frame is sent
    (PS3.18 8.7.3.5.2), its last byte's unused bits zero."""
    from pydicom.pixels import pack_bits, unpack_bits

    start, end = (n - 1) * size, n * size
    if start % 8 == 0 and end % 8 == 0:  # whole bytes: as stored
        return bytes(data[start // 8 : end // 8])
    first = start // 8
    bits = unpack_bits(data[first : (end + 7) // 8])[start - first * 8 :][:size]
    return pack_bits(bits, pad=False)  # type: ignore[arg-type]  # unpack_bits gives an array


def bulk(p: Platform, obj: catalog.CatalogObject, tag: int) -> bytes | list[bytes]:
    """A top-level binary value of the instance (its PixelData: every frame, one part each
    when encapsulated)."""
    from pydicom import dcmread

    ds = dcmread(io.BytesIO(p.store.read(obj.file_sha)), force=True)
    if tag not in ds or ds[tag].VR == "SQ" or not isinstance(ds[tag].value, bytes):
        raise NotServed(f"instance {obj.sop_uid} has no bulk data {tag:08X}")
    ts = str(getattr(ds.file_meta, "TransferSyntaxUID", "") or EXPLICIT_LE)
    if tag == 0x7FE00010 and ts not in NATIVE:
        count = int(getattr(ds, "NumberOfFrames", 1) or 1)
        return frames(p, obj, list(range(1, count + 1))).parts
    return bytes(ds[tag].value)
