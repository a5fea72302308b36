"""Urgent red flags in Turkish complaints: concept rules and nearest urgent exemplars.

The rules, concepts and exemplars are data files (``data/*.yaml``) a hospital reviews and extends;
see docs/red-flag-rules.md.
"""

from medai.triage.red_flags.engine import (
    DETECTORS,
    EngineOptions,
    Evidence,
    FiredFlag,
    HistoryNote,
    RedFlagEngine,
    RedFlagReport,
    build_engine,
    check,
    default_engine,
)
from medai.triage.red_flags.schema import LEVELS, RuleFileError, RuleSet, load_rules

__all__ = [
    "DETECTORS",
    "LEVELS",
    "EngineOptions",
    "Evidence",
    "FiredFlag",
    "HistoryNote",
    "RedFlagEngine",
    "RedFlagReport",
    "RuleFileError",
    "RuleSet",
    "build_engine",
    "check",
    "default_engine",
    "load_rules",
]
