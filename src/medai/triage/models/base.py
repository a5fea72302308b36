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

    def fit(self, train_texts: Sequence[str], train_labels: Sequence[str],
            val_texts: Sequence[str], val_labels: Sequence[str]) -> None: ...

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...

    def save(self, directory: Path) -> None: ...


def label_index(labels: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    pos = {c: i for i, c in enumerate(classes)}
    return np.array([pos[lab] for lab in labels], dtype=int)


def sorted_classes(*label_lists: Sequence[str]) -> list[str]:
    """Stable class order for a model: sorted department ids seen in the data."""
    return sorted({lab for labels in label_lists for lab in labels})
