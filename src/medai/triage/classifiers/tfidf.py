"""Word + character n-gram TF-IDF with a class-weighted linear SVM, temperature-calibrated.

The fast CPU default: a few milliseconds per text, no GPU, robust to the misspellings of real
patient text (character n-grams).
Probabilities come from temperature scaling fitted on the validation split, so the abstain
threshold means what it says.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from medai.core.calibration import TemperatureScaler, as_class_scores
from medai.core.text import turkish_lower
from medai.triage.classifiers.base import fast_linear, label_index, load_pickled, sorted_classes

WEIGHTS_FILE = "tfidf.joblib"


def lower_for_features(text: str) -> str:
    """Turkish-aware lowercase. Folding diacritics away cost ~0.01 macro-F1 on the shared
    complaints (docs/benchmarks.md), so they are kept; character n-grams absorb misspellings."""
    return turkish_lower(text)


def build_features(
    word_ngrams: tuple[int, int] = (1, 2),
    char_ngrams: tuple[int, int] = (2, 5),
    min_df: int = 2,
    max_features: int | None = 400_000,
):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    common = dict(
        sublinear_tf=True,
        lowercase=False,
        preprocessor=lower_for_features,
        min_df=min_df,
        dtype=np.float32,
    )
    return FeatureUnion(
        [
            ("word", TfidfVectorizer(ngram_range=word_ngrams, max_features=max_features, **common)),
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=char_ngrams, max_features=max_features, **common
                ),
            ),
        ]
    )


class TfidfClassifier:
    model_type = "tfidf"

    def __init__(
        self,
        c: float = 0.3,
        min_df: int = 2,
        char_ngrams: tuple[int, int] = (2, 5),
        max_features: int | None = 400_000,
    ):
        self.params: dict[str, Any] = {
            "c": c,
            "min_df": min_df,
            "char_ngrams": list(char_ngrams),
            "max_features": max_features,
        }
        self.labels: list[str] = []
        self.history: list[dict] = []
        # sklearn (untyped) FeatureUnion and LinearSVC, None until fitted or loaded
        self.features: Any = None
        self.svm: Any = None
        self.calibrator: TemperatureScaler | None = None

    def fit(
        self,
        train_texts: Sequence[str],
        train_labels: Sequence[str],
        val_texts: Sequence[str],
        val_labels: Sequence[str],
    ) -> None:
        from sklearn.svm import LinearSVC

        self.labels = sorted_classes(train_labels)
        y_train = label_index(train_labels, self.labels)
        self.features = build_features(
            char_ngrams=tuple(self.params["char_ngrams"]),
            min_df=self.params["min_df"],
            max_features=self.params["max_features"],
        )
        x_train = self.features.fit_transform(list(train_texts))
        self.svm = LinearSVC(C=self.params["c"], class_weight="balanced").fit(x_train, y_train)
        keep = [i for i, lab in enumerate(val_labels) if lab in set(self.labels)]
        x_val = self.features.transform([val_texts[i] for i in keep])
        y_val = label_index([val_labels[i] for i in keep], self.labels)
        self.calibrator = TemperatureScaler().fit(self._scores(x_val), y_val)

    def _scores(self, x) -> np.ndarray:
        return as_class_scores(self.svm.decision_function(x))

    def embed(self, texts: Sequence[str]):
        """The sparse TF-IDF features (used by the combined model)."""
        return self.features.transform(list(texts))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if self.svm is None or self.calibrator is None:
            raise RuntimeError("model is not trained")
        return self.calibrator.predict_proba(self._scores(self.features.transform(list(texts))))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump(
            {
                "features": self.features,
                "svm": self.svm,
                "calibrator": self.calibrator,
                "labels": self.labels,
                "params": self.params,
            },
            directory / WEIGHTS_FILE,
            compress=("xz", 6),
        )

    @classmethod
    def load(cls, directory: Path) -> TfidfClassifier:
        """Loads a joblib pickle: only load model directories you trust (see docs/security)."""
        state = load_pickled(directory / WEIGHTS_FILE)
        model = cls()
        model.features, model.svm = state["features"], state["svm"]
        model.calibrator = state["calibrator"]
        model.labels, model.params = state["labels"], state["params"]
        fast_linear(model.svm)
        return model
