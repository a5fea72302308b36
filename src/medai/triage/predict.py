"""Triage prediction: top-k departments, abstention, and red flags that always win.

The order of precedence is fixed and safety-first: red flags (checked in every language) →
abstain when the complaint is not Turkish (the department model reads only Turkish), out of the
model's scope, or the model is unsure → the model's departments. Every result is labelled as an AI
suggestion for staff, never as a diagnosis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import cast

import numpy as np

from medai.core.model_dir import ModelCard, ModelLoadError, model_identity
from medai.core.text import validate_complaint
from medai.triage import body_sites, departments, red_flags
from medai.triage import classifiers as model_families
from medai.triage.language import detect_language
from medai.triage.results import (
    AbstainReason,
    DepartmentScore,
    Language,
    Level,
    Recommendation,
    RedFlag,
    RedFlagHistory,
    TriageResult,
)
from medai.triage.scope import ScopeGate

DEFAULT_MIN_CONFIDENCE = 0.5
DISCLAIMER_TR = (
    "Yapay zekâ önerisidir; tanı değildir. Son karar sağlık personelindedir. "
    "Acil bir durumda 112'yi arayın."
)
DISCLAIMER_EN = (
    "AI suggestion, not a diagnosis; staff make the final decision. In an emergency call 112."
)
GENERAL_TRIAGE_TR = "Emin değiliz: lütfen genel triyaj / danışma birimine başvurun."
GENERAL_TRIAGE_EN = "Not sure: please go to the general triage desk."
OUT_OF_SCOPE_TR = (
    "Bu şikâyet, bu modelin bildiği bölümlerden biriyle ilgili görünmüyor: lütfen "
    "genel triyaj / danışma birimine başvurun."
)
OUT_OF_SCOPE_EN = (
    "This complaint is not about a department this model knows: please go to the "
    "general triage desk."
)
NOT_TURKISH_TR = (
    "Bölüm önerisi yalnızca Türkçe şikâyetler için yapılabiliyor: lütfen genel "
    "triyaj / danışma birimine başvurun."
)
NOT_TURKISH_EN = (
    "Departments can be suggested only for complaints written in Turkish: please go "
    "to the general triage desk."
)


def choose_min_confidence(
    proba: np.ndarray,
    y_true: np.ndarray,
    target_accuracy: float = 0.95,
    floor: float = 0.4,
    ceiling: float = 0.9,
) -> dict:
    """Smallest confidence cut whose answered validation cases reach ``target_accuracy``.

    Returns the threshold with the coverage and selective accuracy it gives, for the card.
    """
    conf, correct = proba.max(axis=1), proba.argmax(axis=1) == y_true
    chosen = ceiling
    for t in np.round(np.arange(floor, ceiling + 1e-9, 0.01), 2):
        answered = conf >= t
        if answered.any() and correct[answered].mean() >= target_accuracy:
            chosen = float(t)
            break
    answered = conf >= chosen
    return {
        "min_confidence": chosen,
        "coverage": float(answered.mean()),
        "selective_accuracy": float(correct[answered].mean()) if answered.any() else None,
        "target_accuracy": target_accuracy,
    }


class TriagePredictor:
    def __init__(
        self,
        model,
        card: ModelCard,
        directory: Path | None = None,
        flag_engine: red_flags.RedFlagEngine | None = None,
        scope: ScopeGate | None = None,
    ) -> None:
        self.model, self.card, self.directory = model, card, directory
        self._flag_engine, self.scope = flag_engine, scope
        unknown = [lab for lab in model.labels if lab not in departments.BY_ID]
        if unknown:
            raise ModelLoadError(f"model labels are not department ids: {unknown}")
        self.min_confidence = float(card.thresholds.get("min_confidence", DEFAULT_MIN_CONFIDENCE))
        self.identity = model_identity(directory, card)
        self.department_ids = frozenset(model.labels)  # labels are department ids (checked)

    @property
    def flag_engine(self) -> red_flags.RedFlagEngine:
        """The red-flag engine (the process-wide default unless one was given)."""
        return self._flag_engine or red_flags.default_engine()

    @property
    def labels(self) -> list[str]:
        return self.model.labels

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.predict_proba(list(texts))

    def predict(
        self, text: str, top_k: int = 3, min_confidence: float | None = None
    ) -> TriageResult:
        return self.predict_many([text], top_k, min_confidence)[0]

    def predict_many(
        self, texts: Sequence[str], top_k: int = 3, min_confidence: float | None = None
    ) -> list[TriageResult]:
        """Raises ``TextInputError`` naming the problem when a text is unusable."""
        clean = [validate_complaint(t) for t in texts]
        threshold = self.min_confidence if min_confidence is None else float(min_confidence)
        proba = self.predict_proba(clean) if clean else np.zeros((0, len(self.labels)))
        p_other = (
            self.scope.p_other(clean) if self.scope is not None and clean else [None] * len(clean)
        )
        return [
            self._result(t, p, top_k, threshold, o)
            for t, p, o in zip(clean, proba, p_other, strict=True)
        ]

    def _result(
        self, text: str, proba: np.ndarray, top_k: int, threshold: float, p_other: float | None
    ) -> TriageResult:
        order = np.argsort(-proba)[: max(1, min(top_k, len(self.labels)))]
        scores = []
        for i in order:
            dep = departments.get(self.labels[i])
            scores.append(
                DepartmentScore(
                    id=dep.id, name=dep.name_tr, name_en=dep.name_en, probability=float(proba[i])
                )
            )
        report = self.flag_engine.check(text)
        flags = report.flags
        # detect_language answers "tr", "en" or "other"
        language = cast(Language, detect_language(text).language)
        out_of_scope = (
            p_other is not None
            and self.scope is not None  # always, when p_other is
            and p_other >= self.scope.threshold
        )
        elsewhere = (
            body_sites.outside(text, self.department_ids)
            if language == "tr" and not out_of_scope
            else set()
        )
        out_of_scope = out_of_scope or bool(elsewhere)
        reason: AbstainReason | None = (
            "not_turkish"
            if language != "tr"
            else "out_of_scope"
            if out_of_scope
            else "low_confidence"
            if scores[0].probability < threshold
            else None
        )
        abstained = reason is not None
        warnings = []
        if elsewhere:  # the learned gate missed it: say what the complaint names
            warnings.append(
                "a short complaint naming only body sites of departments this "
                f"model does not know ({', '.join(sorted(elsewhere))})"
            )
        if len(self.labels) < len(departments.DEPARTMENTS):
            warnings.append(
                f"model knows {len(self.labels)} of {len(departments.DEPARTMENTS)} departments"
            )
        if flags:  # most urgent first: its advice leads
            rec = Recommendation(
                kind="emergency",
                text_tr=flags[0].advice_tr,
                text_en=flags[0].advice_en,
                level=cast(Level, flags[0].level),  # the rule files' levels are checked
            )
        elif reason == "not_turkish":
            rec = Recommendation(
                kind="general_triage", text_tr=NOT_TURKISH_TR, text_en=NOT_TURKISH_EN
            )
        elif reason == "out_of_scope":
            rec = Recommendation(
                kind="general_triage", text_tr=OUT_OF_SCOPE_TR, text_en=OUT_OF_SCOPE_EN
            )
        elif abstained:
            rec = Recommendation(
                kind="general_triage", text_tr=GENERAL_TRIAGE_TR, text_en=GENERAL_TRIAGE_EN
            )
        else:
            rec = Recommendation(
                kind="department",
                department_id=scores[0].id,
                text_tr=f"Önerilen bölüm: {scores[0].name}",
                text_en=f"Suggested department: {scores[0].name_en}",
            )
        return TriageResult(
            departments=scores,
            urgent=bool(flags),
            red_flags=[RedFlag.model_validate(asdict(f)) for f in flags],
            abstained=abstained,
            abstain_reason=reason,
            language=language,
            recommendation=rec,
            min_confidence=threshold,
            model=self.identity,
            out_of_scope=out_of_scope,
            out_of_scope_probability=None if p_other is None else round(float(p_other), 4),
            urgency_level=cast(Level | None, report.level),  # the leading flag's (checked) level
            red_flag_history=[RedFlagHistory.model_validate(asdict(h)) for h in report.history],
            red_flag_engine={
                **report.engine,
                "rules_version": report.rules_version,
                "detectors": report.detectors,
                "classifier": report.classifier,
            },
            warnings=warnings,
            disclaimer_tr=DISCLAIMER_TR,
            disclaimer_en=DISCLAIMER_EN,
        )


def load_predictor(
    directory: Path, card: ModelCard, flag_options: red_flags.EngineOptions | None = None
) -> TriagePredictor:
    """Registry hook: build the predictor for a triage model directory, with the red-flag
    engine of ``flag_options`` (the configured one, passed by the caller: services.triage
    .red_flag_options; default: the bundled engine)."""
    try:
        model = model_families.load(card.model_type, directory)
    except FileNotFoundError as exc:
        raise ModelLoadError(f"{directory}: model files missing ({exc})") from None
    try:  # triage never serves without its red flags: a broken engine makes triage not ready
        engine = red_flags.default_engine(flag_options)
    except (ValueError, ModelLoadError, OSError) as exc:
        raise ModelLoadError(f"red-flag engine: {exc}") from None
    return TriagePredictor(
        model, card, directory, flag_engine=engine, scope=ScopeGate.load(directory)
    )
