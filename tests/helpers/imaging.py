"""Shared by the tests of several files (moved from imaging/test_imaging_train.py, imaging/test_decompression_limits.py)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
from PIL import Image

from medai.imaging.datasets import read_manifest


def _pattern_dataset(root, n_per_class=8):
    rng = np.random.default_rng(0)
    rows = []
    for cls, label in enumerate(["No Finding", "COVID-19", "Pneumonia (bacterial)"]):
        for i in range(n_per_class):
            arr = rng.integers(0, 60, (48, 48)).astype(np.uint8)
            if cls == 1:
                arr[:24] += 150
            elif cls == 2:
                arr[:, :24] += 150
            path = root / f"{cls}_{i}.png"
            Image.fromarray(arr).save(path)
            rows.append(f"{path.name},{label},p{cls}_{i}\n")
    (root / "manifest.csv").write_text("file,label,patient\n" + "".join(rows))
    return read_manifest(root / "manifest.csv", "cxr")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def bomb_png(width: int = 6000, height: int = 6600, depth: int = 16, colour: int = 6) -> bytes:
    """The issue's bomb: a small PNG declaring 6000×6600 16-bit RGBA (317 MB decoded). The
    pixel data is one compressed empty row: only the header matters before decoding."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\0" * (1 + width * 8)))
        + _chunk(b"IEND", b"")
    )
