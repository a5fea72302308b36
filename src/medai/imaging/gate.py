"""The modality gate: "is this the kind of image I was trained on?", by rules, then learned.

The rules (``check_modality``) catch colour photos and DICOMs that name another modality, but a
PNG of a brain MRI sent to the chest X-ray model passes every rule. The model's own penultimate features do not: the gate
fits a Gaussian to the training images' features (PCA-whitened, plus the residual off the
principal subspace) and refuses images whose distance exceeds a threshold set on validation
images. It is stored as ``gate.npz`` in the model directory; models without one skip the check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medai.core.task_registry import Task
from medai.imaging.io import LoadedImage, Refusal

GATE_FILE = "gate.npz"


def check_modality(image: LoadedImage, expected: Task) -> Refusal | None:
    """A reason to refuse the image for the ``expected`` task (its label space:
    ``imaging.labels.space``), or None when nothing says it is wrong.

    DICOM files say their modality; a colour photograph is recognisably not a radiograph or an
    MRI slice. (A learned check against the other task's images lives with the models.)
    """
    modality = image.metadata.get("modality")
    if modality and modality not in expected.dicom_modalities:
        return Refusal(
            "wrong_modality",
            f"DICOM modality is {modality!r}, but the {expected.modality} model "
            f"expects {'/'.join(expected.dicom_modalities)}",
            {"modality": str(modality)[:16], "expected": "/".join(expected.dicom_modalities)},
        )
    if image.metadata.get("colourfulness", 0.0) > 0.08:
        return Refusal(
            "colour_photo",
            f"this looks like a colour photograph, not a "
            f"{expected.modality} (radiological images are grayscale)",
        )
    return None


@dataclass
class FeatureGate:
    mean: np.ndarray  # D
    components: np.ndarray  # k × D (principal axes)
    variances: np.ndarray  # k
    within_scale: float  # typical whitened distance inside the principal subspace
    residual_scale: float  # typical squared residual off it
    threshold: float

    @classmethod
    def fit(
        cls,
        train: np.ndarray,
        val: np.ndarray,
        k: int = 32,
        quantile: float = 0.99,
        margin: float = 2.0,
    ) -> FeatureGate:
        """Fit the subspace on training features; scale both terms and set the threshold
        (``margin`` × the ``quantile`` of distances) on held-out validation features, since
        in-sample residuals understate how far a new in-distribution image lies."""
        if len(train) < 4:
            raise ValueError("the gate needs at least 4 training images")
        mean = train.mean(0)
        centred = train - mean
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        k = max(1, min(k, (len(train) - 1) // 4, vt.shape[0]))
        variances = np.maximum(s[:k] ** 2 / (len(train) - 1), 1e-8)
        gate = cls(
            mean.astype(np.float32),
            vt[:k].astype(np.float32),
            variances.astype(np.float32),
            1.0,
            1.0,
            threshold=np.inf,
        )
        reference = val if len(val) >= 10 else train
        within, residual = gate._terms(reference)
        gate.within_scale = float(max(within.mean(), 1e-8))
        gate.residual_scale = float(max(residual.mean(), 1e-8))
        gate.threshold = float(margin * np.quantile(gate.distance(reference), quantile))
        return gate

    def _terms(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        centred = np.asarray(feats, dtype=np.float32) - self.mean
        z = centred @ self.components.T
        within = np.mean(z**2 / self.variances, axis=1)
        residual = np.sum((centred - z @ self.components) ** 2, axis=1)
        return within, residual

    def distance(self, feats: np.ndarray) -> np.ndarray:
        """About 1 for typical in-distribution images; grows for images unlike them."""
        within, residual = self._terms(feats)
        return 0.5 * (within / self.within_scale + residual / self.residual_scale)

    def coordinates(self, feats: np.ndarray, n: int = 8) -> np.ndarray:
        """The features on the first ``n`` principal axes, whitened (unit variance on the
        training images): a small, comparable embedding for drift monitoring."""
        centred = np.asarray(feats, dtype=np.float32) - self.mean
        k = min(n, len(self.variances))
        return (centred @ self.components[:k].T) / np.sqrt(self.variances[:k])

    def acceptance(self, feats: np.ndarray) -> float:
        """Fraction of these images the gate lets through."""
        return float(np.mean(self.distance(feats) <= self.threshold))

    def save(self, directory: Path) -> Path:
        path = directory / GATE_FILE
        np.savez(
            path,
            mean=self.mean,
            components=self.components,
            variances=self.variances,
            within_scale=self.within_scale,
            residual_scale=self.residual_scale,
            threshold=self.threshold,
        )
        return path

    @classmethod
    def load(cls, directory: Path) -> FeatureGate | None:
        path = directory / GATE_FILE
        if not path.is_file():
            return None
        with np.load(path) as z:
            if not {"within_scale", "residual_scale", "threshold"} <= set(z.keys()):
                import warnings

                warnings.warn(
                    f"{path} is from an older medai and is ignored; refit it with "
                    "`medai imaging fit-gate`",
                    stacklevel=2,
                )
                return None
            return cls(
                z["mean"],
                z["components"],
                z["variances"],
                float(z["within_scale"]),
                float(z["residual_scale"]),
                float(z["threshold"]),
            )
