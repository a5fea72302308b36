"""Reading a study's series and films for the platform (which reaches the imaging job only
through services): the series reader of ``imaging.series`` behind a loader over stored
instances, and the ``read`` record of a study decided from one film."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from medai.imaging.io import LoadedImage
from medai.imaging.results import ImagingResult, ReadInfo, SeriesChoice
from medai.imaging.series import (
    SeriesRead,
    SliceRef,
    choose_series,
    explain_slice,
    order,
    read_series,
    series_result,
    single_image_read,
    slice_refs,
)

__all__ = [
    "SeriesRead",
    "SliceRef",
    "choose",
    "explain",
    "film_read",
    "ordered",
    "read",
    "result",
    "single_image_read",
    "slices",
]


def slices(data: bytes) -> list[SliceRef]:
    """The slices of one stored instance, from its header alone (one per frame)."""
    return slice_refs(data)


def ordered(refs: Iterable[SliceRef]) -> list[SliceRef]:
    """Slices in the anatomical order the reader uses, whatever order they arrived in (the
    viewer scrolls them so: ``platform.series_view``)."""
    return order(refs)


def choose(series: Mapping[str, Sequence[SliceRef]]) -> tuple[str, SeriesChoice]:
    """Which series of the study to read, and why (recorded in ``read.series_choice``)."""
    return choose_series(series)


def read(
    predictor,
    refs: Iterable[SliceRef],
    load: Callable[[SliceRef], LoadedImage],
    series_uid: str | None,
    choice: SeriesChoice | None,
) -> SeriesRead:
    """The series read to one decision (the model's recorded aggregation rule)."""
    return read_series(predictor, refs, load, series_uid=series_uid, choice=choice)


def result(predictor, series: SeriesRead) -> ImagingResult:
    return series_result(predictor, series)


def explain(
    series: SeriesRead, load: Callable[[SliceRef], LoadedImage]
) -> tuple[SliceRef, LoadedImage, str] | None:
    """The key slice to draw the heatmap of, decoded again, and its label."""
    return explain_slice(series, load)


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
