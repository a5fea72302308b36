"""Image–caption datasets: ROCOv2's released layout and the ``pairs.csv`` layout.

ROCOv2: an image folder plus ``ID,Caption`` and (optionally) ``ID,CUIs`` CSVs, CUIs separated by
``;``. The reference system kept only RGB images; here that filter is an option and grayscale
images (most radiographs) are converted when loaded, not dropped. Reading holds paths and
captions, never pixels, in one pass over the rows (80 000 of them in the full set): the folder
is listed once, and the RGB filter reads each image's header only (its mode), not its pixels;
the report says how many it dropped. ``pairs.csv``: ``file,caption`` (+ modality, source, ...);
several images share one caption, so splits keep a caption's images together.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medai.core.errors import MedaiError
from medai.core.text import decode_text


class CaptionDataError(MedaiError, ValueError):
    """A caption dataset that cannot be read (missing columns, no usable pairs)."""

    code = "invalid"


@dataclass
class CaptionRecord:
    path: Path
    caption: str
    id: str
    group: str
    cuis: list[str] = field(default_factory=list)
    modality: str | None = None


@dataclass
class CaptionDataset:
    records: list[CaptionRecord]
    report: dict


_FIG = re.compile(r"^\s*(?:fig(?:ure)?\.?\s*\d+[a-z]?\s*[:.)-]?\s*)", re.I)


def clean_caption(text: str) -> str:
    """Strip figure numbering, stray whitespace and surrounding quotes; keeps the wording."""
    text = _FIG.sub("", str(text or "")).strip().strip('"').strip()
    return " ".join(text.split())


def _rows(path: Path) -> tuple[list[dict], list[str]]:
    if not path.is_file():
        raise CaptionDataError(f"{path}: no such file")
    text = decode_text(path.read_bytes())
    reader = csv.DictReader(text.splitlines())
    return list(reader), list(reader.fieldnames or [])


def read_pairs(path: Path) -> CaptionDataset:
    rows, fields = _rows(path)
    if not {"file", "caption"} <= set(fields):
        raise CaptionDataError(f"{path}: needs file,caption columns (has {fields})")
    records, missing, empty = [], 0, 0
    sources: list[str] = []
    for row in rows:
        caption = clean_caption(row["caption"])
        image = (path.parent / row["file"]).resolve()
        if not caption:
            empty += 1
            continue
        if not image.is_file():
            missing += 1
            continue
        records.append(
            CaptionRecord(
                image, caption, row["file"], caption.lower(), modality=row.get("modality") or None
            )
        )
        sources.append((row.get("doi") or row.get("source_url") or "").strip().lower())
    _case_groups(records, sources)
    return _finish(
        records, path, {"rows": len(rows), "missing_images": missing, "empty_captions": empty}
    )


def _case_groups(records: list[CaptionRecord], sources: list[str]) -> None:
    """One group per case: images sharing a caption *or* a publication (``doi``, else
    ``source_url``) are one group, so a patient shown on several days with different
    captions never straddles a split."""
    parent = list(range(len(records)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, (rec, src) in enumerate(zip(records, sources, strict=True)):
        for key in ("caption:" + rec.group, "source:" + src if src else None):
            if key is None:
                continue
            if key in first:
                parent[root(i)] = root(first[key])
            else:
                first[key] = i
    for i, rec in enumerate(records):
        rec.group = records[root(i)].caption.lower()


def read_roco(
    images: Path, captions_csv: Path, concepts_csv: Path | None = None, rgb_only: bool = False
) -> CaptionDataset:
    rows, fields = _rows(captions_csv)
    if not {"ID", "Caption"} <= set(fields):
        raise CaptionDataError(f"{captions_csv}: needs ID,Caption columns (has {fields})")
    cuis: dict[str, list[str]] = {}
    if concepts_csv is not None:
        crows, cfields = _rows(concepts_csv)
        if not {"ID", "CUIs"} <= set(cfields):
            raise CaptionDataError(f"{concepts_csv}: needs ID,CUIs columns (has {cfields})")
        cuis = {r["ID"]: [c for c in (r["CUIs"] or "").split(";") if c] for r in crows}
    by_stem = _image_files(Path(images))
    if not by_stem:
        raise CaptionDataError(f"{images}: no image files")
    records, missing, empty, not_rgb, unreadable = [], 0, 0, 0, 0
    for row in rows:
        caption = clean_caption(row["Caption"])
        image = by_stem.get(row["ID"])
        if not caption:
            empty += 1
            continue
        if image is None:
            missing += 1
            continue
        if rgb_only:
            mode = image_mode(image)
            if mode is None:
                unreadable += 1
                continue
            if mode != "RGB":
                not_rgb += 1
                continue
        records.append(CaptionRecord(image, caption, row["ID"], row["ID"], cuis.get(row["ID"], [])))
    report = {
        "rows": len(rows),
        "missing_images": missing,
        "empty_captions": empty,
        "dropped_not_rgb": not_rgb,
    }
    if rgb_only:
        report["dropped_unreadable"] = unreadable
    return _finish(records, captions_csv, report)


def _image_files(folder: Path) -> dict[str, Path]:
    """Stem → path of the files in ``folder``, listed once (``scandir``: no stat per file)."""
    if not folder.is_dir():
        return {}
    with os.scandir(folder) as entries:
        return {Path(e.name).stem: Path(e.path) for e in entries if e.is_file()}


def image_mode(path: Path) -> str | None:
    """The image's Pillow mode from its header alone (no pixel is decoded); None for a file
    whose header cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.mode
    except Exception:  # broad: Pillow raises many types: counted unreadable
        return None


def _finish(records: list[CaptionRecord], path: Path, report: dict) -> CaptionDataset:
    if not records:
        raise CaptionDataError(f"{path}: no usable image–caption pairs ({report})")
    report["pairs"] = len(records)
    report["distinct_captions"] = len({r.caption for r in records})
    return CaptionDataset(records, report)


def load_captions(data: Path, **kwargs) -> CaptionDataset:
    """``pairs.csv`` or a ROCOv2 captions CSV (``--images`` folder given in kwargs)."""
    data = Path(data)
    if kwargs.get("images") is not None:
        return read_roco(
            kwargs["images"], data, kwargs.get("concepts"), kwargs.get("rgb_only", False)
        )
    return read_pairs(data)


def group_split(
    ds: CaptionDataset, test_frac: float = 0.25, seed: int = 13
) -> tuple[list[int], list[int]]:
    """Train/test indices with every caption group on one side."""
    groups = sorted({r.group for r in ds.records})
    rng = np.random.default_rng(seed)
    rng.shuffle(groups)
    n_test = max(1, round(len(groups) * test_frac)) if len(groups) > 1 else 0
    test_groups = set(groups[:n_test])
    train = [i for i, r in enumerate(ds.records) if r.group not in test_groups]
    test = [i for i, r in enumerate(ds.records) if r.group in test_groups]
    return train, test
