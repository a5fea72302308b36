"""A study's series as the viewer scrolls them: each series' slices in anatomical order (a
multi-frame instance's frames as slices of their own), which slices the AI read and which carry
its decision (the imaging result's ``read``), which one its heatmap is of, and an 8-bit display
rendition per slice, made once and stored like the study's own (``analysis.display_rendition``).

Why: a brain MRI study is a series of 20-200 slices, and the study page showed one image and
never which one the AI had read (issue 58). The slices are in the order the AI reads them
(``imaging.slices.order``: position along the slice normal, else InstanceNumber, then UID),
never in the order they arrived, so "slice 12 / 20" is the same slice for the viewer, the
result's ``read`` and a series sent in reverse.

Headers are read once per stored file (content-addressed: its slices never change) and kept in
a bounded cache, with their limits checked and never their pixels; a series' order is kept per
set of instances. A slice's rendition decodes only that slice (one frame of a multi-frame
instance), within the decoders' limits, inside the caller's imaging lane.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from medai.core.errors import MedaiError
from medai.platform.access import audit
from medai.platform.context import Platform
from medai.platform.records.tables import DicomInstance, InstanceRendition, Study
from medai.platform.worklist import ai_results, listing, study_state
from medai.services import imaging as imaging_service
from medai.services import series_reading

CACHE_FILES = 8192  # headers kept (a few hundred bytes each): dozens of 200-slice series
CACHE_SERIES = 256  # series orders kept


class SliceNotFound(MedaiError, LookupError):
    """No such slice in this study (an instance of another study, a frame past its last)."""

    status, code = 404, "not_found"


@dataclass(frozen=True)
class Slice:
    """One image the viewer shows: an instance, or one frame of a multi-frame instance."""

    instance_id: int
    sop_uid: str
    frame: int | None  # 1-based frame of a multi-frame instance; None: the instance's image
    number: int | None

    @property
    def ref(self) -> str:
        """How the result's ``read`` names it: the SOP Instance UID, "<sop>#<frame>" for a
        frame."""
        return self.sop_uid if self.frame is None else f"{self.sop_uid}#{self.frame}"


class _Lru:
    """A small bounded least-recently-used map, shared by the threads of a process."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            return hit

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


HEADERS = _Lru(CACHE_FILES)  # an instance's slices by its stored file's sha256
ORDERS = _Lru(CACHE_SERIES)  # a series' slices in order, by its (SOP UID, file) pairs


def slice_refs(p: Platform, sha: str) -> tuple[Any, ...]:
    """The slices of one stored instance as its header describes them (one per frame of a
    multi-frame instance; ``imaging.slices.slice_refs``: limits checked, pixels never read);
    none for an instance that holds no image (a structured report, a key object note) or whose
    header cannot be read. Kept per stored file: a file's content never changes."""
    hit = HEADERS.get(sha)
    if hit is None:
        try:
            hit = tuple(series_reading.slices(p.store.read(sha)))
        except imaging_service.ImageInputError:  # no image, or not within limits: not shown
            hit = ()
        HEADERS.put(sha, hit)
    return hit


@dataclass(frozen=True)
class _Row:
    id: int
    sop_uid: str
    series_uid: str
    sop_class: str
    modality: str | None
    description: str | None
    series_number: int | None
    body_part: str | None
    view_position: str | None
    number: int | None
    sha: str


def _rows(db, study_id: int) -> list[_Row]:
    return [
        _Row(
            i.id,
            i.sop_uid,
            i.series_uid,
            i.sop_class,
            i.modality,
            i.series_description,  # sealed: decrypted here, for a reader the route let in
            i.series_number,
            i.body_part,
            i.view_position,
            i.instance_number,
            i.file_sha256,
        )
        for i in listing.instances(db, [study_id])[study_id]
    ]


def _slices(p: Platform, rows: list[_Row]) -> list[Slice]:
    """One series' slices in anatomical order (``imaging.slices.order``, as the AI reads
    them; its instances that hold no image left out). The order is kept per set of instances:
    a series is ordered once per process, not per view."""
    key = tuple(sorted((r.sop_uid, r.sha) for r in rows))
    known = ORDERS.get(key)
    if known is not None:
        return known
    by_sop = {r.sop_uid: r for r in rows}
    refs = [ref for r in rows for ref in slice_refs(p, r.sha) if ref.sop_uid == r.sop_uid]
    ordered = [
        Slice(by_sop[ref.sop_uid].id, ref.sop_uid, ref.frame, ref.instance_number)
        for ref in series_reading.ordered(refs)
    ]
    ORDERS.put(key, ordered)
    return ordered


def _reads_file(p: Platform, rows: list[_Row], sha: str) -> str | None:
    """The slice an analysis of the study's file read: its instance, the middle frame of a
    multi-frame one (what ``imaging.io`` decodes for a single read)."""
    row = next((r for r in rows if r.sha == sha), None)
    if row is None:
        return None
    frames = len(slice_refs(p, row.sha))
    return row.sop_uid if frames <= 1 else f"{row.sop_uid}#{frames // 2 + 1}"


def series_of(p: Platform, study_id: int) -> dict[str, Any]:
    """The study's series for the viewer (``GET /api/v1/studies/{id}/series``): each with its
    slices in anatomical order and, per slice, whether the AI read it, whether it is a key
    slice and whether the stored heatmap is of it; ``start``: the slice the viewer opens on
    (the first key slice, else the slice the heatmap or the analysis was of, else the first).
    A study without DICOM instances (an uploaded image) has no series: the viewer shows the
    study's image. Raises ``LookupError`` for no such study."""
    with p.db.reader() as db:
        study = db.get(Study, study_id)
        if study is None:
            raise LookupError(f"no study {study_id}")
        rows = _rows(db, study_id)
        result = ai_results.latest_result(db, study_id)
        payload = dict(result.payload or {}) if result is not None else {}
        has_heatmap = result is not None and result.heatmap_sha256 is not None
        file_sha = study.file_sha256
    analysed = result is not None and not payload.get("refused")
    read = payload.get("read") if analysed and isinstance(payload.get("read"), dict) else None
    file_ref = _reads_file(p, rows, file_sha) if rows else None
    if read is not None:
        read_refs = {str(r) for r in read.get("read_instances") or []}
        key_refs = {str(r) for r in read.get("key_instances") or []}
        read_series = read.get("series_uid")
        # a copy of a slice (same place or same pixels) counts once here as for the AI: the
        # viewer's counter numbers slices as the draft does ("10–11")
        copies = {str(d.get("instance")) for d in read.get("duplicates") or []}
        read_uids = {
            str(a.get("series_uid")) for a in read.get("series") or [] if a.get("read")
        } or {read_series}
    else:  # a result stored before series were read: it read the study's file
        read_refs = {file_ref} if analysed and file_ref else set()
        key_refs, read_series, copies, read_uids = set(), None, set(), set()
    heat_ref = (str(payload.get("heatmap_instance") or "") or file_ref) if has_heatmap else None
    groups: dict[str, list[_Row]] = {}
    for row in rows:
        groups.setdefault(row.series_uid, []).append(row)
    out, start = [], None
    for uid, members in groups.items():
        slices = [s for s in _slices(p, members) if s.ref not in copies]
        marks = [
            {
                "ref": s.ref,
                "sop_uid": s.sop_uid,
                "frame": s.frame,
                "number": s.number,
                "read": s.ref in read_refs,
                "key": s.ref in key_refs,
                "heatmap": s.ref == heat_ref,
            }
            for s in slices
        ]
        first = members[0]
        out.append(
            {
                "series_uid": uid,
                "number": first.series_number,
                "modality": first.modality,
                "description": first.description,
                "body_part": first.body_part,
                "view_position": first.view_position,
                "instances": len(members),
                "read_by_ai": (uid in read_uids) if read_series else any(m["read"] for m in marks),
                "decides": uid == read_series,
                "slices": marks,
            }
        )
    for want in ("key", "heatmap", "read"):
        start = next(
            (
                {"series_uid": s["series_uid"], "ref": m["ref"]}
                for s in out
                if want != "key" or not read_series or s["series_uid"] == read_series
                for m in s["slices"]
                if m[want]
            ),
            None,
        )
        if start is not None:
            break
    if start is None:
        start = next(
            (
                {"series_uid": s["series_uid"], "ref": s["slices"][0]["ref"]}
                for s in out
                if s["slices"]
            ),
            None,
        )
    return {"study_id": study_id, "series": out, "start": start}


def heatmap_source(db, study: Study, payload: dict[str, Any] | None) -> tuple[str, int | None]:
    """The stored file (and frame, of a multi-frame instance) the result's heatmap is of: its
    ``heatmap_instance`` ("<sop>" or "<sop>#<frame>", a slice of the study), else the study's
    file, as before series were read."""
    ref = str((payload or {}).get("heatmap_instance") or "")
    if ref:
        sop, _, frame = ref.partition("#")
        sha = db.scalar(
            select(DicomInstance.file_sha256).where(
                DicomInstance.study_id == study.id, DicomInstance.sop_uid == sop
            )
        )
        if sha is not None:
            return sha, int(frame) if frame.isdigit() and int(frame) > 0 else None
    return study.file_sha256, None


def picture_of(db, study: Study, result) -> tuple[str, int | None] | None:
    """The image (file and frame) a report shows with ``result`` (an ``AIResultRow``) when it
    is not the study's image of the moment: a signed report's reading after a later series
    moved the study's image to another slice. None when the study's own display rendition
    shows it (the newest reading, a result from before results kept their source)."""
    source = getattr(result, "source_sha256", None)
    if result is None or source is None or source == study.file_sha256:
        return None
    sha, frame = heatmap_source(db, study, result.payload)
    return (sha, frame) if sha != study.file_sha256 else (source, None)


class NoHeatmap(MedaiError, LookupError):
    status, code = 404, "not_found"


@dataclass(frozen=True)
class StoredHeatmap:
    """The study's stored heatmap (``png_sha``: the overlay of ``label``, with its
    probability and model), the file and frame it is of (``heatmap_source``) and the study's
    task: what a heatmap of another label is computed from."""

    task: str
    file_sha: str
    frame: int | None
    png_sha: str
    label: str
    probability: float | None
    model_name: str | None
    model_hash: str | None


def stored_heatmap(
    p: Platform, study_id: int, actor: audit.Actor, label: str | None
) -> StoredHeatmap:
    """The latest result's heatmap, its view audited (with the ``label`` asked for): none
    yet (the analysis did not finish, or refused the image) is ``NoHeatmap`` (404)."""
    with p.db.session() as db:
        study = study_state.get(db, study_id)
        row = ai_results.latest_result(db, study_id)
        if row is None or row.heatmap_sha256 is None:
            raise NoHeatmap("no heatmap (analysis not finished or refused)")
        audit.record(db, actor, "view", "heatmap", study_id, label=label)
        file_sha, frame = heatmap_source(db, study, row.payload)
        heat_label = row.heatmap_label or ""
        probability = next(
            (
                f.get("probability")
                for f in (row.payload or {}).get("findings", [])
                if isinstance(f, dict) and f.get("label") == heat_label
            ),
            None,
        )
        return StoredHeatmap(
            study.task,
            file_sha,
            frame,
            row.heatmap_sha256,
            heat_label,
            probability,
            row.model_name,
            row.model_hash,
        )


# --- renditions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SliceFile:
    """A slice's instance row, its stored file and its stored rendition (None: not made)."""

    instance_id: int
    frame: int
    file_sha: str
    display_sha: str | None


def slice_file(p: Platform, study_id: int, sop_uid: str, frame: int | None) -> SliceFile:
    """The slice ``sop_uid`` (frame ``frame``, 1-based; None: the instance's first) of the
    study; ``SliceNotFound`` for an instance of no or another study, or a frame past its last.
    Raises ``LookupError`` for no such study."""
    with p.db.reader() as db:
        if db.get(Study, study_id) is None:
            raise LookupError(f"no study {study_id}")
        row = db.scalar(
            select(DicomInstance).where(
                DicomInstance.sop_uid == sop_uid, DicomInstance.study_id == study_id
            )
        )
        if row is None:
            raise SliceNotFound(f"study {study_id} has no instance {sop_uid}")
        instance_id, sha = row.id, row.file_sha256
    stored = stored_rendition(p, instance_id, frame or 1)
    if stored is None:
        frames = max(1, len(slice_refs(p, sha)))
        if (frame or 1) > frames:
            raise SliceNotFound(
                f"instance {sop_uid} has {frames} frame{'s' if frames > 1 else ''}, "
                f"not a frame {frame}"
            )
    return SliceFile(instance_id, frame or 1, sha, stored)


def stored_rendition(p: Platform, instance_id: int, frame: int) -> str | None:
    with p.db.reader() as db:
        return db.scalar(
            select(InstanceRendition.display_sha256).where(
                InstanceRendition.instance_id == instance_id, InstanceRendition.frame == frame
            )
        )


def keep_rendition(p: Platform, instance_id: int, frame: int, png: bytes) -> str:
    """Store a slice's rendition (the first stored wins: the unique key makes two nodes that
    made one at once agree on one)."""
    sha = p.store.put_bytes(png)
    try:
        with p.db.session() as db:
            db.add(InstanceRendition(instance_id=instance_id, frame=frame, display_sha256=sha))
        return sha
    except IntegrityError:  # another node stored one first
        return stored_rendition(p, instance_id, frame) or sha


def make_rendition(p: Platform, found: SliceFile) -> str:
    """Decode the slice (its frame only, within the decoders' limits) into its display
    rendition, stored once. Raises ``ImageInputError``; callers run it in the imaging lane."""
    frames = len(slice_refs(p, found.file_sha))
    with imaging_service.decoded(
        p.store.read(found.file_sha), frame=found.frame if frames > 1 else None
    ) as image:
        png = imaging_service.display_png(image)
    return keep_rendition(p, found.instance_id, found.frame, png)
