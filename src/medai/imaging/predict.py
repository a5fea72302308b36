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
from medai.imaging.gate import FeatureGate
from medai.imaging.io import ImageInputError, LoadedImage, check_modality, load_image
from medai.imaging.labels import space
from medai.imaging.models import to_tensor
from medai.imaging.train import ImagingTrainConfig, load_model


class ImagingPredictor:
    def __init__(self, model, cfg: ImagingTrainConfig, card: ModelCard,
                 directory: Path | None = None) -> None:
        self.model, self.cfg, self.card, self.directory = model, cfg, card, directory
        self.torch_model = model  # kept when ``model`` is swapped for an ONNX Runtime one
        self.gate = FeatureGate.load(directory) if directory else None
        if self.gate is not None and hasattr(model, "logits_and_features"):
            with torch.no_grad():
                dim = model.logits_and_features(torch.zeros(1, 1, 32, 32))[1].shape[1]
            if dim != self.gate.mean.shape[0]:
                import warnings

                warnings.warn(f"{directory}: gate.npz was fitted on other features "
                              f"({self.gate.mean.shape[0]} vs {dim}); it is ignored — refit it "
                              "with `medai imaging fit-gate`", stacklevel=2)
                self.gate = None
        self.labels = list(cfg.labels)
        self.multilabel = space(cfg.task).multilabel
        self.thresholds = {lab: float(card.thresholds.get(lab, 0.5)) for lab in self.labels}

    def _activate(self, logits: np.ndarray) -> np.ndarray:
        if self.multilabel:
            return 1.0 / (1.0 + np.exp(-logits))
        z = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def logits_and_features(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            logits, feats = self.model.logits_and_features(batch)
            if feats is None or (self.gate is not None
                                 and feats.shape[1] != self.gate.mean.shape[0]):
                # an ONNX file exported before the gate (or with other features)
                feats = self.torch_model.logits_and_features(batch)[1]
        return logits.float().cpu().numpy(), feats.float().cpu().numpy()

    def proba_and_features(self, images: Sequence[np.ndarray], batch_size: int = 32
                           ) -> tuple[np.ndarray, np.ndarray]:
        probs, feats = [], []
        for i in range(0, len(images), batch_size):
            batch = torch.stack([to_tensor(p, self.cfg.image_size)
                                 for p in images[i : i + batch_size]])
            logits, f = self.logits_and_features(batch)
            probs.append(self._activate(logits))
            feats.append(f)
        if not probs:
            return np.zeros((0, len(self.labels))), np.zeros((0, 0))
        return np.concatenate(probs), np.concatenate(feats)

    def predict_proba_pixels(self, images: Sequence[np.ndarray], batch_size: int = 32
                             ) -> np.ndarray:
        return self.proba_and_features(images, batch_size)[0]

    def refusal_reason(self, image: LoadedImage, features: np.ndarray | None = None
                       ) -> str | None:
        """Why this image must not get findings from this model, or None.

        Rules first (colour photo, DICOM of another modality), then the learned gate."""
        reason = check_modality(image, self.cfg.task)
        if reason or self.gate is None:
            return reason
        if features is None:
            features = self.proba_and_features([image.pixels])[1]
        distance = float(self.gate.distance(features)[0])
        if distance > self.gate.threshold:
            expected = space(self.cfg.task).modality
            return (f"this image does not look like the {expected} images this model was "
                    f"trained on (distance {distance:.1f} > {self.gate.threshold:.1f}); "
                    f"is it another modality or body part?")
        return None

    def predict(self, source: str | Path | bytes) -> dict:
        """Findings JSON for one image; ``refused`` with a reason for unusable input."""
        try:
            image = load_image(source)
        except ImageInputError as exc:
            return self._refusal(str(exc))
        probs, feats = self.proba_and_features([image.pixels])
        reason = self.refusal_reason(image, feats)
        if reason:
            return self._refusal(reason)
        probs = probs[0]
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
