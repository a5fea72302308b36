"""Complaint triage for every face: the request's threshold, else the configured one
(``MEDAI_TRIAGE_MIN_CONFIDENCE``), else the model card's."""

from __future__ import annotations

from medai.core.text import TextInputError
from medai.services.model_metrics import timed
from medai.settings import get_settings
from medai.triage.red_flags.engine import EngineOptions, default_engine
from medai.triage.results import TriageResult

__all__ = [
    "TextInputError",
    "TriageResult",
    "raises_red_flag",
    "red_flag_options",
    "red_flags",
    "served_flag_engine",
    "triage",
]


def triage(
    predictor, text: str, top_k: int = 3, min_confidence: float | None = None
) -> TriageResult:
    """Raises ``TextInputError`` naming the problem when the complaint is unusable."""
    if min_confidence is None:
        min_confidence = get_settings().models.triage_min_confidence
    with timed(predictor, "triage", refusals=(TextInputError,)):
        return predictor.predict(text, top_k=top_k, min_confidence=min_confidence)


def red_flag_options(settings=None):
    """The red-flag engine the settings configure (``MEDAI_RED_FLAG_RULES``,
    ``MEDAI_RED_FLAG_EMBEDDINGS``, ``MEDAI_RED_FLAG_CLASSIFIER``, ``MEDAI_CACHE_DIR``,
    ``MEDAI_E5_MICRO_BATCH``), as the triage job takes it."""
    s = settings or get_settings()
    return EngineOptions(
        rules_dir=s.models.red_flag_rules,
        embeddings=s.models.red_flag_embeddings,
        classifier=s.models.red_flag_classifier,
        cache_dir=s.storage.cache_dir,
        e5_micro_batch=s.serving.e5_micro_batch,
    )


def served_flag_engine():
    """The process-wide red-flag engine of the settings (what served triage uses)."""
    return default_engine(red_flag_options())


def raises_red_flag(predictor, text: str) -> bool:
    """Whether a text (a study's clinical question) raises an urgent red flag."""
    return bool(red_flags(predictor, text))


def red_flags(predictor, text: str) -> list:
    """The red flags a text (a study's clinical question) raises, most urgent first: each
    rule's ``id``, ``name_tr`` and ``name_en`` (``triage.red_flags.engine.FiredFlag``)."""
    return list(predictor.flag_engine.check(text).flags)
