"""The one interface every triage model family implements, whatever its backend."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class TextClassifier(Protocol):
    """Maps texts to class probabilities over ``labels`` (department ids)."""

    model_type: str
    labels: list[str]
    history: list[dict]

    def fit(
        self,
        train_texts: Sequence[str],
        train_labels: Sequence[str],
        val_texts: Sequence[str],
        val_labels: Sequence[str],
    ) -> None: ...

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...

    def save(self, directory: Path) -> None: ...


def label_index(labels: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    pos = {c: i for i, c in enumerate(classes)}
    return np.array([pos[lab] for lab in labels], dtype=int)


def sorted_classes(*label_lists: Sequence[str]) -> list[str]:
    """Stable class order for a model: sorted department ids seen in the data."""
    return sorted({lab for labels in label_lists for lab in labels})


def fast_linear(estimator) -> None:
    """Lay a fitted scikit-learn linear model's ``coef_`` (in a pipeline, or an ensemble's
    ``estimators_``) out so that ``X @ coef_.T`` on a sparse ``X`` reads it in place: with the
    default layout scipy copies every weight on each call (~1 ms a complaint for a 225k-feature
    model). Same values, same summation order: the same probabilities, bit for bit."""
    for _, step in getattr(estimator, "steps", []):
        fast_linear(step)
    for inner in getattr(estimator, "estimators_", None) or []:
        fast_linear(inner)
    for attr in ("estimator", "base_estimator"):
        inner = getattr(estimator, attr, None)
        if inner is not None and inner is not estimator and hasattr(inner, "fit"):
            fast_linear(inner)
    coef = getattr(estimator, "coef_", None)
    if isinstance(coef, np.ndarray) and coef.ndim == 2:
        estimator.coef_ = np.asfortranarray(coef)
