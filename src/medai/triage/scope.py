"""Out-of-scope check: is a complaint about one of the departments this model learned at all?

A 4-department model confidently sends a pregnant woman to dermatology, because softmax must pick
one of the classes it knows. This gate is a separate binary classifier — complaints of the
model's departments against complaints of other departments — over Turkish-folded word and
character n-grams (folding and lowercasing keep it from learning how carefully a text was typed).
Its threshold is chosen on validation texts neither side was trained on. When the gate says
"other", the predictor refers the patient to the general triage desk, saying why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from medai.core.text import match_form
from medai.triage.classifiers.base import fast_linear, load_pickled

SCOPE_FILE = "scope.joblib"


def _features():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    common = dict(
        sublinear_tf=True,
        lowercase=False,
        preprocessor=match_form,
        min_df=2,
        dtype=np.float32,
        max_features=200_000,
    )
    return FeatureUnion(
        [
            ("word", TfidfVectorizer(ngram_range=(1, 2), **common)),
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), **common)),
        ]
    )


@dataclass
class ScopeGate:
    pipeline: Any  # a fitted sklearn (untyped) Pipeline
    threshold: float  # refer to general triage when P(other department) >= threshold

    @classmethod
    def fit(
        cls,
        in_scope: Sequence[str],
        out_of_scope: Sequence[str],
        val_in: Sequence[str],
        val_out: Sequence[str],
        confident_out: np.ndarray | None = None,
        target_misroute: float = 0.08,
    ) -> tuple[ScopeGate, dict]:
        """Fit, then choose on validation the highest threshold at which at most
        ``target_misroute`` of the other-department texts would still be answered confidently
        (``confident_out``: the department model is above its abstain threshold), so that as few
        in-scope complaints as possible are referred."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        pipe = make_pipeline(
            _features(), LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000)
        )
        texts = list(in_scope) + list(out_of_scope)
        pipe.fit(texts, [0] * len(in_scope) + [1] * len(out_of_scope))
        p_in = pipe.predict_proba(list(val_in))[:, 1]
        p_out = pipe.predict_proba(list(val_out))[:, 1] if len(val_out) else np.zeros(0)
        confident = (
            np.ones(len(p_out), bool) if confident_out is None else np.asarray(confident_out, bool)
        )
        threshold = 0.5
        for t in np.round(np.arange(0.95, 0.019, -0.01), 2):
            threshold = float(t)
            if len(p_out) == 0 or ((p_out < t) & confident).mean() <= target_misroute:
                break
        report = {
            "threshold": threshold,
            "target_misroute": target_misroute,
            "validation_out_of_scope_misrouted": (
                float(((p_out < threshold) & confident).mean()) if len(p_out) else None
            ),
            "validation_in_scope_referred": float((p_in >= threshold).mean()),
            "validation_out_of_scope_caught": (
                float((p_out >= threshold).mean()) if len(p_out) else None
            ),
            "n_train_in": len(in_scope),
            "n_train_out": len(out_of_scope),
            "n_val_in": len(val_in),
            "n_val_out": len(val_out),
        }
        return cls(pipe, threshold), report

    def p_other(self, texts: Sequence[str]) -> np.ndarray:
        return self.pipeline.predict_proba(list(texts))[:, 1]

    def save(self, directory: Path) -> None:
        joblib.dump(
            {"pipeline": self.pipeline, "threshold": self.threshold}, directory / SCOPE_FILE
        )

    @classmethod
    def load(cls, directory: Path) -> ScopeGate | None:
        path = directory / SCOPE_FILE
        if not path.is_file():
            return None

        data = load_pickled(path)

        fast_linear(data["pipeline"])
        return cls(data["pipeline"], float(data["threshold"]))
