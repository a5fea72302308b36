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
    explain_slice,
    order,
    series_result,
    single_image_read,
    slice_refs,
)
from medai.imaging.series_study import read_study

__all__ = [
    "SeriesRead",
    "SliceRef",
    "explain",
    "film_read",
    "ordered",
    "read_all",
    "result",
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


def read_all(
    predictor,
    series: Mapping[str, Sequence[SliceRef]],
    load: Callable[[SliceRef], LoadedImage],
) -> SeriesRead:
    """Every series of the study the model can read, to one study decision (the most severe
    decided finding wins); the series it came from, with every series accounted for in
    ``read.series`` (``imaging.series_study.read_study``)."""
    return read_study(predictor, series, load)


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
