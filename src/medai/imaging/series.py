"""Series-level reading: every slice of an MRI series (up to a cap), one study decision.

A study used to be decided from whichever instance arrived first; a 20-slice glioma series whose
first slice happened to be normal read "No tumour". Here a series is read the way a radiologist
reads it:

1. ``slice_refs`` reads each instance's *header* only (bounded like every image input:
   ``imaging.limits``) into ``SliceRef``s, one per frame of a multi-frame instance;
2. ``order`` puts them in anatomical order (position along the slice normal, then instance
   number, then UID and frame): the order never depends on the order of arrival;
3. ``sample`` keeps every slice up to ``DEFAULT_CAP``, beyond it evenly spaced slices with both
   ends;
4. ``read_series`` decodes only those slices, a batch at a time (never the whole series at
   once), runs them through the predictor, and turns the per-slice probabilities into one
   study decision with an aggregation rule (``SeriesRule``) chosen on validation and recorded
   in the model's operating points (``imaging.series_fit``); the decision itself comes from the
   predictor's own decision logic (``imaging.decision``) on the aggregated probabilities;
5. the *key slices* are the ones that carry the decision (the contiguous run of slices
   supporting the decided finding), recorded in the result's ``read`` with every slice read;
   ``SeriesRead.explain`` names the slice whose Grad-CAM shows the finding.

The decision is a function of the set of slices, not of their arrival: batches are formed
after ordering, and every tie is broken by anatomical order.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from medai.core.task_registry import Task
from medai.imaging.decision import Decision, OperatingPolicy, decide
from medai.imaging.io import LoadedImage, Refusal
from medai.imaging.limits import (
    MAX_BYTES,
    ImageInputError,
    ImageTooLarge,
    NoPixelData,
    check_dicom_file,
    dicom_header,
)
from medai.imaging.results import (
    Finding,
    ImageInfo,
    ImagingResult,
    ReadDuplicate,
    ReadExclusion,
    ReadInfo,
    SeriesAccount,
    SeriesChoice,
    UndecidedSlices,
)
from medai.imaging.scope import series_scope

DEFAULT_CAP = 200
"""The most slices read of one series. Brain MRI series have 20–200 slices: every one is read.
Beyond it (thin-slice 3D acquisitions) evenly spaced slices are read, both ends included, so
the cost of a study stays bounded (about 30 ms of CPU a slice with the bundled model, 7 s for
200 slices on two cores: ``docs/benchmarks/series.md``). The run rule counts *read* slices: in a sampled series a
lesion must span ``k`` read slices, i.e. more of the series' own slices."""

MAX_SLICES = 4096
"""The most frames one instance may declare for series reading (``ImageTooLarge`` beyond): far
more than any MR acquisition, few enough that the references stay small."""

BATCH = 16
"""Slices decoded and run through the network at once: what bounds the memory of a read (the
decoded pixels of one batch, never the series)."""

RuleName = Literal["mean", "max", "top_k", "run"]
RULE_NAMES: tuple[str, ...] = get_args(RuleName)


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


def _apart(a: SliceRef, b: SliceRef) -> bool:
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


class SuspectRule(BaseModel):
    """When slices that suggest a tumour, too few for the rule to decide it, keep a series
    from reading "no tumour" (a small lesion, issue 67): a slice *suggests* a tumour class when
    it is its most probable class with at least ``min_probability``; ``min_slices``
    neighbouring such slices leave the series undecided (``small_lesion``) with them as its
    key slices. Chosen on validation series for a stated cost (``docs/benchmarks/
    small_lesion.md``): a missed lesion against a normal series left for the radiologist."""

    model_config = ConfigDict(frozen=True)

    min_probability: float = Field(..., ge=0.0, le=1.0)
    min_slices: int = Field(default=1, ge=1)


class SeriesRule(BaseModel):
    """How the probabilities of a series' slices become one study's probabilities.

    - ``mean``: the mean over the slices;
    - ``max``: the most suspicious slice alone (the highest probability of any finding);
    - ``top_k``: the mean of the ``k`` most suspicious slices;
    - ``run``: a finding needs support on ``k`` neighbouring slices. In a one-class task (brain
      MRI) the tumour class with the longest contiguous run of slices whose most probable class
      it is, when that run has at least ``k`` slices, gives the mean of that run; with no such
      run the mean of the slices read as normal does (of all slices when none is). In a
      multi-label task a finding's study probability is the best, over windows of ``k``
      neighbouring slices, of the lowest probability in the window (it passes its threshold
      exactly when ``k`` neighbouring slices do), and the normal label's the lowest over the
      slices. ``k`` is never more than the slices read.

    For the normal label of a multi-label task ``max`` and ``top_k`` take the least normal
    slices. Every rule is a function of the slices in anatomical order, ties broken by it."""

    model_config = ConfigDict(frozen=True)

    name: RuleName
    k: int = Field(default=1, ge=1, description="top_k: slices averaged; run: neighbouring slices")
    suspect: SuspectRule | None = Field(
        default=None,
        description="one-class tasks: slices too few to decide still keep 'normal' away",
    )

    @property
    def tag(self) -> str:
        """The name recorded in a result's ``read.rule`` (``run:3``, ``mean``)."""
        return self.name if self.name in ("mean", "max") else f"{self.name}:{self.k}"

    @classmethod
    def parse(cls, tag: str) -> SeriesRule:
        name, _, k = tag.partition(":")
        return cls.model_validate({"name": name, "k": int(k) if k else 1})


DEFAULT_SUSPECT = SuspectRule(min_probability=0.95, min_slices=1)
"""The small-lesion rule of a model whose operating points record none: chosen on the bundled
brain MRI model's validation series (``benchmarks/small_lesion_benchmark.py``,
``docs/benchmarks/small_lesion.md``)."""

DEFAULT_RULE = SeriesRule(name="run", k=3, suspect=DEFAULT_SUSPECT)
"""The rule of a model whose operating points record none (fitted before series reading): a
finding needs three neighbouring slices, so one or two stray slices never decide a study. It is
the rule the bundled brain MRI model's validation series chose (macro-F1 0.95 against 0.77 for
the mean and 0.67 for the most suspicious slice: ``docs/benchmarks/series.md``); a model whose
slice errors differ should record its own (``medai imaging fit-series-rule``)."""

SINGLE_IMAGE = "single_image"


def rule_for(predictor) -> SeriesRule:
    """The model's recorded rule (its operating points), else ``DEFAULT_RULE``; its recorded
    small-lesion rule, else ``DEFAULT_SUSPECT``."""
    raw = getattr(predictor, "series_rule", None)
    if not raw:
        return DEFAULT_RULE
    try:
        suspect = raw.get("suspect")
        return SeriesRule(
            name=raw["name"],
            k=int(raw.get("k", 1)),
            suspect=SuspectRule(**suspect) if suspect else DEFAULT_SUSPECT,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(
            f"the model's recorded series rule is not valid ({raw!r}: {exc})"
        ) from None


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of True, in order."""
    out, start = [], None
    for i, v in enumerate(mask.tolist() + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append((start, i - start))
            start = None
    return out


def _best_run(mask: np.ndarray, values: np.ndarray) -> tuple[int, int] | None:
    """The longest run of ``mask``; ties: the higher mean of ``values`` over it, then the
    earlier."""
    runs = _runs(mask)
    if not runs:
        return None
    return max(runs, key=lambda r: (r[1], float(values[r[0] : r[0] + r[1]].mean()), -r[0]))


def _normal_index(task: Task, labels: Sequence[str]) -> int | None:
    normal = task.normal
    return list(labels).index(normal) if normal is not None and normal in labels else None


def _suspicion(probs: np.ndarray, z: int | None) -> np.ndarray:
    """How strongly each slice suggests a finding: 1 - P(normal), else its top probability."""
    return 1.0 - probs[:, z] if z is not None else probs.max(axis=1)


def aggregate(
    probs: np.ndarray,
    rule: SeriesRule,
    task: Task,
    labels: Sequence[str],
) -> np.ndarray:
    """The study's probabilities (``labels`` order) from the slices' (rows, anatomical
    order) under ``rule`` (see ``SeriesRule``)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or not len(probs):
        raise ValueError("a series needs at least one slice's probabilities")
    n = len(probs)
    k = min(rule.k, n)
    z = _normal_index(task, labels)
    suspicion = _suspicion(probs, z)
    if rule.name == "mean":
        return probs.mean(axis=0)
    if not task.multilabel:
        if rule.name == "max":
            return probs[int(np.argmax(suspicion))].copy()
        if rule.name == "top_k":
            top = np.sort(np.argsort(-suspicion, kind="stable")[:k])
            return probs[top].mean(axis=0)
        top = probs.argmax(axis=1)
        best: tuple | None = None
        for j in range(probs.shape[1]):
            if j == z:
                continue
            run = _best_run(top == j, probs[:, j])
            if run is not None and run[1] >= k:
                score = (run[1], float(probs[run[0] : run[0] + run[1], j].mean()), -run[0], -j)
                if best is None or score > best[0]:
                    best = (score, run)
        if best is not None:
            start, length = best[1]
            return probs[start : start + length].mean(axis=0)
        normal = top == z if z is not None else np.zeros(n, dtype=bool)
        return probs[normal].mean(axis=0) if normal.any() else probs.mean(axis=0)
    if rule.name == "max":
        out, normal = probs.max(axis=0), probs[:, z].min() if z is not None else None
    elif rule.name == "top_k":
        out = -np.sort(-probs, axis=0)[:k].mean(axis=0)
        normal = np.sort(probs[:, z])[:k].mean() if z is not None else None
    else:
        windows = np.lib.stride_tricks.sliding_window_view(probs, k, axis=0)
        out, normal = windows.min(axis=2).max(axis=0), probs[:, z].min() if z is not None else None
    if z is not None:
        out[z] = normal
    return out


def _key_labels(decision: Decision, task: Task) -> list[str]:
    if decision.state == "abnormal":
        return list(decision.stated or [p for p in decision.positives if p != task.normal])
    if decision.state == "indeterminate":
        return [c for c in decision.candidates if c != task.normal][:1]
    return []


def key_slices(
    decision: Decision,
    probs: np.ndarray,
    task: Task,
    labels: Sequence[str],
    thresholds: Mapping[str, float],
) -> list[int]:
    """The slices (row indices, anatomical order) that carry ``decision``: for each finding it
    states, the longest contiguous run of slices that support it (one-class tasks: slices whose
    most probable class it is; multi-label: slices above its threshold), ties to the more
    probable run, then the earlier; a finding no single slice supports gets its most probable
    slice. An undecided result's key slices are those of its leading non-normal candidate. A
    series read as having none of the findings has no key slice: no slice carries an absence
    (the report says what was looked for on every slice read)."""
    probs = np.asarray(probs, dtype=np.float64)
    out: set[int] = set()
    top = probs.argmax(axis=1)
    for label in _key_labels(decision, task):
        j = list(labels).index(label)
        support = probs[:, j] >= thresholds.get(label, 0.5) if task.multilabel else top == j
        run = _best_run(support, probs[:, j])
        if run is None:
            out.add(int(np.argmax(probs[:, j])))
        else:
            out.update(range(run[0], run[0] + run[1]))
    return sorted(out)


def suspect_slices(
    probs: np.ndarray, rule: SeriesRule, task: Task, labels: Sequence[str]
) -> tuple[str, list[int]] | None:
    """(tumour class, its suggesting slices) when ``rule.suspect`` finds a run of at least
    ``min_slices`` neighbouring slices suggesting one class (``SuspectRule``): the class with
    the most suggesting slices, ties to the higher mean probability over them, then the
    label order. None for a multi-label task, or when no class has such a run."""
    suspect = rule.suspect
    if suspect is None or task.multilabel:
        return None
    probs = np.asarray(probs, dtype=np.float64)
    z = _normal_index(task, labels)
    top = probs.argmax(axis=1)
    best: tuple | None = None
    for j in range(probs.shape[1]):
        if j == z:
            continue
        support = (top == j) & (probs[:, j] >= suspect.min_probability)
        if not any(length >= suspect.min_slices for _, length in _runs(support)):
            continue
        rows = np.flatnonzero(support)
        score = (len(rows), float(probs[rows, j].mean()), -j)
        if best is None or score > best[0]:
            best = (score, labels[j], [int(i) for i in rows])
    return None if best is None else (best[1], best[2])


def _small_lesion(decision: Decision, label: str, normal: str | None) -> Decision:
    """``decision`` (normal) made undecided between ``label`` and the normal class: the AI
    did not decide, and says so, rather than read "no tumour" over slices that suggest one."""
    candidates = [label] + ([normal] if normal else [])
    rows = [
        row.model_copy(
            update={"positive": False, "state": "indeterminate", "basis": "candidate"}
            if row.label in candidates
            else {"positive": False, "state": "absent", "basis": "not_top"}
        )
        for row in decision.labels
    ]
    return decision.model_copy(
        update={
            "state": "indeterminate",
            "primary": None,
            "positives": [],
            "stated": [],
            "low_confidence": False,
            "indeterminate_reason": "small_lesion",
            "candidates": candidates,
            "labels": rows,
        }
    )


def decide_series(
    probs: np.ndarray, rule: SeriesRule, task: Task, labels: Sequence[str], policy: OperatingPolicy
) -> tuple[Decision, np.ndarray, list[int]]:
    """(decision, study probabilities, key slice indices) for slices' probabilities in
    anatomical order: ``aggregate``, then the task's own decision (``imaging.decision``). A
    series that would read normal while ``rule.suspect`` finds slices suggesting a tumour is
    undecided (``small_lesion``), keyed on those slices."""
    study = aggregate(probs, rule, task, labels)
    decision = decide(task, dict(zip(labels, map(float, study), strict=True)), policy)
    if decision.state == "normal" and (found := suspect_slices(probs, rule, task, labels)):
        return _small_lesion(decision, found[0], task.normal), study, found[1]
    return decision, study, key_slices(decision, probs, task, labels, policy.thresholds)


@dataclass(eq=False)
class SliceRead:
    """One slice that was read: its probabilities (``None`` when it could not be decoded) and
    why it was left out of the decision, if it was."""

    ref: SliceRef
    probabilities: np.ndarray | None = None
    image: ImageInfo | None = None
    embedding: list[float] | None = None
    excluded: str | None = None  # an image refusal code
    message: str | None = None
    distance: float | None = None  # to the training images (the gate's), for the scope
    digest: str | None = None  # of the decoded pixels (``pixel_digest``)
    same_as: SliceRef | None = None  # identical pixels to this earlier slice: counts once


@dataclass(eq=False)
class SeriesRead:
    """A series read to one decision. ``slices``: every slice read, anatomical order;
    ``used``: the indices among them the decision was made from; ``key``: the indices of the
    key slices; ``probabilities``: the study's, from the rule."""

    series_uid: str | None
    labels: list[str]
    slices: list[SliceRead]
    instances_in_series: int
    cap: int
    rule: SeriesRule
    normal_label: str | None = None
    used: list[int] = field(default_factory=list)
    key: list[int] = field(default_factory=list)
    probabilities: np.ndarray | None = None
    decision: Decision | None = None
    refusal: Refusal | None = None
    choice: SeriesChoice | None = None
    duplicates: list[Duplicate] = field(default_factory=list)
    numbers: dict[str, int] = field(default_factory=dict)  # slice key -> viewer's 1-based number
    accounts: list[SeriesAccount] = field(default_factory=list)

    @property
    def sampled(self) -> bool:
        return self.instances_in_series > len(self.slices)

    @property
    def counted(self) -> list[SliceRead]:
        """The slices read that count: decoded, and not another's pixel-identical copy."""
        return [s for s in self.slices if s.probabilities is not None and s.same_as is None]

    @property
    def all_duplicates(self) -> list[Duplicate]:
        """Header duplicates (``distinct``) and pixel-identical slices, anatomical order."""
        pixel = [Duplicate(s.ref, s.same_as, "same_pixels") for s in self.slices if s.same_as]
        return self.duplicates + pixel

    @property
    def undecided_slices(self) -> UndecidedSlices | None:
        d = self.decision
        if d is None or d.indeterminate_reason != "small_lesion" or self.rule.suspect is None:
            return None
        refs = self.key_refs
        return UndecidedSlices(
            label=d.candidates[0],
            instances=[r.key for r in refs],
            numbers=[self.numbers.get(r.key, 0) for r in refs],
            needed=self.rule.k if self.rule.name == "run" else 1,
            min_probability=self.rule.suspect.min_probability,
        )

    @property
    def slice_probabilities(self) -> np.ndarray:
        """The used slices' probabilities, rows in anatomical order."""
        # the used slices are decoded ones: each has its probabilities
        rows = [cast(np.ndarray, self.slices[i].probabilities) for i in self.used]
        return np.stack(rows) if rows else np.zeros((0, len(self.labels)))

    @property
    def key_refs(self) -> list[SliceRef]:
        return [self.slices[i].ref for i in self.key]

    @property
    def read(self) -> ReadInfo:
        """The result's ``read`` (the agreed interface)."""
        return ReadInfo(
            series_uid=self.series_uid,
            instances_in_series=self.instances_in_series,
            instances_read=len(self.counted),
            key_instances=[r.key for r in self.key_refs],
            read_instances=[s.ref.key for s in self.counted],
            sampled=self.sampled,
            cap=self.cap,
            rule=self.rule.tag,
            series_choice=self.choice,
            excluded=[
                ReadExclusion(instance=s.ref.key, reason=s.excluded)
                for s in self.slices
                if s.excluded and s.same_as is None
            ],
            duplicates=[
                ReadDuplicate(instance=d.ref.key, same_as=d.same_as.key, reason=d.reason)
                for d in self.all_duplicates
            ],
            undecided_slices=self.undecided_slices,
            series=list(self.accounts),
        )

    @property
    def explain(self) -> tuple[SliceRef, str] | None:
        """Which slice to explain (Grad-CAM) and for which label: the key slice where the
        decided finding (an undecided result: its leading candidate) is most probable; for a
        series read as normal, the slice read as most confidently normal. None when refused.
        Decode it with the series' loader and pass it to the heatmap code."""
        index = self._explain_index()
        return None if index is None else (self.slices[index[0]].ref, index[1])

    def _explain_index(self) -> tuple[int, str] | None:
        if self.decision is None or not self.used:
            return None
        d = self.decision
        leading = [c for c in d.candidates if c != self.normal_label] or d.candidates
        label = d.primary or (leading[0] if leading else None)
        if label is None:
            # the study's probabilities are set with its decision
            label = self.labels[int(np.argmax(cast(np.ndarray, self.probabilities)))]
        j = self.labels.index(label)
        pool = self.key or self.used
        best = max(
            pool, key=lambda i: (float(cast(np.ndarray, self.slices[i].probabilities)[j]), -i)
        )  # key and used slices are decoded ones: each has its probabilities
        return best, label


Loader = Callable[[SliceRef], "LoadedImage | np.ndarray"]


def _loaded(value) -> LoadedImage:
    if isinstance(value, LoadedImage):
        return value
    return LoadedImage(np.asarray(value, dtype=np.float32), "array", {})


def _read_batch(
    predictor, batch: list[SliceRead], load: Loader, refusals: dict[int, Refusal], offset: int
) -> ImageInputError | None:
    """Decode one batch of slices, run it through the model and fill in each slice's
    probabilities, image information, embedding and any refusal (``refusals`` by index)."""
    from medai.imaging.predict import image_info

    images: list[tuple[int, LoadedImage]] = []
    first_error = None
    for j, s in enumerate(batch):
        try:
            images.append((j, _loaded(load(s.ref))))
        except ImageInputError as exc:
            first_error = first_error or exc
            s.excluded, s.message = exc.refusal_code, str(exc)
    if not images:
        return first_error
    probs, feats = predictor.proba_and_features(
        [image.pixels for _, image in images], batch_size=len(images)
    )
    embeddings = predictor.embedding(feats)
    for row, (j, image) in enumerate(images):
        s = batch[j]
        s.digest = pixel_digest(image.pixels)
        s.probabilities = probs[row]
        s.image = image_info(image)
        s.embedding = [float(f"{v:.6g}") for v in embeddings[row]]
        gate = getattr(predictor, "gate", None)
        if gate is not None:
            s.distance = float(gate.distance(feats[row : row + 1])[0])
        reason = predictor.refusal_reason(image, feats[row : row + 1])
        if reason is not None:
            refusals[offset + j] = reason
            s.excluded, s.message = reason.code, reason.message
    return first_error


def _numbers(kept: Sequence[SliceRef], slices: Sequence[SliceRead]) -> dict[str, int]:
    """Each counted slice's 1-based number in anatomical order, duplicates left out: the
    viewer's counter ("10 / 20"), which shows each slice once
    (``platform.reading.series_view``)."""
    copies = {s.ref.key for s in slices if s.same_as is not None}
    counted = [ref for ref in kept if ref.key not in copies]
    return {ref.key: i for i, ref in enumerate(counted, start=1)}


def read_series(
    predictor,
    refs: Iterable[SliceRef],
    load: Loader,
    *,
    rule: SeriesRule | None = None,
    cap: int = DEFAULT_CAP,
    batch_size: int = BATCH,
    series_uid: str | None = None,
    choice: SeriesChoice | None = None,
) -> SeriesRead:
    """Read a series to one decision (``imaging.predict.ImagingPredictor`` as ``predictor``).

    ``refs`` are the series' slices in any order (``slice_refs`` of each instance); ``load``
    decodes one of them (e.g. ``load_image(bytes_of(ref.sop_uid), frame=ref.frame)``) and is
    called once for each slice read, ``batch_size`` at a time, so that at most one batch of
    decoded slices is held. A slice that cannot be decoded (``ImageInputError``) or that the
    model refuses (another modality, unlike its training images) is left out and listed in
    ``read.excluded``; when no slice can be used, or more than half of the decodable ones are
    refused, the series is refused with the commonest reason (``refusal``). ``rule`` defaults to
    the model's recorded one (``rule_for``). Raises the first ``ImageInputError`` when no slice
    can be decoded at all."""

    ordered = order(refs)
    if not ordered:
        raise ImageInputError("the series has no slices to read")
    kept, duplicates = distinct(ordered)
    chosen = sample(kept, cap)
    rule = rule or rule_for(predictor)
    task = predictor.space
    labels = list(predictor.labels)
    slices = [SliceRead(ref) for ref in chosen]
    first_error: ImageInputError | None = None
    refusals: dict[int, Refusal] = {}
    for start in range(0, len(slices), max(1, batch_size)):
        # the decoded pixels live only inside this call: gone before the next batch is decoded
        error = _read_batch(predictor, slices[start : start + batch_size], load, refusals, start)
        first_error = first_error or error
    seen: dict[str, list[SliceRef]] = {}
    for s in slices:  # identical pixels count once, the first in anatomical order kept, unless
        # the headers place the two apart (two blank end slices of a volume)
        if s.digest is None:
            continue
        earlier = seen.setdefault(s.digest, [])
        s.same_as = next((r for r in earlier if not _apart(r, s.ref)), None)
        earlier.append(s.ref)
    read = SeriesRead(
        series_uid=series_uid if series_uid is not None else ordered[0].series_uid,
        labels=labels,
        slices=slices,
        instances_in_series=len(kept) - sum(s.same_as is not None for s in slices),
        cap=cap,
        rule=rule,
        normal_label=task.normal,
        choice=choice,
        duplicates=duplicates,
        numbers=_numbers(kept, slices),
    )
    decoded = [i for i, s in enumerate(slices) if s.probabilities is not None and not s.same_as]
    if not decoded:
        assert first_error is not None
        raise first_error
    refusals = {i: r for i, r in refusals.items() if i in decoded}  # a copy counts once
    read.used = [i for i in decoded if i not in refusals]
    if not read.used or 2 * len(refusals) > len(decoded):
        common = Counter(r.code for r in refusals.values()).most_common(1)[0][0]
        read.refusal = next(refusals[i] for i in sorted(refusals) if refusals[i].code == common)
        return read
    decision, study, key = decide_series(
        read.slice_probabilities, rule, task, labels, predictor.policy
    )
    read.decision, read.probabilities = decision, study
    read.key = [read.used[i] for i in key]
    return read


def read_decoded(
    predictor, pairs: Iterable[tuple[SliceRef, LoadedImage | np.ndarray]], **options
) -> SeriesRead:
    """``read_series`` over slices already decoded, e.g. pixels the caller holds anyway (they
    are all in memory: for a series arriving as files prefer ``read_series`` with a loader)."""
    held: dict[str, LoadedImage | np.ndarray] = {}
    refs = []
    for ref, pixels in pairs:
        held[ref.key] = pixels
        refs.append(ref)
    return read_series(predictor, refs, lambda ref: held[ref.key], **options)


def series_result(predictor, read: SeriesRead) -> ImagingResult:
    """The series' ``ImagingResult``: findings and decision from the study probabilities
    through the predictor's decision (its operating points), the model's identity, the explained
    slice's image information and embedding, and ``read``. A refused series gives a refused
    result with the reason, and still says what was read."""

    refused = read.refusal is not None or read.decision is None
    refusal = read.refusal or Refusal("unreadable", "no slice of the series could be read")
    # a refused series is out of scope for its reason; a read one is flagged when most slices
    # it used are unlike the training images (their median)
    scope = (
        series_scope(predictor, refusal=refusal)
        if refused
        else series_scope(predictor, [read.slices[i].distance for i in read.used])
    )
    if refused:
        first = next((s for s in read.slices if s.image is not None), None)
        return ImagingResult(
            status="refused",
            task=predictor.cfg.task,
            refused=True,
            reason=refusal.message,
            reason_code=refusal.code,
            reason_params=refusal.params,
            model=predictor.identity,
            image=first.image if first else None,
            read=read.read,
            scope=scope,
        )
    decision = cast(Decision, read.decision)  # a read series has its decision
    index = read._explain_index()
    shown = read.slices[index[0]] if index else read.slices[read.used[0]]
    return ImagingResult(
        status="ai_suggestion",
        task=predictor.cfg.task,
        refused=False,
        findings=[Finding(**row.model_dump()) for row in decision.labels],
        primary=decision.primary,
        decision=decision,
        model=predictor.identity,
        image=shown.image,
        embedding=shown.embedding,
        read=read.read,
        scope=scope,
    )


def explain_slice(read: SeriesRead, load: Loader) -> tuple[SliceRef, LoadedImage, str] | None:
    """The slice to explain (``SeriesRead.explain``) decoded again with the series' loader (one
    slice: the read kept no pixels), and the label to explain: hand both to the Grad-CAM code
    (``imaging.explain.explain`` / ``services.imaging.heatmap``). None for a refused series."""
    target = read.explain
    if target is None:
        return None
    ref, label = target
    return ref, _loaded(load(ref)), label


def single_image_read(cap: int = DEFAULT_CAP) -> ReadInfo:
    """``read`` of a result decided from one image without a series (a PNG upload)."""
    return ReadInfo(
        series_uid=None,
        instances_in_series=1,
        instances_read=1,
        key_instances=[],
        read_instances=[],
        sampled=False,
        cap=cap,
        rule=SINGLE_IMAGE,
    )
