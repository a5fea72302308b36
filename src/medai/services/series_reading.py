"""Series and films for the platform (which reaches the imaging job only through services): a
stored instance's slices and their anatomical order (the viewer's), and the ``read`` record of a
study decided from one film. The study's series are read by ``services.study_read``."""

from __future__ import annotations

from collections.abc import Iterable

from medai.imaging.results import ReadInfo, SeriesChoice
from medai.imaging.series import SeriesRead, SliceRef, order, single_image_read, slice_refs

__all__ = [
    "SeriesRead",
    "SliceRef",
    "film_read",
    "ordered",
    "single_image_read",
    "slices",
]


def slices(data: bytes) -> list[SliceRef]:
    """The slices of one stored instance, from its header alone (one per frame)."""
    return slice_refs(data)


def ordered(refs: Iterable[SliceRef]) -> list[SliceRef]:
    """Slices in the anatomical order the reader uses, whatever order they arrived in (the
    viewer scrolls them so: ``platform.reading.series_view``)."""
    return order(refs)


def film_read(
    sop_uid: str, series_uid: str | None, in_series: int, considered: int, why: str
) -> ReadInfo:
    """``read`` of a study decided from one film (a chest study's frontal view): the film is
    its key instance; the choice among the study's films is recorded."""
    return ReadInfo(
        series_uid=series_uid,
        instances_in_series=in_series,
        instances_read=1,
        key_instances=[sop_uid] if sop_uid else [],
        read_instances=[sop_uid] if sop_uid else [],
        sampled=False,
        cap=1,
        rule="single_image",
        series_choice=SeriesChoice(chosen=series_uid, considered=considered, why=why),
    )
