"""Readers for the real imaging dataset layouts, all producing one record type.

A record's ``targets`` vector spans the task's whole label space; ``nan`` means "this source did
not annotate this label", which the loss masks out instead of counting it as negative. Unknown
label names are counted and reported. Splits group by patient (or, when a dataset has no patient
ids, by near-identical thumbnails, since neighbouring slices of one patient look alike).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medai.imaging.labels import LabelSpace, resolve, space

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".bmp", ".tif", ".tiff"}
NIH_LABELS = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule",
              "Pneumonia", "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis",
              "Pleural_Thickening", "Hernia", "No Finding")
CHEXPERT_COLUMNS = ("No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity",
                    "Lung Lesion", "Edema", "Consolidation", "Pneumonia", "Atelectasis",
                    "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
                    "Support Devices")
# A subtype implies its parent; a bare parent leaves the subtype unknown.
# (the task registry's hierarchy: COVID-19 is a viral pneumonia, which is a pneumonia)
IMPLIES = {"Viral_Pneumonia": ("Pneumonia",), "Bacterial_Pneumonia": ("Pneumonia",),
           "COVID-19": ("Viral_Pneumonia", "Pneumonia")}
CHILDREN = {"Pneumonia": ("Viral_Pneumonia", "Bacterial_Pneumonia", "COVID-19")}


class DatasetFormatError(ValueError):
    """A dataset file that cannot be read (missing columns, unknown policy, no images)."""


@dataclass
class ImageRecord:
    path: Path
    targets: np.ndarray  # float32 per label: 1, 0 or nan (not annotated)
    patient: str | None = None
    source: str | None = None


@dataclass
class ImageDataset:
    task: str
    records: list[ImageRecord]
    unknown_labels: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def labels(self) -> tuple[str, ...]:
        return space(self.task).labels

    def targets(self) -> np.ndarray:
        return np.stack([r.targets for r in self.records]) if self.records else \
            np.zeros((0, len(self.labels)), dtype=np.float32)

    def annotated_labels(self, min_positives: int = 1) -> list[str]:
        """Labels with enough positives and at least one annotated negative: learnable here."""
        t = self.targets()
        return [lab for i, lab in enumerate(self.labels)
                if np.nansum(t[:, i] == 1) >= min_positives and np.nansum(t[:, i] == 0) > 0]

    def report(self) -> dict:
        t = self.targets()
        return {"task": self.task, "images": len(self.records),
                "positives": {lab: int(np.nansum(t[:, i] == 1)) for i, lab in
                              enumerate(self.labels) if np.nansum(t[:, i] == 1)},
                "unknown_labels": dict(self.unknown_labels), "skipped": dict(self.skipped),
                "sources": dict(Counter(r.source or "" for r in self.records))}


def _targets(sp: LabelSpace, positives: Iterable[str], annotated: Iterable[str]) -> np.ndarray:
    t = np.full(len(sp.labels), np.nan, dtype=np.float32)
    for lab in annotated:
        t[sp.index(lab)] = 0.0
    positives = list(positives)
    for lab in positives:
        t[sp.index(lab)] = 1.0
        for parent in IMPLIES.get(lab, ()):
            if parent in sp.labels:
                t[sp.index(parent)] = 1.0
    for lab in positives:
        if lab in CHILDREN and not any(c in positives for c in CHILDREN[lab]):
            for child in CHILDREN[lab]:
                if child in sp.labels:
                    t[sp.index(child)] = np.nan  # subtype not stated
    if not sp.multilabel and positives:
        t[:] = 0.0
        t[sp.index(positives[0])] = 1.0
    return t


def _split_labels(raw: str) -> list[str]:
    return [p.strip() for p in raw.replace(";", "|").split("|") if p.strip()]


def read_manifest(path: str | Path, task: str, root: str | Path | None = None) -> ImageDataset:
    """``file,label[,patient,src]`` CSV (labels may be ``A|B``); paths relative to the CSV."""
    path = Path(path)
    sp = space(task)
    root = Path(root) if root else path.parent
    rows = _read_csv(path, {"file", "label"})
    ds = ImageDataset(task, [])
    parsed = []
    for row in rows:
        names = _split_labels(row.get("label", ""))
        resolved = [resolve(task, n) for n in names]
        if not names or any(r is None for r in resolved):
            for n, r in zip(names, resolved, strict=True):
                if r is None:
                    ds.unknown_labels[n] += 1
            ds.skipped["unknown_label" if names else "empty_label"] += 1
            continue
        parsed.append((row, resolved))
    annotated = {lab for _, labs in parsed for lab in labs}
    annotated |= {p for lab in annotated for p in IMPLIES.get(lab, ())}
    for row, labs in parsed:
        file = root / row["file"]
        if not file.is_file():
            ds.skipped["missing_file"] += 1
            continue
        ds.records.append(ImageRecord(file, _targets(sp, labs, annotated),
                                      row.get("patient") or None, row.get("src") or None))
    return ds


def read_nih(csv_path: str | Path, image_dir: str | Path) -> ImageDataset:
    """NIH ChestX-ray14 ``Data_Entry_2017.csv``: 'Finding Labels' as ``A|B``, 'Patient ID'."""
    sp = space("cxr")
    rows = _read_csv(Path(csv_path), {"image index", "finding labels", "patient id"})
    ds = ImageDataset("cxr", [])
    for row in rows:
        names = _split_labels(row["finding labels"])
        labs = [resolve("cxr", n) for n in names]
        if any(lab is None for lab in labs) or not labs:
            ds.unknown_labels.update(n for n, lab in zip(names, labs, strict=True) if lab is None)
            ds.skipped["unknown_label"] += 1
            continue
        file = Path(image_dir) / row["image index"]
        if not file.is_file():
            ds.skipped["missing_file"] += 1
            continue
        ds.records.append(ImageRecord(file, _targets(sp, labs, NIH_LABELS),
                                      row["patient id"], "nih"))
    return ds


UNCERTAINTY_POLICIES = ("ones", "zeros", "ignore")


def _chexpert_targets(row: dict, uncertainty: str, blank: str) -> np.ndarray:
    sp = space("cxr")
    t = np.full(len(sp.labels), np.nan, dtype=np.float32)
    for col in CHEXPERT_COLUMNS:
        lab = resolve("cxr", col)
        if lab is None:  # "Pleural Other", "Support Devices": not in the unified space
            continue
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


def read_chexpert(csv_path: str | Path, root: str | Path, uncertainty: str = "ignore",
                  blank: str = "zeros", source: str = "chexpert") -> ImageDataset:
    """CheXpert ``train.csv``/``valid.csv``: 1 positive, 0 negative, −1 uncertain, blank = not
    mentioned. ``uncertainty``: ones | zeros | ignore (masked); ``blank``: zeros | ignore."""
    if uncertainty not in UNCERTAINTY_POLICIES or blank not in ("zeros", "ignore"):
        raise DatasetFormatError(f"uncertainty must be one of {UNCERTAINTY_POLICIES}, "
                                 "blank one of zeros|ignore")
    rows = _read_csv(Path(csv_path), {"path"})
    ds = ImageDataset("cxr", [])
    for row in rows:
        rel = row["path"]
        file = Path(root) / rel
        if not file.is_file():
            ds.skipped["missing_file"] += 1
            continue
        patient = next((p for p in Path(rel).parts if p.startswith("patient")), None)
        ds.records.append(ImageRecord(file, _chexpert_targets(row, uncertainty, blank),
                                      patient, source))
    return ds


def read_mimic(chexpert_csv: str | Path, metadata_csv: str | Path, root: str | Path,
               uncertainty: str = "ignore", blank: str = "zeros") -> ImageDataset:
    """MIMIC-CXR-JPG: ``mimic-cxr-2.0.0-chexpert.csv`` (labels per study, CheXpert coding) joined
    with ``mimic-cxr-2.0.0-metadata.csv`` (dicom_id → study) under ``files/pXX/pSUBJECT/sSTUDY``."""
    if uncertainty not in UNCERTAINTY_POLICIES:
        raise DatasetFormatError(f"uncertainty must be one of {UNCERTAINTY_POLICIES}")
    studies = {row["study_id"]: row for row in _read_csv(Path(chexpert_csv),
                                                          {"subject_id", "study_id"})}
    ds = ImageDataset("cxr", [])
    for meta in _read_csv(Path(metadata_csv), {"dicom_id", "subject_id", "study_id"}):
        study = studies.get(meta["study_id"])
        if study is None:
            ds.skipped["no_labels"] += 1
            continue
        subject = meta["subject_id"]
        file = (Path(root) / "files" / f"p{subject[:2]}" / f"p{subject}" /
                f"s{meta['study_id']}" / f"{meta['dicom_id']}.jpg")
        if not file.is_file():
            ds.skipped["missing_file"] += 1
            continue
        ds.records.append(ImageRecord(file, _chexpert_targets(study, uncertainty, blank),
                                      subject, "mimic"))
    return ds


def read_folder(root: str | Path, task: str) -> ImageDataset:
    """One sub-folder per class (``root/Glioma/*.png``); folder names go through synonyms."""
    root = Path(root)
    sp = space(task)
    if not root.is_dir():
        raise DatasetFormatError(f"{root}: not a folder")
    ds = ImageDataset(task, [])
    classes = [d for d in sorted(root.iterdir()) if d.is_dir()]
    annotated = {resolve(task, d.name) for d in classes} - {None}
    for d in classes:
        lab = resolve(task, d.name)
        files = [f for f in sorted(d.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
        if lab is None:
            ds.unknown_labels[d.name] += len(files)
            ds.skipped["unknown_label"] += len(files)
            continue
        ds.records.extend(ImageRecord(f, _targets(sp, [lab], annotated), None, root.name)
                          for f in files)
    if not ds.records:
        raise DatasetFormatError(f"{root}: no images in class folders")
    return ds


def load_dataset(path: str | Path, task: str, **kwargs) -> ImageDataset:
    """A manifest CSV, an NIH ``Data_Entry_2017.csv`` (with ``image_dir``) or a class folder."""
    path = Path(path)
    if path.is_dir():
        return read_folder(path, task)
    if path.name.lower().startswith("data_entry"):
        return read_nih(path, kwargs.get("image_dir") or path.parent / "images")
    header = _header(path)
    if "path" in header and "file" not in header:
        return read_chexpert(path, kwargs.get("root") or path.parent,
                             kwargs.get("uncertainty", "ignore"))
    return read_manifest(path, task, kwargs.get("root"))


def _header(path: Path) -> set[str]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return {c.strip().lower() for c in next(csv.reader(fh), [])}


def _read_csv(path: Path, required: set[str]) -> list[dict]:
    if not path.is_file():
        raise DatasetFormatError(f"{path}: no such file")
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            fields = {(f or "").strip().lower() for f in reader.fieldnames or []}
            missing = required - fields
            if missing:
                raise DatasetFormatError(f"{path}: missing column(s) {sorted(missing)}; "
                                         f"found {reader.fieldnames}")
            return [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()
                     if k is not None} for row in reader]
    except UnicodeDecodeError as exc:
        raise DatasetFormatError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    except csv.Error as exc:
        raise DatasetFormatError(f"{path}: malformed CSV ({exc})") from None


def thumbnail_groups(paths: list[Path], threshold: float = 0.95, size: int = 16) -> np.ndarray:
    """Group images whose 16×16 thumbnails correlate above ``threshold`` (near-identical
    neighbouring slices); returns a group id per image for patient-free datasets."""
    from PIL import Image

    from medai.core.dedup import _UnionFind

    thumbs = []
    for p in paths:
        with Image.open(p) as img:
            t = np.asarray(img.convert("L").resize((size, size)), dtype=np.float64).ravel()
        t = (t - t.mean()) / (t.std() + 1e-8)
        thumbs.append(t)
    x = np.stack(thumbs) / np.sqrt(size * size)
    corr = x @ x.T
    uf = _UnionFind(len(paths))
    for i, j in zip(*np.where(np.triu(corr, 1) > threshold), strict=True):
        uf.union(int(i), int(j))
    return np.array([uf.find(i) for i in range(len(paths))])


def patient_split(ds: ImageDataset, test_frac: float = 0.2, val_frac: float = 0.15,
                  seed: int = 13, groups: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train/validation/test indices with every patient (or thumbnail group) on one side,
    stratified on each image's first positive label."""
    from sklearn.model_selection import StratifiedGroupKFold

    n = len(ds.records)
    if groups is None:
        groups = np.array([r.patient or f"__image{i}" for i, r in enumerate(ds.records)])
    # stratum = the exact set of positive labels ("Pneumonia+COVID-19", "No Finding", ...)
    strata = np.array(["+".join(map(str, np.flatnonzero(row == 1))) for row in ds.targets()])

    def holdout(idx: np.ndarray, frac: float, s: int) -> tuple[np.ndarray, np.ndarray]:
        k = max(2, round(1 / frac))
        skf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=s)
        try:
            rest, hold = next(skf.split(idx, strata[idx], groups[idx]))
        except ValueError:  # a set too small to stratify (a site's first signed studies)
            from sklearn.model_selection import GroupShuffleSplit

            split = GroupShuffleSplit(n_splits=1, test_size=frac, random_state=s)
            rest, hold = next(split.split(idx, groups=groups[idx]))
        return idx[rest], idx[hold]

    rest, test = holdout(np.arange(n), test_frac, seed)
    train, val = holdout(rest, val_frac / (1 - test_frac), seed + 1)
    return np.sort(train), np.sort(val), np.sort(test)
