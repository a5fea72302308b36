"""Image findings and heatmaps, shared by the CLI, the API and the job workers.

One contract for an image that gets no findings: ``ImageInputError`` (cannot be read: corrupt,
too large, not an image) or ``ImageRefused`` (read, but the wrong kind of image for the model),
the same for predict, heatmap and draft.
"""

from __future__ import annotations

import io

from medai.imaging.io import (
    MAX_BYTES,
    WORKING_SIDE,
    ImageInputError,
    ImageRefused,
    LoadedImage,
    Refusal,
    load_image,
)
from medai.imaging.results import HeatmapResult, ImagingResult
from medai.services.runtime import release_memory

__all__ = ["MAX_BYTES", "HeatmapResult", "ImageInputError", "ImageRefused", "ImagingResult",
           "Refusal", "analyse", "heatmap", "preview_png", "refusal_of"]

LARGE_IMAGE_PIXELS = 4_000_000  # above this, freed decode buffers are handed back to the OS


def read_image(data: bytes) -> LoadedImage:
    return load_image(data)


def _after(image: LoadedImage | None) -> None:
    if image is None:
        return
    meta = image.metadata
    if (meta.get("width") or 0) * (meta.get("height") or 0) > LARGE_IMAGE_PIXELS:
        release_memory()


def analyse(predictor, data: bytes) -> ImagingResult:
    """Findings for an image; raises ImageRefused / ImageInputError when it gets none."""
    image = None
    try:
        image = read_image(data)
        result = predictor.predict(image)
    finally:
        _after(image)
    if result.refused:
        raise ImageRefused(refusal_of(result))
    return result


def refusal_of(result: ImagingResult) -> Refusal:
    return Refusal(result.reason_code or "out_of_distribution", result.reason or "image refused",
                   dict(result.reason_params))


def heatmap(predictor, data: bytes, label: str | None = None,
            max_side: int = WORKING_SIDE) -> tuple[HeatmapResult, bytes]:
    """Grad-CAM overlay PNG for ``label`` (default: the most probable) and what it shows."""
    from medai.imaging.explain import explain

    image = None
    buf = io.BytesIO()
    try:
        image = read_image(data)
        shown = explain(predictor, image, buf, label, max_side=max_side)
    finally:
        _after(image)
    return HeatmapResult(task=predictor.cfg.task, label=shown["label"],
                         probability=shown["probability"], width=shown["width"],
                         height=shown["height"], model=predictor.identity), buf.getvalue()


def preview_png(data: bytes, max_side: int = 1024) -> bytes:
    """The image as an 8-bit grayscale PNG (browsers and PDFs cannot show DICOM), at most
    ``max_side`` pixels on its longer side."""
    import numpy as np
    from PIL import Image

    image = None
    try:
        image = read_image(data)
        pixels = np.clip(image.pixels * 255.0, 0, 255).astype(np.uint8)
    finally:
        _after(image)
    pil = Image.fromarray(pixels, mode="L")
    pil.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()
