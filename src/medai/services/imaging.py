"""Image findings and heatmaps, shared by the CLI, the API and the job workers.

One contract for an image that gets no findings: ``ImageInputError`` (cannot be read: corrupt,
too large, not an image) or ``ImageRefused`` (read, but the wrong kind of image for the model),
the same for predict, heatmap and draft.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from medai.core import task_registry
from medai.imaging import reading
from medai.imaging.decision import follow, questions, read
from medai.imaging.io import (
    MAX_BYTES,
    WORKING_SIDE,
    ImageInputError,
    ImageRefused,
    ImageTooLarge,
    LoadedImage,
    Refusal,
    check_limits,
    load_image,
    population,
)
from medai.imaging.limits import MAX_PIXELS, MAX_TOTAL_PIXELS
from medai.imaging.reading import DISPLAY_SIDE, display_png
from medai.imaging.results import HeatmapResult, ImagingResult
from medai.imaging.same_image import dicom_differences, same_dicom_content
from medai.imaging.scope import TEXT, describe, of_payload, words
from medai.imaging.views import preference
from medai.services.model_metrics import timer_for
from medai.services.runtime import tune_allocator

__all__ = [
    "DISPLAY_SIDE",
    "MAX_BYTES",
    "HeatmapResult",
    "ImageInputError",
    "ImageRefused",
    "ImageTooLarge",
    "ImagingResult",
    "LoadedImage",
    "Refusal",
    "analyse",
    "check_upload",
    "decision_of",
    "declared_too_large",
    "decoded",
    "dicom_differences",
    "display_png",
    "header_population",
    "heatmap",
    "preview_png",
    "same_dicom_content",
    "scope_of",
    "scope_text",
    "scope_words",
    "view_of",
    "view_preference",
]


def decision_of(payload: dict | None) -> dict | None:
    """A stored imaging result's decision as plain JSON, each label with its one ``state``
    (``imaging.decision.read``: results stored before states existed included); None for a
    refused result or one with no findings. Every output reads this, nothing re-derives it."""

    task = None
    try:
        task = task_registry.get(str((payload or {}).get("task") or ""))
    except task_registry.TaskError:
        pass
    decision = read(payload, task)
    return None if decision is None else decision.model_dump(mode="json")


def label_questions(rows: list[dict]) -> list[str]:
    """The labels of a stored decision (``decision_of``'s ``labels``) that a signer must answer
    before signing: the undecided ones in real doubt (``imaging.decision.questions``, the one
    rule the sign-off, the labels API and the sign dialog share)."""
    return questions(rows)


def settle_followers(
    task: task_registry.Task, rows: list[dict], said: dict[str, bool | None]
) -> dict[str, bool | None]:
    """The undecided labels that follow a sub-finding, settled by what ``said`` holds of the
    labels in doubt below them (``imaging.decision.follow``)."""
    return follow(task, rows, said)


def scope_of(payload: dict | None) -> dict | None:
    """A stored imaging result's scope as plain JSON (``imaging.scope``): what the model
    detects, what it cannot (keys of the one words table) and whether the image was out of its
    scope; for a result stored before scopes, what its task and labels say. None: no result."""

    scope = of_payload(payload)
    return None if scope is None else scope.model_dump(mode="json")


def scope_words(lang: str) -> dict[str, str]:
    """The name of every ``cannot_detect`` key in ``lang`` (the one words table)."""

    return words(lang)


def scope_text(scope: dict | None, task: str, lang: str) -> dict[str, str]:
    """The scope in a report's sentences: ``detects``, ``cannot_detect``, ``out_of_scope``
    (empty when not flagged), and the headings ``title``, ``detects_title``,
    ``cannot_title``, ``flag_title`` (``imaging.scope.describe``)."""

    i = 1 if lang == "tr" else 0
    headings = {k: TEXT[k][i] for k in ("title", "detects_title", "cannot_title", "flag_title")}
    return {**describe(scope, task, lang), **headings}


def view_of(image: LoadedImage, predictor=None):
    """The view of a film (``imaging.reading.view_of``): its header's, else the task model's
    image check, else unknown."""

    return reading.view_of(image, predictor)


def view_preference(check) -> tuple[int, int]:
    """Sort key choosing the film a chest study is decided from (frontal, then unknown, then
    lateral; the header's word before the image check's)."""

    return preference(check)


def header_population(data: bytes) -> dict[str, str]:
    """View, device manufacturer, age band and sex from a DICOM file's header (pixels never
    read); {} for other formats or an unreadable header. For validation subgroups."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    if len(data) < 132 or data[128:132] != b"DICM":
        return {}
    try:
        ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
    except (InvalidDicomError, ValueError, OSError, EOFError):
        return {}
    return {"view": str(ds.get("ViewPosition", "") or "").strip().upper()[:16], **population(ds)}


def declared_too_large(rows: int, columns: int, frames: int = 1, samples: int = 1) -> bool:
    """Whether an image declaring these dimensions is past the decoders' limits (a PACS's
    QIDO answer can say so before the instance is fetched)."""
    return rows * columns > MAX_PIXELS or rows * columns * frames * samples > MAX_TOTAL_PIXELS


def read_image(data: bytes, frame: int | None = None) -> LoadedImage:
    """``frame``: the 1-based frame of a multi-frame DICOM (None: its middle one)."""
    tune_allocator()  # a job worker or the CLI, which build no server (where it is done)
    return load_image(data, frame=frame)


def check_upload(source: str | Path | BinaryIO) -> None:
    """Refuse a stored upload whose header declares more than the decoders may allocate
    (``ImageTooLarge``), reading only the header; other problems are the analysis's to name."""
    try:
        check_limits(source)
    except ImageTooLarge:
        raise
    except ImageInputError:  # not a bomb: unreadable files are refused by the analysis
        return


@contextlib.contextmanager
def decoded(data: bytes, frame: int | None = None) -> Iterator[LoadedImage]:
    """One decode for several uses (``imaging.reading.decoded``: a large image's freed buffers
    go back to the OS afterwards). ``frame``: one frame of a multi-frame DICOM (1-based)."""
    tune_allocator()
    with reading.decoded(data, frame) as image:
        yield image


def _loaded(source: bytes | LoadedImage) -> contextlib.AbstractContextManager[LoadedImage]:
    if isinstance(source, LoadedImage):
        return contextlib.nullcontext(source)
    return decoded(source)


def analyse(predictor, source: bytes | LoadedImage) -> ImagingResult:
    """Findings for an image (bytes, or one already decoded); raises ImageRefused /
    ImageInputError when it gets none."""
    timer = timer_for(predictor)
    with _loaded(source) as image:
        return reading.findings(predictor, image, timer)


def heatmap(
    predictor, source: bytes | LoadedImage, label: str | None = None, max_side: int = WORKING_SIDE
) -> tuple[HeatmapResult, bytes]:
    """Grad-CAM overlay PNG for ``label`` (default: the most probable) and what it shows."""
    timer = timer_for(predictor)
    with _loaded(source) as image:
        return reading.heatmap(predictor, image, label, max_side, timer)


def preview_png(data: bytes, max_side: int = 1024, frame: int | None = None) -> bytes:
    """``display_png`` of an image's bytes (a stored rendition, for a smaller copy; ``frame``:
    one frame of a multi-frame DICOM)."""
    with decoded(data, frame=frame) as image:
        return display_png(image, max_side)


def saliency_of_overlay(png: bytes, rows: int, columns: int):
    """The normalised Grad-CAM (float32 0..1, ``rows`` × ``columns``) a stored heatmap
    overlay PNG was drawn from, resized (bilinear) to the source image's grid."""
    import numpy as np
    from PIL import Image

    from medai.imaging.explain import saliency_of_overlay as invert

    with Image.open(io.BytesIO(png)) as img:
        saliency = invert(np.asarray(img.convert("RGBA")))
    if saliency.shape != (rows, columns):
        saliency = np.asarray(
            Image.fromarray(saliency, mode="F").resize((columns, rows), Image.Resampling.BILINEAR),
            dtype=np.float32,
        )
    return np.clip(saliency, 0.0, 1.0)
