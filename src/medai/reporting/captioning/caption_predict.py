"""The predictor interface every captioner shares (retrieval, BLIP-2 + LoRA)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from medai.core.model_dir import ModelCard, model_identity
from medai.imaging.io import LoadedImage
from medai.reporting.results import CaptionResult

if TYPE_CHECKING:
    import numpy as np


class CaptionPredict:
    """``predict(image)`` for any captioner with ``caption_pixels``: a typed result; an image
    that cannot be read raises ``ImageInputError`` with the reason, never a crash. A captioner
    with ``reads_colour`` (BLIP-2, trained on RGB) gets a file's colours, read as in training;
    an already decoded ``LoadedImage`` is gray."""

    reads_colour = False

    if TYPE_CHECKING:  # what a captioner provides (declared only: a base would shadow it)

        def caption_pixels(self, pixels: list[np.ndarray]) -> list[dict]: ...

    def predict(self, source) -> CaptionResult:
        from medai.reporting.captioning.caption_stream import decode

        pixels = (
            source.pixels
            if isinstance(source, LoadedImage)
            else decode(source, colour=self.reads_colour)
        )
        ref = getattr(self, "identity", None)
        if ref is None:
            card = getattr(self, "card", None) or ModelCard(
                task="caption", model_type=type(self).__name__, labels=[], name="unsaved"
            )
            ref = self.identity = model_identity(None, card)
        return CaptionResult(model=ref, **self.caption_pixels([pixels])[0])
