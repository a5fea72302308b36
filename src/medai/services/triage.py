"""Complaint triage for every face: the request's threshold, else the configured one
(``MEDAI_TRIAGE_MIN_CONFIDENCE``), else the model card's."""

from __future__ import annotations

from medai.core.text import TextInputError
from medai.services.model_metrics import timed
from medai.triage.results import TriageResult

__all__ = ["TextInputError", "TriageResult", "raises_red_flag", "triage", "warm"]


def triage(
    predictor, text: str, top_k: int = 3, min_confidence: float | None = None
) -> TriageResult:
    """Raises ``TextInputError`` naming the problem when the complaint is unusable."""
    if min_confidence is None:
        from medai.settings import get_settings

        min_confidence = get_settings().triage_min_confidence
    with timed(predictor, "triage", refusals=(TextInputError,)):
        return predictor.predict(text, top_k=top_k, min_confidence=min_confidence)


def warm(predictor) -> None:
    """Load what the first complaint would otherwise wait for (the red-flag engine, e5)."""
    predictor.flag_engine.check("başım ağrıyor")


def raises_red_flag(predictor, text: str) -> bool:
    """Whether a text (a study's clinical question) raises an urgent red flag."""
    return bool(predictor.flag_engine.check(text).flags)
