"""Triage model families behind one interface (``base.TextClassifier``), chosen by name from
one table (a wrong name lists the valid ones)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from medai.core.options import lookup

# name -> (class, constructor options the name implies); classes are imported on first use
FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "tfidf": ("medai.triage.classifiers.tfidf:TfidfClassifier", {}),
    "encoder": ("medai.triage.classifiers.encoder:EncoderClassifier", {"with_tfidf": False}),
    "tfidf+encoder": ("medai.triage.classifiers.encoder:EncoderClassifier", {"with_tfidf": True}),
    "transformer": ("medai.triage.classifiers.transformer:TransformerClassifier", {}),
}
MODEL_TYPES = tuple(FAMILIES)


def _family(model_type: str) -> tuple[type[Any], dict[str, Any]]:
    path, implied = lookup(FAMILIES, model_type, "model type")
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name), implied


def create(model_type: str, **options: Any):
    """A fresh, untrained model of the named family."""
    cls, implied = _family(model_type)
    return cls(**implied, **options)


def load(model_type: str, directory: Path):
    """The trained model stored in ``directory`` by ``model.save``."""
    cls, _ = _family(model_type)
    return cls.load(directory)
