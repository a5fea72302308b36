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
from medai.imaging.results import HeatmapResult, ImagingResult
from medai.imaging.same_image import dicom_differences, same_dicom_content
from medai.imaging.scope import TEXT, describe, of_payload, words
from medai.imaging.views import preference
from medai.imaging.views import view_of as header_or_image
from medai.services.model_metrics import timed
from medai.services.runtime import release_memory, tune_allocator

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
    """The view of a film (``imaging.views.ViewCheck``: ``view`` frontal | lateral | unknown,
    ``source`` header | image, ``score``): its DICOM header's, else ``predictor``'s image check
    (the task's model; one forward pass), else unknown. ``imaging.views.preference`` orders
    the films of a chest study (frontal first)."""

    if predictor is not None and hasattr(predictor, "view"):
        return predictor.view(image)
    return header_or_image(image)


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


LARGE_IMAGE_PIXELS = 4_000_000  # above this, freed decode buffers are handed back to the OS
DISPLAY_SIDE = 2048
"""The stored display rendition (8-bit gray PNG) is at most this many pixels a side: viewers
and reports read it instead of decoding the original on every request."""


def read_image(data: bytes, frame: int | None = None) -> LoadedImage:
    """``frame``: the 1-based frame of a multi-frame DICOM (None: its middle one)."""
    tune_allocator()  # a job worker or the CLI, which build no server (where it is done)
    return load_image(data) if frame is None else load_image(data, frame=frame)


def check_upload(source: str | Path | BinaryIO) -> None:
    """Refuse a stored upload whose header declares more than the decoders may allocate
    (``ImageTooLarge``), reading only the header; other problems are the analysis's to name."""
    try:
        check_limits(source)
    except ImageTooLarge:
        raise
    except ImageInputError:  # not a bomb: unreadable files are refused by the analysis
        return


def _after(image: LoadedImage | None) -> None:
    if image is None:
        return
    meta = image.metadata
    if (meta.get("width") or 0) * (meta.get("height") or 0) > LARGE_IMAGE_PIXELS:
        release_memory()


@contextlib.contextmanager
def decoded(data: bytes, frame: int | None = None) -> Iterator[LoadedImage]:
    """One decode for several uses (rendition, findings, heatmap); the decoder's freed
    buffers go back to the OS afterwards when the image was large. ``frame``: one frame of a
    multi-frame DICOM (1-based; a viewer's slice), decoded alone."""
    image = read_image(data) if frame is None else read_image(data, frame)
    try:
        yield image
    finally:
        _after(image)


def _loaded(source: bytes | LoadedImage) -> tuple[LoadedImage, bool]:
    if isinstance(source, LoadedImage):
        return source, False
    return read_image(source), True


def analyse(predictor, source: bytes | LoadedImage) -> ImagingResult:
    """Findings for an image (bytes, or one already decoded); raises ImageRefused /
    ImageInputError when it gets none."""
    image, owned = None, False
    try:
        image, owned = _loaded(source)
        with timed(predictor, refusals=(ImageInputError,)) as call:
            result = predictor.predict(image)
            if result.refused:
                call.outcome = "refused"
    finally:
        if owned:
            _after(image)
    if result.refused:
        raise ImageRefused(result.refusal(), scope=result.scope)
    return result


def heatmap(
    predictor, source: bytes | LoadedImage, label: str | None = None, max_side: int = WORKING_SIDE
) -> tuple[HeatmapResult, bytes]:
    """Grad-CAM overlay PNG for ``label`` (default: the most probable) and what it shows."""
    from medai.imaging.explain import explain

    image, owned = None, False
    buf = io.BytesIO()
    try:
        image, owned = _loaded(source)
        with timed(predictor, call="heatmap", refusals=(ImageInputError,)):
            shown = explain(predictor, image, buf, label, max_side=max_side)
    finally:
        if owned:
            _after(image)
    return HeatmapResult(
        task=predictor.cfg.task,
        label=shown["label"],
        probability=shown["probability"],
        width=shown["width"],
        height=shown["height"],
        model=predictor.identity,
    ), buf.getvalue()


def display_png(image: LoadedImage, max_side: int = DISPLAY_SIDE) -> bytes:
    """An 8-bit grayscale PNG of a decoded image (browsers and PDFs cannot show DICOM), at
    most ``max_side`` pixels on its longer side: the display rendition a study stores once."""
    import numpy as np
    from PIL import Image

    pixels = np.clip(image.pixels * 255.0, 0, 255).astype(np.uint8)
    pil = Image.fromarray(pixels, mode="L")
    pil.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    # zlib level 1: on a 2,500 px radiograph 2.5 × faster than the default level 6 for a file
    # about a third larger (lossless either way); it is on every study's analysis path
    pil.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def preview_png(data: bytes, max_side: int = 1024) -> bytes:
    """``display_png`` of an image's bytes (a stored rendition, for a smaller copy)."""
    with decoded(data) as image:
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
