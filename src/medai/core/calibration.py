"""Temperature scaling: one parameter that turns decision scores into honest probabilities.

Fitted on the validation split (which may lack some rare classes: rows of classes the
validation split does not have simply do not contribute), it keeps the arg-max and so the
accuracy, and only changes how confident the model says it is.
"""

from __future__ import annotations

import numpy as np


def softmax(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(scores, dtype=np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def as_class_scores(scores: np.ndarray) -> np.ndarray:
    """scikit-learn gives one margin for two classes; spread it over both columns."""
    scores = np.asarray(scores)
    return np.stack([-scores, scores], axis=1) / 2 if scores.ndim == 1 else scores


class TemperatureScaler:
    def __init__(self) -> None:
        self.temperature = 1.0

    def fit(self, scores: np.ndarray, y: np.ndarray) -> TemperatureScaler:
        """Minimise the validation negative log-likelihood over log-temperature."""
        from scipy.optimize import minimize_scalar

        scores = np.asarray(scores, dtype=np.float64)
        if scores.ndim != 2 or len(scores) == 0:
            return self
        rows = np.arange(len(y))

        def nll(log_t: float) -> float:
            p = softmax(scores, float(np.exp(log_t)))
            return float(-np.log(np.clip(p[rows, y], 1e-12, None)).mean())

        res = minimize_scalar(nll, bounds=(-6.0, 6.0), method="bounded")
        self.temperature = float(np.exp(res.x))
        return self

    def predict_proba(self, scores: np.ndarray) -> np.ndarray:
        return softmax(scores, self.temperature)
