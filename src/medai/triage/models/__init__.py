"""Triage model families behind one interface (``base.TextClassifier``), chosen by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

MODEL_TYPES = ("tfidf", "encoder", "tfidf+encoder", "transformer")


def create(model_type: str, **options: Any):
    """A fresh, untrained model of the named family."""
    if model_type == "tfidf":
        from medai.triage.models.tfidf import TfidfClassifier

        return TfidfClassifier(**options)
    if model_type in ("encoder", "tfidf+encoder"):
        from medai.triage.models.encoder import EncoderClassifier

        return EncoderClassifier(with_tfidf=model_type == "tfidf+encoder", **options)
    if model_type == "transformer":
        from medai.triage.models.transformer import TransformerClassifier

        return TransformerClassifier(**options)
    raise ValueError(f"unknown model type {model_type!r}; choose one of {', '.join(MODEL_TYPES)}")


def load(model_type: str, directory: Path):
    """The trained model stored in ``directory`` by ``model.save``."""
    if model_type == "tfidf":
        from medai.triage.models.tfidf import TfidfClassifier

        return TfidfClassifier.load(directory)
    if model_type in ("encoder", "tfidf+encoder"):
        from medai.triage.models.encoder import EncoderClassifier

        return EncoderClassifier.load(directory)
    if model_type == "transformer":
        from medai.triage.models.transformer import TransformerClassifier

        return TransformerClassifier.load(directory)
    raise ValueError(f"unknown model type {model_type!r}; choose one of {', '.join(MODEL_TYPES)}")
