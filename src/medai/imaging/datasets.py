"""Readers for the real imaging dataset layouts, all producing one record type.

A record's ``targets`` vector spans the task's whole label space; ``nan`` means "this source did
not annotate this label", which the loss masks out instead of counting it as negative. Unknown
label names are counted and reported. Splits group by patient (or, when a dataset has no patient
ids, by near-identical thumbnails, since neighbouring slices of one patient look alike).

A hospital's set has tens or hundreds of thousands of rows, so a dataset is held as a compact
index (``RecordTable``: paths and patient ids as byte strings with offsets, targets as one
float32 matrix, sources as integer codes), about 12 MB for 100,000 rows instead of a Python
object per row; ``ImageRecord`` objects are made only when one is asked for. The CSV is read a
row at a time, and whether each file exists is answered from one listing per folder (linear in
rows plus folder entries) instead of one ``stat`` per row. No pixel is decoded here: the
training and evaluation loaders decode an image when they need it.
"""

from __future__ import annotations

import csv
import os
import re
import warnings
from array import array
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar, cast, overload

import numpy as np

from medai.core.dedup import _UnionFind
from medai.core.errors import MedaiError
from medai.imaging.labels import LabelSpace, resolve, space
from medai.imaging.task_definitions import NIH_FINDINGS

# NIH ChestX-ray14, CheXpert and MIMIC-CXR are chest X-ray datasets: their readers below know
# their own layouts, whose columns are chest findings, and read them into the chest X-ray
# task's label space, named once here. A dataset of any other task comes as a manifest CSV or
# class folders, read into the task the caller names.
CHEST_XRAY_TASK = "cxr"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".bmp", ".tif", ".tiff"}
NIH_LABELS = (*NIH_FINDINGS, "No Finding")  # its columns: the findings, then none
CHEXPERT_COLUMNS = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
# Thumbnail grouping compares every pair of images (n² correlations, each image decoded once):
# beyond this many images without patient ids the split needs the data to name its patients.
THUMBNAIL_GROUP_LIMIT = 20_000


class DatasetFormatError(MedaiError, ValueError):
    """A dataset file that cannot be read (missing columns, unknown policy, no images)."""

    code = "invalid"


@dataclass
class ImageRecord:
    path: Path
    targets: np.ndarray  # float32 per label: 1, 0 or nan (not annotated)
    patient: str | None = None
    source: str | None = None


class RecordTable(Sequence[ImageRecord]):
    """Image records as columns: an ``ImageRecord`` is built only when one is indexed.

    Row i's path is ``dirs[dir_code[i]]`` joined with ``names[name_starts[i]:name_ends[i]]``
    (UTF-8); its patient is ``patient_names[patient_starts[i]:patient_ends[i]]`` (empty: none);
    its source is ``sources[source_code[i]]`` (−1: none); ``targets`` is the n × labels float32
    matrix. A subset (``take``) shares the byte strings and copies only the per-row arrays."""

    def __init__(
        self,
        dirs: list[str],
        dir_code: np.ndarray,
        names: bytes,
        name_starts: np.ndarray,
        name_ends: np.ndarray,
        targets: np.ndarray,
        patient_names: bytes,
        patient_starts: np.ndarray,
        patient_ends: np.ndarray,
        sources: list[str],
        source_code: np.ndarray,
    ) -> None:
        self.dirs, self.dir_code = dirs, dir_code
        self.names, self.name_starts, self.name_ends = names, name_starts, name_ends
        self.patient_names = patient_names
        self.patient_starts, self.patient_ends = patient_starts, patient_ends
        self.sources, self.source_code = sources, source_code
        targets.flags.writeable = False  # shared by subsets: nobody edits it in place
        self.targets = targets

    @classmethod
    def from_records(cls, records: Iterable[ImageRecord], n_labels: int) -> RecordTable:
        builder: TableBuilder[bytes] = TableBuilder(n_labels)
        for r in records:
            targets = np.asarray(r.targets, dtype=np.float32)
            builder.add(str(r.path), targets.tobytes(), r.patient, r.source)
        return builder.build(_from_float_key)

    def __len__(self) -> int:
        return len(self.name_starts)

    def path(self, i: int) -> str:
        """Row i's file path as a string (no ``Path`` object: a loader's hot path)."""
        name = self.names[self.name_starts[i] : self.name_ends[i]].decode(
            "utf-8", "surrogateescape"
        )
        return os.path.join(self.dirs[self.dir_code[i]], name)

    def patient(self, i: int) -> str | None:
        start, end = self.patient_starts[i], self.patient_ends[i]
        return self.patient_names[start:end].decode("utf-8", "surrogateescape") or None

    def source(self, i: int) -> str | None:
        code = self.source_code[i]
        return self.sources[code] if code >= 0 else None

    def has_patients(self) -> bool:
        return bool((self.patient_ends > self.patient_starts).any())

    def record(self, i: int) -> ImageRecord:
        return ImageRecord(
            Path(self.path(i)), self.targets[i].copy(), self.patient(i), self.source(i)
        )

    @overload
    def __getitem__(self, i: int) -> ImageRecord: ...
    @overload
    def __getitem__(self, i: slice) -> RecordTable: ...

    def __getitem__(self, i: int | slice) -> ImageRecord | RecordTable:
        if isinstance(i, slice):
            return self.take(np.arange(len(self))[i])
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"record {i} of {n}")
        return self.record(int(i) % n)

    def __iter__(self) -> Iterator[ImageRecord]:
        return (self.record(i) for i in range(len(self)))

    def take(self, idx: Sequence[int] | np.ndarray) -> RecordTable:
        idx = np.asarray(idx, dtype=np.int64)
        return RecordTable(
            self.dirs,
            self.dir_code[idx],
            self.names,
            self.name_starts[idx],
            self.name_ends[idx],
            self.targets[idx],
            self.patient_names,
            self.patient_starts[idx],
            self.patient_ends[idx],
            self.sources,
            self.source_code[idx],
        )

    def nbytes(self) -> int:
        """Bytes held by the arrays and byte strings (the few folder/source names aside)."""
        return (
            len(self.names)
            + len(self.patient_names)
            + sum(
                a.nbytes
                for a in (
                    self.dir_code,
                    self.name_starts,
                    self.name_ends,
                    self.targets,
                    self.patient_starts,
                    self.patient_ends,
                    self.source_code,
                )
            )
        )


K = TypeVar("K", bound=Hashable)  # a TableBuilder's target key


class TableBuilder(Generic[K]):
    """Collects rows into typed arrays and byte strings (no object per row); targets are
    interned by a key (a reader's label set, or the target bytes) and computed once per
    distinct key when the table is built; folders and sources (few) are interned."""

    def __init__(self, n_labels: int) -> None:
        self.n_labels = n_labels
        self._dirs: dict[str, int] = {}
        self._sources: dict[str, int] = {}
        self._keys: dict[K, int] = {}
        self._names, self._patients = bytearray(), bytearray()
        self._name_ends, self._patient_ends = array("q"), array("q")
        self._dir_code, self._target_code, self._source_code = (array("i"), array("i"), array("i"))

    def __len__(self) -> int:
        return len(self._name_ends)

    @staticmethod
    def _code(table: dict, value: Hashable) -> int:
        code = table.get(value)
        if code is None:
            code = table[value] = len(table)
        return code

    def add(
        self,
        path: str,
        key: K,
        patient: str | None = None,
        source: str | None = None,
        folder: str | None = None,
    ) -> None:
        """One row; ``folder``/``path`` may come pre-split (then ``path`` is the file name)."""
        if folder is None:
            folder, path = os.path.split(path)
        self._dir_code.append(self._code(self._dirs, folder or "."))
        self._names += path.encode("utf-8", "surrogateescape")
        self._name_ends.append(len(self._names))
        if patient:
            self._patients += patient.encode("utf-8", "surrogateescape")
        self._patient_ends.append(len(self._patients))
        self._target_code.append(self._code(self._keys, key))
        self._source_code.append(self._code(self._sources, source) if source else -1)

    def build(self, make_targets: Callable[[K], np.ndarray]) -> RecordTable:
        table = np.zeros((len(self._keys), self.n_labels), dtype=np.float32)
        for key, code in self._keys.items():
            table[code] = make_targets(key)
        # the arrays are views of the builder's buffers (no second copy while building)
        name_ends = np.frombuffer(self._name_ends, dtype=np.int64)
        patient_ends = np.frombuffer(self._patient_ends, dtype=np.int64)
        return RecordTable(
            list(self._dirs),
            np.frombuffer(self._dir_code, dtype=np.int32),
            bytes(self._names),
            _starts(name_ends),
            name_ends,
            table[np.frombuffer(self._target_code, dtype=np.int32)],
            bytes(self._patients),
            _starts(patient_ends),
            patient_ends,
            list(self._sources),
            np.frombuffer(self._source_code, dtype=np.int32),
        )


def _starts(ends: np.ndarray) -> np.ndarray:
    """Where each of back-to-back strings starts, given where each ends."""
    starts = np.zeros_like(ends)
    starts[1:] = ends[:-1]
    return starts


def _from_float_key(key: bytes) -> np.ndarray:
    return np.frombuffer(key, dtype=np.float32)


class ExistingFiles:
    """Answers "is this a file?" from one ``os.scandir`` per folder, cached: linear in rows
    plus folder entries, instead of one ``stat`` system call per row. A name the listing lacks
    is checked once with ``os.path.isfile`` (case-insensitive file systems, ``..`` parts)."""

    def __init__(self) -> None:
        self._listings: dict[str, frozenset[str]] = {}

    def __call__(self, folder: str, name: str) -> bool:
        listing = self._listings.get(folder)
        if listing is None:
            try:
                with os.scandir(folder or ".") as entries:
                    listing = frozenset(e.name for e in entries if e.is_file())
            except OSError:
                listing = frozenset()
            self._listings[folder] = listing
        return name in listing or os.path.isfile(os.path.join(folder, name))


class ImageDataset:
    """A task's images and targets (``records``: a ``RecordTable``), with what was skipped."""

    def __init__(
        self,
        task: str,
        records: RecordTable | Iterable[ImageRecord] = (),
        unknown_labels: Counter[str] | None = None,
        skipped: Counter[str] | None = None,
    ) -> None:
        self.task = task
        self.records: RecordTable = (
            records
            if isinstance(records, RecordTable)
            else RecordTable.from_records(records, len(self.labels))
        )
        self.unknown_labels: Counter[str] = Counter(unknown_labels or {})
        self.skipped: Counter[str] = Counter(skipped or {})

    @property
    def labels(self) -> tuple[str, ...]:
        return space(self.task).labels

    def __len__(self) -> int:
        return len(self.records)

    def subset(self, idx: Sequence[int] | np.ndarray) -> ImageDataset:
        return ImageDataset(self.task, self.records.take(idx))

    def targets(self) -> np.ndarray:
        """The n × labels float32 matrix (read-only; index or copy it to change it)."""
        return self.records.targets

    def has_patients(self) -> bool:
        return self.records.has_patients()

    def annotated_labels(self, min_positives: int = 1) -> list[str]:
        """Labels with enough positives and at least one annotated negative: learnable here."""
        t = self.targets()
        return [
            lab
            for i, lab in enumerate(self.labels)
            if np.nansum(t[:, i] == 1) >= min_positives and np.nansum(t[:, i] == 0) > 0
        ]

    def report(self) -> dict:
        t, r = self.targets(), self.records
        counts = np.bincount(r.source_code + 1, minlength=len(r.sources) + 1)
        sources = {
            ("" if code < 0 else r.sources[code]): int(counts[code + 1])
            for code in range(-1, len(r.sources))
            if counts[code + 1]
        }
        return {
            "task": self.task,
            "images": len(r),
            "positives": {
                lab: int(np.nansum(t[:, i] == 1))
                for i, lab in enumerate(self.labels)
                if np.nansum(t[:, i] == 1)
            },
            "unknown_labels": dict(self.unknown_labels),
            "skipped": dict(self.skipped),
            "sources": sources,
        }


def _targets(sp: LabelSpace, positives: Iterable[str], annotated: Iterable[str]) -> np.ndarray:
    """A record's targets: 0 for what its source annotated, 1 for its positives and what
    they imply (a subtype its parents), nan for the rest. A bare finding at the top of the
    task's hierarchy (Pneumonia, none of its subtypes named) leaves every subtype below it
    unknown; a source that names a subtype (Viral_Pneumonia) draws the line itself, so what
    it annotates below that keeps its value."""
    t = np.full(len(sp.labels), np.nan, dtype=np.float32)
    for lab in annotated:
        t[sp.index(lab)] = 0.0
    positives = list(positives)
    for lab in positives:
        t[sp.index(lab)] = 1.0
        for parent in sp.ancestors(lab):
            t[sp.index(parent)] = 1.0
    for lab in positives:
        if lab in sp.parents:  # a subtype: not a bare top-level finding
            continue
        below = sp.subtypes(lab)
        if below and not any(c in positives for c in below):
            for child in below:
                t[sp.index(child)] = np.nan  # subtype not stated
    if not sp.multilabel and positives:
        t[:] = 0.0
        t[sp.index(positives[0])] = 1.0
    return t


def _split_labels(raw: str) -> list[str]:
    return [p.strip() for p in raw.replace(";", "|").split("|") if p.strip()]


class _LabelCache:
    """``raw label cell → (names, resolved)``, once per distinct cell (a large manifest repeats
    a few dozen label combinations)."""

    def __init__(self, task: str) -> None:
        self.task = task
        self._seen: dict[str, tuple[list[str], list[str | None]]] = {}

    def __call__(self, raw: str) -> tuple[list[str], list[str | None]]:
        hit = self._seen.get(raw)
        if hit is None:
            names = _split_labels(raw)
            hit = self._seen[raw] = (names, [resolve(self.task, n) for n in names])
        return hit


def read_manifest(path: str | Path, task: str, root: str | Path | None = None) -> ImageDataset:
    """``file,label[,patient,src]`` CSV (labels may be ``A|B``); paths relative to the CSV."""
    path = Path(path)
    sp = space(task)
    base = str(root) if root else str(path.parent)
    labels, exists = _LabelCache(task), ExistingFiles()
    unknown: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    builder: TableBuilder[tuple[str, ...]] = TableBuilder(len(sp.labels))
    annotated: set[str] = set()
    for row in _iter_csv(path, {"file", "label"}):
        names, resolved = labels(row.get("label", ""))
        if not names or any(r is None for r in resolved):
            for n, r in zip(names, resolved, strict=True):
                if r is None:
                    unknown[n] += 1
            skipped["unknown_label" if names else "empty_label"] += 1
            continue
        known = cast(list[str], resolved)  # none of them is None: checked above
        annotated.update(known)  # every labelled row annotates, its file found or not
        folder, name = os.path.split(os.path.join(base, row["file"]))
        if not exists(folder, name):
            skipped["missing_file"] += 1
            continue
        builder.add(
            name, tuple(known), row.get("patient") or None, row.get("src") or None, folder=folder
        )
    annotated |= {p for lab in annotated for p in sp.ancestors(lab)}
    table = builder.build(lambda labs: _targets(sp, labs, annotated))
    return ImageDataset(task, table, unknown, skipped)


def read_nih(csv_path: str | Path, image_dir: str | Path) -> ImageDataset:
    """NIH ChestX-ray14 ``Data_Entry_2017.csv``: 'Finding Labels' as ``A|B``, 'Patient ID'."""
    sp = space(CHEST_XRAY_TASK)
    labels, exists = _LabelCache(CHEST_XRAY_TASK), ExistingFiles()
    unknown: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    builder: TableBuilder[tuple[str, ...]] = TableBuilder(len(sp.labels))
    for row in _iter_csv(Path(csv_path), {"image index", "finding labels", "patient id"}):
        names, labs = labels(row["finding labels"])
        if any(lab is None for lab in labs) or not labs:
            unknown.update(n for n, lab in zip(names, labs, strict=True) if lab is None)
            skipped["unknown_label"] += 1
            continue
        folder, name = os.path.split(os.path.join(str(image_dir), row["image index"]))
        if not exists(folder, name):
            skipped["missing_file"] += 1
            continue
        # none of labs is None: checked above
        builder.add(name, tuple(cast(list[str], labs)), row["patient id"], "nih", folder=folder)
    table = builder.build(lambda labs: _targets(sp, labs, NIH_LABELS))
    return ImageDataset(CHEST_XRAY_TASK, table, unknown, skipped)


UNCERTAINTY_POLICIES = ("ones", "zeros", "ignore")


def _chexpert_targets(row: dict, uncertainty: str, blank: str) -> np.ndarray:
    sp = space(CHEST_XRAY_TASK)
    t = np.full(len(sp.labels), np.nan, dtype=np.float32)
    for col, lab in _chexpert_columns():
        raw = (row.get(col.lower()) or "").strip()
        if raw == "":
            value = 0.0 if blank == "zeros" else np.nan
        else:
            v = float(raw)
            if v == -1.0:
                value = {"ones": 1.0, "zeros": 0.0, "ignore": np.nan}[uncertainty]
            else:
                value = 1.0 if v == 1.0 else 0.0
        t[sp.index(lab)] = value
    return t


def _chexpert_columns() -> list[tuple[str, str]]:
    """CheXpert columns with their label in the unified space ("Pleural Other" and "Support
    Devices" have none and are left out)."""
    out = []
    for col in CHEXPERT_COLUMNS:
        lab = resolve(CHEST_XRAY_TASK, col)
        if lab is not None:
            out.append((col, lab))
    return out


def _float_key(t: np.ndarray) -> bytes:
    return t.tobytes()


def read_chexpert(
    csv_path: str | Path,
    root: str | Path,
    uncertainty: str = "ignore",
    blank: str = "zeros",
    source: str = "chexpert",
) -> ImageDataset:
    """CheXpert ``train.csv``/``valid.csv``: 1 positive, 0 negative, −1 uncertain, blank = not
    mentioned. ``uncertainty``: ones | zeros | ignore (masked); ``blank``: zeros | ignore."""
    if uncertainty not in UNCERTAINTY_POLICIES or blank not in ("zeros", "ignore"):
        raise DatasetFormatError(
            f"uncertainty must be one of {UNCERTAINTY_POLICIES}, blank one of zeros|ignore"
        )
    exists = ExistingFiles()
    skipped: Counter[str] = Counter()
    builder: TableBuilder[bytes] = TableBuilder(len(space(CHEST_XRAY_TASK).labels))
    for row in _iter_csv(Path(csv_path), {"path"}):
        rel = row["path"]
        folder, name = os.path.split(os.path.join(str(root), rel))
        if not exists(folder, name):
            skipped["missing_file"] += 1
            continue
        patient = next((p for p in re.split(r"[\\/]", rel) if p.startswith("patient")), None)
        builder.add(
            name,
            _float_key(_chexpert_targets(row, uncertainty, blank)),
            patient,
            source,
            folder=folder,
        )
    return ImageDataset(CHEST_XRAY_TASK, builder.build(_from_float_key), skipped=skipped)


def read_mimic(
    chexpert_csv: str | Path,
    metadata_csv: str | Path,
    root: str | Path,
    uncertainty: str = "ignore",
    blank: str = "zeros",
) -> ImageDataset:
    """MIMIC-CXR-JPG: ``mimic-cxr-2.0.0-chexpert.csv`` (labels per study, CheXpert coding) joined
    with ``mimic-cxr-2.0.0-metadata.csv`` (dicom_id → study) under ``files/pXX/pSUBJECT/sSTUDY``."""
    if uncertainty not in UNCERTAINTY_POLICIES:
        raise DatasetFormatError(f"uncertainty must be one of {UNCERTAINTY_POLICIES}")
    # per study only its target bytes, not the whole CSV row
    studies = {
        row["study_id"]: _float_key(_chexpert_targets(row, uncertainty, blank))
        for row in _iter_csv(Path(chexpert_csv), {"subject_id", "study_id"})
    }
    exists = ExistingFiles()
    skipped: Counter[str] = Counter()
    builder: TableBuilder[bytes] = TableBuilder(len(space(CHEST_XRAY_TASK).labels))
    for meta in _iter_csv(Path(metadata_csv), {"dicom_id", "subject_id", "study_id"}):
        key = studies.get(meta["study_id"])
        if key is None:
            skipped["no_labels"] += 1
            continue
        subject = meta["subject_id"]
        folder = os.path.join(
            str(root), "files", f"p{subject[:2]}", f"p{subject}", f"s{meta['study_id']}"
        )
        name = f"{meta['dicom_id']}.jpg"
        if not exists(folder, name):
            skipped["missing_file"] += 1
            continue
        builder.add(name, key, subject, "mimic", folder=folder)
    return ImageDataset(CHEST_XRAY_TASK, builder.build(_from_float_key), skipped=skipped)


def read_folder(root: str | Path, task: str) -> ImageDataset:
    """One sub-folder per class (``root/Glioma/*.png``); folder names go through synonyms."""
    root = Path(root)
    sp = space(task)
    if not root.is_dir():
        raise DatasetFormatError(f"{root}: not a folder")
    unknown: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    builder: TableBuilder[str] = TableBuilder(len(sp.labels))
    classes = [d for d in sorted(root.iterdir()) if d.is_dir()]
    annotated = {r for r in (resolve(task, d.name) for d in classes) if r is not None}
    for d in classes:
        lab = resolve(task, d.name)
        files = [f for f in sorted(d.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
        if lab is None:
            unknown[d.name] += len(files)
            skipped["unknown_label"] += len(files)
            continue
        for f in files:
            builder.add(str(f), lab, None, root.name)
    if not len(builder):
        raise DatasetFormatError(f"{root}: no images in class folders")
    table = builder.build(lambda lab: _targets(sp, [lab], annotated))
    return ImageDataset(task, table, unknown, skipped)


def load_dataset(path: str | Path, task: str, **kwargs) -> ImageDataset:
    """A manifest CSV, an NIH ``Data_Entry_2017.csv`` (with ``image_dir``) or a class folder."""
    path = Path(path)
    if path.is_dir():
        return read_folder(path, task)
    if path.name.lower().startswith("data_entry"):
        _chest_format(path, "an NIH ChestX-ray14 table", task)
        return read_nih(path, kwargs.get("image_dir") or path.parent / "images")
    header = _header(path)
    if "path" in header and "file" not in header:
        _chest_format(path, "a CheXpert table", task)
        return read_chexpert(
            path, kwargs.get("root") or path.parent, kwargs.get("uncertainty", "ignore")
        )
    return read_manifest(path, task, kwargs.get("root"))


def _chest_format(path: Path, what: str, task: str) -> None:
    """A chest X-ray dataset's own layout read for another task would train that task on
    chest findings: refused, saying what the file is."""
    if task != CHEST_XRAY_TASK:
        raise DatasetFormatError(
            f"{path}: {what} (chest X-ray findings, task {CHEST_XRAY_TASK!r}), not a {task} dataset"
        )


def _header(path: Path) -> set[str]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return {c.strip().lower() for c in next(csv.reader(fh), [])}


def _iter_csv(path: Path, required: set[str]) -> Iterator[dict[str, str]]:
    """The rows of a CSV one at a time (lower-case keys, stripped values): a 100,000-row
    manifest is never held as a list of dicts."""
    if not path.is_file():
        raise DatasetFormatError(f"{path}: no such file")
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            fields = {(f or "").strip().lower() for f in reader.fieldnames or []}
            missing = required - fields
            if missing:
                raise DatasetFormatError(
                    f"{path}: missing column(s) {sorted(missing)}; found {reader.fieldnames}"
                )
            for row in reader:
                yield {
                    (k or "").strip().lower(): (v or "").strip()
                    for k, v in row.items()
                    if k is not None
                }
    except UnicodeDecodeError as exc:
        raise DatasetFormatError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    except csv.Error as exc:
        raise DatasetFormatError(f"{path}: malformed CSV ({exc})") from None


def _thumbnail(path: Path | str, size: int) -> np.ndarray | None:
    """An image's ``size``² gray thumbnail, flattened, decoded as training decodes it (a
    DICOM slice through ``imaging.io``, with its limits); None when it cannot be read."""
    from PIL import Image

    from medai.imaging.io import load_image
    from medai.imaging.limits import ImageInputError

    try:
        with open(path, "rb") as fh:
            dicom = fh.read(132)[128:132] == b"DICM"
        if dicom:
            pixels = load_image(Path(path)).pixels
            img = Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8), mode="L")
            return np.asarray(img.resize((size, size)), dtype=np.float64).ravel()
        with Image.open(path) as img:
            return np.asarray(img.convert("L").resize((size, size)), dtype=np.float64).ravel()
    except (OSError, ValueError, Image.DecompressionBombError, ImageInputError):
        return None


def thumbnail_groups(
    paths: Sequence[Path | str], threshold: float = 0.95, size: int = 16
) -> np.ndarray:
    """Group images whose 16×16 thumbnails correlate above ``threshold`` (near-identical
    neighbouring slices); returns a group id per image for patient-free datasets.

    Every pair is compared, a block of rows at a time (memory linear in the number of images);
    above ``THUMBNAIL_GROUP_LIMIT`` images it refuses: the data must name its patients."""

    n = len(paths)
    if n > THUMBNAIL_GROUP_LIMIT:
        raise DatasetFormatError(
            f"{n:,} images and no patient ids: grouping near-identical images would compare "
            f"every pair ({n:,}² correlations), which is refused above "
            f"{THUMBNAIL_GROUP_LIMIT:,} images. Add a patient column to the manifest "
            "(file,label,patient) so that each patient's images stay on one side of the split."
        )
    x = np.zeros((n, size * size), dtype=np.float64)
    for k, p in enumerate(paths):
        t = _thumbnail(p, size)
        if t is not None:  # unreadable: a group of its own (training skips it and counts it)
            x[k] = (t - t.mean()) / (t.std() + 1e-8)
    x /= np.sqrt(size * size)
    uf = _UnionFind(n)
    block = 1024
    for start in range(0, n, block):
        corr = x[start : start + block] @ x.T
        for i, j in zip(*np.where(corr > threshold), strict=True):
            if j > start + i:  # the upper triangle, in the full matrix's row-major order
                uf.union(int(start + i), int(j))
    return np.array([uf.find(i) for i in range(n)])


def _split_strata(targets: np.ndarray) -> np.ndarray:
    """Each image's stratum: its exact set of positive label indices ("2+5", "" for none),
    computed once per distinct set."""
    if not len(targets):
        return np.array([], dtype=str)
    positive, inverse = np.unique(targets == 1, axis=0, return_inverse=True)
    names = np.array(["+".join(map(str, np.flatnonzero(row))) for row in positive])
    return names[inverse.reshape(-1)]


def _patient_groups(records: RecordTable) -> np.ndarray:
    """The patient id, or ``__image{i}`` for an image without one (its own group)."""
    return np.array([records.patient(i) or f"__image{i}" for i in range(len(records))])


def patient_split(
    ds: ImageDataset,
    test_frac: float = 0.2,
    val_frac: float = 0.15,
    seed: int = 13,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train/validation/test indices with every patient (or thumbnail group) on one side,
    stratified on each image's first positive label."""
    from sklearn.model_selection import StratifiedGroupKFold

    n = len(ds.records)
    if groups is None:
        groups = _patient_groups(ds.records)
    # stratum = the exact set of positive labels ("Pneumonia+COVID-19", "No Finding", ...)
    strata = _split_strata(ds.targets())

    def holdout(idx: np.ndarray, frac: float, s: int) -> tuple[np.ndarray, np.ndarray]:
        k = max(2, round(1 / frac))
        skf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=s)
        try:
            with warnings.catch_warnings():  # a class too small to stratify: the training
                # run names each label left without validation or test images instead
                warnings.filterwarnings("ignore", "The least populated class", UserWarning)
                rest, hold = next(skf.split(idx, strata[idx], groups[idx]))
        except ValueError:  # a set too small to stratify (a site's first signed studies)
            from sklearn.model_selection import GroupShuffleSplit

            split = GroupShuffleSplit(n_splits=1, test_size=frac, random_state=s)
            rest, hold = next(split.split(idx, groups=groups[idx]))
        return idx[rest], idx[hold]

    rest, test = holdout(np.arange(n), test_frac, seed)
    train, val = holdout(rest, val_frac / (1 - test_frac), seed + 1)
    return np.sort(train), np.sort(val), np.sort(test)
