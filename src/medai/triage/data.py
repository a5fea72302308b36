"""Complaint data: read CSV/JSONL, clean, de-duplicate, split without leakage.

Every row that is not used is counted with its reason (empty, page dump, unknown label, exact
duplicate, conflicting labels) so a user sees what happened to their data.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medai.core.dedup import near_duplicate_groups
from medai.core.errors import MedaiError
from medai.core.text import normalise, redact_pii, turkish_lower
from medai.triage import departments

MAX_TRAIN_CHARS = 10_000
_PAGE_DUMP = re.compile(
    r"<\s*/?\s*(?:div|script|html|body|span|table)\b|</script>|function\s*\(", re.IGNORECASE
)


class DataFormatError(MedaiError, ValueError):
    """The file cannot be read as complaint data (missing columns, bad encoding, bad JSON)."""

    code = "invalid"


@dataclass
class LoadReport:
    path: str = ""
    rows_read: int = 0
    rows_kept: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    unknown_labels: Counter[str] = field(default_factory=Counter)
    near_duplicate_groups: int = 0
    rows_in_near_duplicate_groups: int = 0

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "skipped": dict(self.skipped),
            "unknown_labels": dict(self.unknown_labels),
            "near_duplicate_groups": self.near_duplicate_groups,
            "rows_in_near_duplicate_groups": self.rows_in_near_duplicate_groups,
        }


@dataclass
class ComplaintSet:
    texts: list[str]
    labels: list[str]
    groups: np.ndarray
    report: LoadReport

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx: np.ndarray) -> ComplaintSet:
        return ComplaintSet(
            [self.texts[i] for i in idx],
            [self.labels[i] for i in idx],
            self.groups[idx],
            self.report,
        )


def _read_rows(path: Path) -> Iterator[dict]:
    try:
        if path.suffix.lower() in {".jsonl", ".ndjson"}:
            with path.open(encoding="utf-8-sig") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        msg = f"{path}:{lineno}: invalid JSON ({exc.msg})"
                        raise DataFormatError(msg) from None
                    if not isinstance(row, dict):
                        raise DataFormatError(f"{path}:{lineno}: each line must be a JSON object")
                    yield row
        else:
            csv.field_size_limit(1 << 24)
            with path.open(encoding="utf-8-sig", newline="") as fh:
                reader = csv.DictReader(fh)
                fields = [f.strip().lower() for f in (reader.fieldnames or [])]
                missing = {"text", "label"} - set(fields)
                if missing:
                    raise DataFormatError(
                        f"{path}: missing column(s) {sorted(missing)}; "
                        f"need 'text,label', found {reader.fieldnames}"
                    )
                for row in reader:
                    yield {(k or "").strip().lower(): v for k, v in row.items()}
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path}: not valid UTF-8 (byte offset {exc.start})") from None
    except csv.Error as exc:
        raise DataFormatError(f"{path}: malformed CSV ({exc})") from None


def load_complaints(
    path: str | Path,
    redact: bool = False,
    dedup_threshold: float | None = 0.8,
    known_labels: set[str] | None = None,
    drop_near_duplicates: bool = False,
) -> ComplaintSet:
    """Read, clean and de-duplicate a ``text,label`` CSV or JSONL file.

    Near-duplicates are grouped (and splits keep groups whole); ``drop_near_duplicates`` keeps
    only the first row of each group instead. ``known_labels`` restricts to a model's label
    set (evaluation); other labels are counted.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    report = LoadReport(path=str(path))
    seen: dict[str, str] = {}
    texts: list[str] = []
    labels: list[str] = []
    conflicts: set[str] = set()
    for row in _read_rows(path):
        report.rows_read += 1
        if "text" not in row or "label" not in row:
            report.skipped["missing_field"] += 1
            continue
        raw, raw_label = row.get("text"), row.get("label")
        if not isinstance(raw, str) or not isinstance(raw_label, str):
            report.skipped["not_a_string"] += 1
            continue
        if _PAGE_DUMP.search(raw):
            report.skipped["page_dump"] += 1
            continue
        text = normalise(raw)
        if not text or not any(ch.isalpha() for ch in text):
            report.skipped["empty"] += 1
            continue
        if len(text) > MAX_TRAIN_CHARS:
            report.skipped["too_long"] += 1
            continue
        label = departments.resolve(raw_label)
        if label is None or (known_labels is not None and label not in known_labels):
            report.unknown_labels[raw_label.strip() or "<empty>"] += 1
            report.skipped["unknown_label"] += 1
            continue
        if redact:
            text = redact_pii(text)
        key = turkish_lower(text)
        if key in seen:
            if seen[key] != label:
                conflicts.add(key)
            report.skipped["exact_duplicate"] += 1
            continue
        seen[key] = label
        texts.append(text)
        labels.append(label)
    if conflicts:
        # The same text with two labels teaches nothing and poisons evaluation: drop all copies.
        keep = [i for i, t in enumerate(texts) if turkish_lower(t) not in conflicts]
        report.skipped["conflicting_labels"] += len(texts) - len(keep)
        texts = [texts[i] for i in keep]
        labels = [labels[i] for i in keep]
    if dedup_threshold is not None and texts:
        groups = near_duplicate_groups(texts, threshold=dedup_threshold)
    else:
        groups = np.arange(len(texts))
    sizes = Counter(groups.tolist())
    report.near_duplicate_groups = sum(1 for s in sizes.values() if s > 1)
    report.rows_in_near_duplicate_groups = sum(s for s in sizes.values() if s > 1)
    if drop_near_duplicates:
        keep = [i for i in range(len(texts)) if groups[i] == i]  # the first of each group
        report.skipped["near_duplicate"] += len(texts) - len(keep)
        texts, labels, groups = (
            [texts[i] for i in keep],
            [labels[i] for i in keep],
            np.arange(len(keep)),
        )
    report.rows_kept = len(texts)
    return ComplaintSet(texts, labels, groups, report)


@dataclass
class Split:
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    def to_dict(self) -> dict:
        return {
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test),
        }


def _group_stratified_holdout(
    labels: np.ndarray, groups: np.ndarray, frac: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import StratifiedGroupKFold

    idx = np.arange(len(labels))
    counts = Counter(labels.tolist())
    n_splits = max(2, round(1 / frac))
    if min(counts.values()) < n_splits:
        # Too few rows of some class to stratify: fall back to grouped shuffling.
        from sklearn.model_selection import GroupShuffleSplit

        rest, hold = next(
            GroupShuffleSplit(1, test_size=frac, random_state=seed).split(idx, labels, groups)
        )
        return rest, hold
    skf = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    rest, hold = next(skf.split(idx, labels, groups))
    return rest, hold


def split(
    data: ComplaintSet, test_frac: float = 0.15, val_frac: float = 0.15, seed: int = 13
) -> Split:
    """Stratified train/validation/test split with near-duplicate groups kept on one side."""
    labels = np.asarray(data.labels)
    rest, test = _group_stratified_holdout(labels, data.groups, test_frac, seed)
    rel_val = val_frac / (1 - test_frac)
    tr, va = _group_stratified_holdout(labels[rest], data.groups[rest], rel_val, seed + 1)
    return Split(train=np.sort(rest[tr]), validation=np.sort(rest[va]), test=np.sort(test))
