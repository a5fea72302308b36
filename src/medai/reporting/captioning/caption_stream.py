"""Caption images read from disk when they are needed, never held: ROCOv2 has some 80 000
figures, far more than fit in memory as decoded pixels.

``CaptionImages`` holds paths and captions only; an item is decoded when a DataLoader asks for
it (in its worker processes), with the bounded readers of ``medai.imaging.io``: as RGB for a
model that reads colour (ROCOv2 figures are often colour; a gray image is repeated on three
channels), or as ``load_image``'s gray float image for one that does not. An image that cannot
be read gives ``None``; the collate drops it and its batch counts it, so a corrupt file costs one
sample, never the epoch. ``stream_images`` does the same for inference: batches of readable
images with their positions, so a held-out part is captioned with bounded memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from medai.core.trainer import default_workers
from medai.imaging import io as image_io
from medai.imaging.io import ImageInputError

DECODE_SIDE = 1024
"""Colour images are decoded (a JPEG at a reduced scale) and box-reduced to at most this many
pixels a side: BLIP-2 reads 224–490, and a 4000-pixel figure decoded in full would cost a
worker 48 MB and most of its time."""

Item = tuple[int, np.ndarray | None, str]


def decode(source: str | Path | bytes, colour: bool) -> np.ndarray:
    """uint8 H × W × 3 (``colour``) or float gray H × W in [0, 1]; raises ``ImageInputError``
    with the reason. Training, scoring and ``predict`` all read through here, so a model sees
    the same pixels in each."""

    if colour:
        return image_io.load_rgb(source, max_side=DECODE_SIDE)
    return image_io.load_image(source).pixels


def read_image(path: str | Path, colour: bool) -> np.ndarray | None:
    """``decode``, or ``None`` for a file that cannot be read (counted by the caller)."""

    try:
        return decode(Path(path), colour)
    except (ImageInputError, OSError):
        return None


class CaptionImages(torch.utils.data.Dataset):
    """Image paths and their captions; item ``i`` is ``(i, pixels or None, caption)``."""

    def __init__(
        self,
        paths: Sequence[str | Path],
        captions: Sequence[str] | None = None,
        colour: bool = True,
    ) -> None:
        self.paths = [str(p) for p in paths]
        self.captions = list(captions) if captions is not None else [""] * len(self.paths)
        if len(self.captions) != len(self.paths):
            raise ValueError(f"{len(self.paths)} images but {len(self.captions)} captions")
        self.colour = colour

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Item:
        return i, read_image(self.paths[i], self.colour), self.captions[i]


def readable(batch: Sequence[Item]) -> tuple[list[int], list[np.ndarray], list[str], int]:
    """The readable items of a batch as (positions, pixels, captions), and how many were not."""
    kept = [(i, p, c) for i, p, c in batch if p is not None]
    return (
        [i for i, _, _ in kept],
        [p for _, p, _ in kept],
        [c for _, _, c in kept],
        len(batch) - len(kept),
    )


def loader(
    dataset: CaptionImages,
    batch_size: int,
    collate: Callable,
    shuffle: bool = False,
    num_workers: int | None = None,
    persistent: bool = True,
) -> torch.utils.data.DataLoader:
    """A DataLoader decoding in ``num_workers`` processes (``default_workers()`` if None),
    pinned memory when a GPU takes the batches; ``collate`` must be picklable (a module-level
    function or an object), as workers may be started by spawn or forkserver."""
    workers = default_workers(cap=8) if num_workers is None else int(num_workers)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        collate_fn=collate,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=persistent and workers > 0,
    )


def stream_images(
    paths: Sequence[str | Path], colour: bool, batch_size: int = 32, num_workers: int | None = None
) -> Iterator[tuple[list[int], list[np.ndarray]]]:
    """Batches of (positions in ``paths``, pixels) of the readable images, in order; at most a
    few batches are decoded at a time."""
    batches = loader(
        CaptionImages(paths, colour=colour),
        batch_size,
        readable,
        num_workers=num_workers,
        persistent=False,
    )
    for positions, pixels, _, _ in batches:
        yield positions, pixels
