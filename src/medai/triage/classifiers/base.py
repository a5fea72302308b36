"""The one interface every triage model family implements, whatever its backend."""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

# Modules renamed since a release that pickled their functions into model files (a TF-IDF
# model holds ``lower_for_features`` by its module path): a hospital's models trained before
# the rename load unchanged, their bytes and content hashes untouched.
RENAMED_MODULES = {"medai.triage.models.tfidf": "medai.triage.classifiers.tfidf"}
_RENAMES = threading.Lock()


def load_pickled(path: Path) -> Any:
    """``joblib.load`` that resolves the old module paths of ``RENAMED_MODULES`` (for that
    load only: nothing else can import an old path). Only load model directories you trust
    (docs/security.md); the sealed directory's content hash is checked before this runs."""
    import joblib

    with _RENAMES:
        added = [
            old
            for old, new in RENAMED_MODULES.items()
            if old not in sys.modules
            and sys.modules.setdefault(old, importlib.import_module(new)) is not None
        ]
        try:
            return joblib.load(path)
        finally:
            for old in added:
                sys.modules.pop(old, None)


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
