"""Series for the platform (which reaches the imaging job only through services): a stored
instance's slices and their anatomical order (the viewer's). The study's series are read by
``imaging.reading`` (through ``services.study_read``)."""

from __future__ import annotations

from collections.abc import Iterable

from medai.imaging.series import SeriesRead
from medai.imaging.slices import SliceRef, order, slice_refs

__all__ = [
    "SeriesRead",
    "SliceRef",
    "ordered",
    "slices",
]


def slices(data: bytes) -> list[SliceRef]:
    """The slices of one stored instance, from its header alone (one per frame)."""
    return slice_refs(data)


def ordered(refs: Iterable[SliceRef]) -> list[SliceRef]:
    """Slices in the anatomical order the reader uses, whatever order they arrived in (the
    viewer scrolls them so: ``platform.reading.series_view``)."""
    return order(refs)
