"""A series' slices as their headers describe them, before any pixel is decoded: one
``SliceRef`` per instance or frame (``slice_refs``, bounded like every image input:
``imaging.limits``), in anatomical order whatever order they arrived in (``order``), each plane
counted once (``distinct``), and the slices read of a long series (``sample``). Reading them
is ``imaging.series``.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from medai.imaging.limits import (
    MAX_BYTES,
    ImageInputError,
    ImageTooLarge,
    NoPixelData,
    check_dicom_file,
    dicom_header,
)

DEFAULT_CAP = 200
"""The most slices read of one series. Brain MRI series have 20–200 slices: every one is read.
Beyond it (thin-slice 3D acquisitions) evenly spaced slices are read, both ends included, so
the cost of a study stays bounded (about 30 ms of CPU a slice with the bundled model, 7 s for
200 slices on two cores: ``docs/benchmarks/series.md``). The run rule counts *read* slices: in a sampled series a
lesion must span ``k`` read slices, i.e. more of the series' own slices."""

MAX_SLICES = 4096
"""The most frames one instance may declare for series reading (``ImageTooLarge`` beyond): far
more than any MR acquisition, few enough that the references stay small."""


@dataclass(frozen=True)
class SliceRef:
    """One slice of a series as its header describes it (no pixels).

    ``position`` is the slice's distance in mm along its normal (ImagePositionPatient ·
    (row × column direction of ImageOrientationPatient)), None when the header lacks either;
    ``frame`` is the 1-based frame number within a multi-frame instance (None for a
    single-frame one)."""

    sop_uid: str
    instance_number: int | None = None
    position: float | None = None
    frame: int | None = None
    series_uid: str | None = None
    series_number: int | None = None
    localizer: bool = False
    geometry: tuple[float, ...] | None = None  # (IPP, IOP) rounded: a slice's place in space
    series_description: str | None = None
    view_position: str | None = None  # a film's ViewPosition (a chest study's frontal film)

    @property
    def key(self) -> str:
        """How the slice is named in a result: the SOP Instance UID, ``<uid>#<frame>`` for a
        frame."""
        return self.sop_uid if self.frame is None else f"{self.sop_uid}#{self.frame}"


def _floats(value, n: int) -> np.ndarray | None:
    try:
        arr = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr if arr.shape == (n,) and np.isfinite(arr).all() else None


def _position(ipp, iop) -> float | None:
    """Distance along the slice normal, or None when the geometry is missing or degenerate."""
    point, cosines = _floats(ipp, 3), _floats(iop, 6)
    if point is None or cosines is None:
        return None
    normal = np.cross(cosines[:3], cosines[3:])
    length = float(np.linalg.norm(normal))
    if length < 1e-6:
        return None
    return round(float(point @ (normal / length)), 4)  # 0.1 µm: float noise never reorders


def _geometry(ipp, iop) -> tuple[float, ...] | None:
    """The slice's ImagePositionPatient (0.01 mm) and ImageOrientationPatient (1e-4), rounded:
    two instances with the same geometry show the same plane of the patient (a copy re-sent
    under a new SOP Instance UID is one), None when the header lacks either."""
    point, cosines = _floats(ipp, 3), _floats(iop, 6)
    if point is None or cosines is None:
        return None
    # + 0.0 turns -0.0 into 0.0: the same plane never differs by the sign of a zero
    return tuple(round(float(v), 2) + 0.0 for v in point) + tuple(
        round(float(v), 4) + 0.0 for v in cosines
    )


def _item(ds, sequence: str):
    seq = ds.get(sequence) if ds is not None else None
    return seq[0] if seq else None


def _frame_geometry(ds, shared, frame_ds) -> tuple[object, object]:
    """(ImagePositionPatient, ImageOrientationPatient) of one frame of an enhanced object:
    its own functional groups first, then the shared ones, then the top level."""
    ipp = iop = None
    for groups in (frame_ds, shared):
        if ipp is None and (plane := _item(groups, "PlanePositionSequence")) is not None:
            ipp = plane.get("ImagePositionPatient")
        if iop is None and (plane := _item(groups, "PlaneOrientationSequence")) is not None:
            iop = plane.get("ImageOrientationPatient")
    return ipp, iop if iop is not None else ds.get("ImageOrientationPatient")


def _int(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def slice_refs(data: bytes, max_bytes: int = MAX_BYTES) -> list[SliceRef]:
    """The slices of one DICOM instance, from its header alone: one for a single-frame
    instance, one per frame of a multi-frame one (positions from its per-frame functional
    groups where present). The pixel data is never read (deferred); the declared size is
    checked against the decoding limits first (``ImageTooLarge``), an instance without pixel
    data raises ``NoPixelData`` and anything that is not DICOM ``ImageInputError``."""
    import pydicom

    if len(data) > max_bytes:
        raise ImageTooLarge(f"file is too large ({len(data):,} bytes; limit {max_bytes:,})")
    if len(data) < 132 or data[128:132] != b"DICM":
        raise ImageInputError("not a DICOM object: a series is read from DICOM instances")
    check_dicom_file(io.BytesIO(data))  # a deflated dataset is inflated within bounds
    try:
        ds = pydicom.dcmread(io.BytesIO(data), defer_size=1024)
    except Exception as exc:  # broad: pydicom raises many types (ImageInputError)
        raise ImageInputError(f"malformed DICOM file ({exc})") from None
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise NoPixelData("DICOM file has no pixel data, so it is no slice of a series")
    _, _, frames, _, _, _ = dicom_header(ds)
    if frames > MAX_SLICES:
        raise ImageTooLarge(f"DICOM object declares {frames:,} frames; limit {MAX_SLICES:,}")
    meta = getattr(ds, "file_meta", None)
    sop = str(ds.get("SOPInstanceUID", "") or (meta or {}).get("MediaStorageSOPInstanceUID", ""))
    if not sop:
        raise ImageInputError("DICOM object has no SOP Instance UID")
    common: dict[str, Any] = {
        "sop_uid": sop,
        "instance_number": _int(ds.get("InstanceNumber")),
        "series_uid": str(ds.get("SeriesInstanceUID", "") or "") or None,
        "series_number": _int(ds.get("SeriesNumber")),
        "localizer": "LOCALIZER" in [str(v).upper() for v in (ds.get("ImageType") or [])],
        "series_description": str(ds.get("SeriesDescription", "") or "")[:64] or None,
        "view_position": str(ds.get("ViewPosition", "") or "")[:16] or None,
    }
    if frames == 1:
        ipp, iop = ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient")
        return [SliceRef(position=_position(ipp, iop), geometry=_geometry(ipp, iop), **common)]
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    if len(per_frame) != frames:
        per_frame = [None] * frames  # no per-frame geometry: frames keep their file order
    refs = []
    for number, frame_ds in enumerate(per_frame, start=1):
        ipp, iop = _frame_geometry(ds, shared, frame_ds)
        known = frame_ds is not None or shared is not None
        position = _position(ipp, iop) if known else None
        # a frame's place in space only from its own plane position (a shared one would make
        # every frame "the same plane")
        own = _item(frame_ds, "PlanePositionSequence") is not None
        geometry = _geometry(ipp, iop) if own else None
        refs.append(SliceRef(position=position, geometry=geometry, frame=number, **common))
    return refs


def _order_key(ref: SliceRef, by_position: bool, by_number: bool) -> tuple:
    return (
        ref.position if by_position else 0.0,
        ref.instance_number if by_number else 0,
        ref.sop_uid,
        ref.frame or 0,
    )


def order(refs: Iterable[SliceRef]) -> list[SliceRef]:
    """The slices in anatomical order, the same whatever order they came in.

    By position along the slice normal when every slice has one, else by instance number when
    every slice has one (a criterion is used for all slices or for none, so that slices with
    and without geometry are never interleaved arbitrarily); SOP Instance UID and frame number
    break ties. A slice given twice (an instance re-sent) is kept once."""
    items = list(refs)
    by_position = all(r.position is not None for r in items)
    by_number = all(r.instance_number is not None for r in items)
    unique: dict[str, SliceRef] = {}
    for ref in sorted(items, key=lambda r: _order_key(r, by_position, by_number)):
        unique.setdefault(ref.key, ref)
    return list(unique.values())


@dataclass(frozen=True)
class Duplicate:
    """An instance set aside because another shows the same thing (``distinct``)."""

    ref: SliceRef
    same_as: SliceRef
    reason: Literal["same_position", "same_pixels"]


def distinct(ordered: Sequence[SliceRef]) -> tuple[list[SliceRef], list[Duplicate]]:
    """The slices that count, each once: of instances with the same ImagePositionPatient and
    ImageOrientationPatient (a copy re-sent under a new SOP Instance UID, a second acquisition
    at the same plane) the first in anatomical order is kept and the others set aside, so no
    number of copies can make a run of "neighbouring" slices. ``ordered`` is ``order``'s
    output, so the slice kept does not depend on the order of arrival. Slices without
    geometry are compared by their decoded pixels when read (``read_series``)."""
    kept: list[SliceRef] = []
    first: dict[tuple[float, ...], SliceRef] = {}
    dups: list[Duplicate] = []
    for ref in ordered:
        if ref.geometry is not None and ref.geometry in first:
            dups.append(Duplicate(ref, first[ref.geometry], "same_position"))
            continue
        if ref.geometry is not None:
            first[ref.geometry] = ref
        kept.append(ref)
    return kept, dups


def apart(a: SliceRef, b: SliceRef) -> bool:
    """Whether two slices' headers place them at different places of the patient: different
    geometry, or (without geometry) different instance numbers."""
    if a.geometry is not None and b.geometry is not None:
        return a.geometry != b.geometry
    if a.instance_number is not None and b.instance_number is not None:
        return a.instance_number != b.instance_number or a.frame != b.frame
    return a.frame != b.frame and a.sop_uid == b.sop_uid


def pixel_digest(pixels: np.ndarray) -> str:
    """What makes two decoded slices identical: dtype, shape and every value (a copy in
    another transfer syntax decodes to the same array: FIELD-NOTES)."""
    import hashlib

    arr = np.ascontiguousarray(pixels)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def sample_indices(n: int, cap: int) -> list[int]:
    """Which of ``n`` ordered slices are read: all when ``n <= cap``, else ``cap`` evenly
    spaced ones with the first and the last (integer arithmetic, no float rounding)."""
    if cap < 1:
        raise ValueError(f"cap must be at least 1, not {cap}")
    if n <= cap:
        return list(range(n))
    if cap == 1:
        return [(n - 1) // 2]
    span, steps = n - 1, cap - 1
    return [(2 * i * span + steps) // (2 * steps) for i in range(cap)]


def sample(ordered: Sequence[SliceRef], cap: int = DEFAULT_CAP) -> list[SliceRef]:
    """Every slice up to ``cap``, beyond it evenly spaced ones with both ends
    (``sample_indices``)."""
    return [ordered[i] for i in sample_indices(len(ordered), cap)]
