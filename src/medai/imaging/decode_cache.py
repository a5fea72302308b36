"""A disk cache of decoded, resized training images (``imaging train --cache-dir``).

Measured on one H200 with 16 CPU cores (docs/benchmarks/gpu.md): a 1024² PNG film costs
17.7 ms of CPU before augmentation (decode 10.8, resize 3.4), so 15 loader workers fed
DenseNet121 at most ~680 images/s, a fifth of what the GPU trains at batch 256. Decoding is
the same every epoch; only the augmentation changes. This cache keeps each image as the
network sees it before augmentation (one channel, ``size`` × ``size``) so that every epoch
after the first reads ~100 KB instead of decoding a film.

- **Keyed by the file, not its name**: the path, its size and modification time, the side and
  the cache's format version. A film replaced on disk is decoded again; nothing is ever read
  back for a different file or size.
- **uint16, not float**: [0, 1] in 65,535 steps (1.5e-5, finer than a 12-bit detector), 2 bytes
  a pixel: 100 KB an image at 224 px, ~10 GB for 100,000 images. Every read of a cached image,
  the first included, returns the quantised values, so epochs agree with one another.
- **Safe with several workers and processes**: written to a temporary file beside its place and
  renamed in (atomic on POSIX); a half-written or foreign file is a miss, never an error.
- ``.npy`` read with ``allow_pickle=False``: a file planted in the cache cannot run code.
- An unreadable image is not cached; it is retried (and counted) each epoch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger("medai.imaging")

FORMAT_VERSION = 1
# bump when load_image or to_tensor change what a film decodes to: older entries become misses
PREPROCESS_VERSION = 1
SCALE = 65535.0


class DecodedCache:
    """Decoded, resized images on disk, one ``.npy`` (uint16, 1 × size × size) per source file."""

    def __init__(self, root: str | Path, size: int) -> None:
        self.root, self.size = Path(root), int(size)
        self.root.mkdir(parents=True, exist_ok=True)

    def _place(self, source: str) -> Path | None:
        try:
            st = os.stat(source)
        except OSError:
            return None
        parts = (
            os.path.abspath(source),
            st.st_size,
            st.st_mtime_ns,
            self.size,
            FORMAT_VERSION,
            PREPROCESS_VERSION,
        )
        key = "\0".join(map(str, parts))
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        return self.root / digest[:2] / f"{digest[2:]}.npy"

    def lookup(self, source: str) -> tuple[np.ndarray | None, Path | None]:
        """The cached image (float32 in [0, 1], 1 × size × size) or None, and the place a
        decoded one is to be stored (None when the source cannot be stat'ed). The place is
        fixed here, before the caller decodes: a file replaced while it decodes is stored
        under the key it had when looked up, which no lookup of the new file matches — never
        the old content under the new file's key."""
        place = self._place(source)
        if place is None or not place.is_file():
            return None, place
        try:
            stored = np.load(place, allow_pickle=False)
        except Exception as exc:  # broad: numpy raises many types on a bad entry: a miss (logged)
            log.warning(
                "decode cache entry %s unreadable (%s): a miss", place.name, type(exc).__name__
            )
            return None, place
        if (
            not isinstance(stored, np.ndarray)  # an .npz archive planted at the name
            or stored.dtype != np.uint16
            or stored.shape != (1, self.size, self.size)
        ):
            return None, place
        return stored.astype(np.float32) / SCALE, place

    def store(self, place: Path | None, image: np.ndarray) -> np.ndarray:
        """Store ``image`` (float in [0, 1], 1 × size × size) at ``place`` (``lookup``'s) and
        return it as a later read will: quantised to uint16 and back."""
        stored = np.rint(np.clip(image, 0.0, 1.0) * SCALE).astype(np.uint16)
        if stored.shape != (1, self.size, self.size):
            raise ValueError(f"expected 1 × {self.size} × {self.size}, got {stored.shape}")
        if place is not None:
            self._write(place, stored)
        return stored.astype(np.float32) / SCALE

    @staticmethod
    def _write(place: Path, stored: np.ndarray) -> None:
        tmp = None
        try:
            place.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=place.parent, prefix=".part-", suffix=".npy")
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, stored, allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())  # never a renamed-in empty file after a power cut
            os.replace(tmp, place)
        except OSError:  # a full or read-only disk costs the cache, never the training
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
