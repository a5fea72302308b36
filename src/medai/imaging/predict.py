"""Imaging prediction: findings with probabilities and each label's operating threshold.

The modality gate runs first: a colour photo, or a DICOM of another modality, is refused with
the reason instead of findings. Probabilities are sigmoid (multi-label findings) or softmax
(one tumour class). Output is always an AI suggestion for a radiologist.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from medai.core.registry import ModelCard
from medai.imaging.io import ImageInputError, check_modality, load_image
from medai.imaging.labels import space
from medai.imaging.models import to_tensor
from medai.imaging.train import ImagingTrainConfig, load_model


class ImagingPredictor:
    def __init__(self, model, cfg: ImagingTrainConfig, card: ModelCard,
                 directory: Path | None = None) -> None:
        self.model, self.cfg, self.card, self.directory = model, cfg, card, directory
        self.labels = list(cfg.labels)
        self.multilabel = space(cfg.task).multilabel
        self.thresholds = {lab: float(card.thresholds.get(lab, 0.5)) for lab in self.labels}

    def _activate(self, logits: np.ndarray) -> np.ndarray:
        if self.multilabel:
            return 1.0 / (1.0 + np.exp(-logits))
        z = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def logits(self, batch: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return self.model(batch).float().cpu().numpy()

    def predict_proba_pixels(self, images: Sequence[np.ndarray], batch_size: int = 32
                             ) -> np.ndarray:
        out = []
        for i in range(0, len(images), batch_size):
            batch = torch.stack([to_tensor(p, self.cfg.image_size)
                                 for p in images[i : i + batch_size]])
            out.append(self._activate(self.logits(batch)))
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)))

    def predict(self, source: str | Path | bytes) -> dict:
        """Findings JSON for one image; ``refused`` with a reason for unusable input."""
        try:
            image = load_image(source)
        except ImageInputError as exc:
            return self._refusal(str(exc))
        reason = check_modality(image, self.cfg.task)
        if reason:
            return self._refusal(reason)
        probs = self.predict_proba_pixels([image.pixels])[0]
        findings = [{"label": lab, "probability": float(p), "threshold": self.thresholds[lab],
                     "positive": bool(p >= self.thresholds[lab])}
                    for lab, p in zip(self.labels, probs, strict=True)]
        findings.sort(key=lambda f: -f["probability"])
        return {"status": "ai_suggestion", "task": self.cfg.task, "refused": False,
                "reason": None, "findings": findings, "primary": self.primary(probs),
                "model": self.card.name,
                "image": {"format": image.source_format,
                          "width": int(image.pixels.shape[1]),
                          "height": int(image.pixels.shape[0])},
                "disclaimer": "AI suggestion for a radiologist to review; not a diagnosis."}

    def primary(self, probs: np.ndarray) -> str | None:
        """The one mutually exclusive class (e.g. No Finding / bacterial / viral / COVID-19)
        whose probability most exceeds its threshold; None when the model has no such set."""
        from medai.imaging.evaluate import EXCLUSIVE, exclusive_scores

        classes = [c for c in EXCLUSIVE.get(self.cfg.task, ()) if c in self.labels]
        if len(classes) < 2:
            return None
        idx = [self.labels.index(c) for c in classes]
        margins = exclusive_scores(probs[idx][None], [self.thresholds[c] for c in classes])[0]
        return classes[int(margins.argmax())]

    def _refusal(self, reason: str) -> dict:
        return {"status": "ai_suggestion", "task": self.cfg.task, "refused": True,
                "reason": reason, "findings": [], "model": self.card.name}


def load_predictor(directory: Path, card: ModelCard) -> ImagingPredictor:
    """Registry hook for ``cxr`` / ``mri`` model directories."""
    model, cfg = load_model(directory)
    return ImagingPredictor(model, cfg, card, directory)
