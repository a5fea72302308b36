"""The predictor interface every captioner shares (retrieval, BLIP-2 + LoRA)."""

from __future__ import annotations

from medai.core.registry import ModelCard
from medai.reporting.results import CaptionResult


class CaptionPredict:
    """``predict(image)`` for any captioner with ``caption_pixels``: a typed result; an image
    that cannot be read raises ``ImageInputError`` with the reason, never a crash."""

    def predict(self, source) -> CaptionResult:
        from medai.core.registry import model_identity
        from medai.imaging.io import LoadedImage, load_image

        image = source if isinstance(source, LoadedImage) else load_image(source)
        ref = getattr(self, "identity", None)
        if ref is None:
            card = getattr(self, "card", None) or ModelCard(
                task="caption", model_type=type(self).__name__, labels=[], name="unsaved")
            ref = self.identity = model_identity(None, card)
        return CaptionResult(model=ref, **self.caption_pixels([image.pixels])[0])
