"""Classification metrics shared by every task, as plain JSON-ready dicts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def top_k_accuracy(y_true: np.ndarray, proba: np.ndarray, k: int) -> float:
    if len(y_true) == 0:
        return float("nan")
    k = min(k, proba.shape[1])
    topk = np.argsort(-proba, axis=1)[:, :k]
    return float(np.mean([y in row for y, row in zip(y_true, topk, strict=True)]))


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, bins: int = 15) -> float:
    """ECE of the top-1 probability: how far stated confidence is from observed accuracy."""
    if len(y_true) == 0:
        return float("nan")
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y_true).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


def classification_report(
    y_true: np.ndarray, proba: np.ndarray, labels: Sequence[str],
    display: Sequence[str] | None = None,
) -> dict:
    """Accuracy, macro/weighted F1, per-class P/R/F1/support, top-2/3 accuracy, ECE, confusion.

    ``y_true`` holds indices into ``labels``; ``proba`` is (n, len(labels)).
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    idx = list(range(len(labels)))
    y_pred = proba.argmax(axis=1)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=idx, zero_division=0)
    present = s > 0
    macro_f1 = float(np.mean(f[present])) if present.any() else float("nan")
    weighted_f1 = float(np.average(f, weights=s)) if s.sum() else float("nan")
    names = list(display) if display is not None else list(labels)
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else float("nan"),
        "macro_f1": macro_f1,
        "weighted_f1": weighted_f1,
        "top2_accuracy": top_k_accuracy(y_true, proba, 2),
        "top3_accuracy": top_k_accuracy(y_true, proba, 3),
        "ece": expected_calibration_error(y_true, proba),
        "per_class": {
            lab: {"name": names[i], "precision": float(p[i]), "recall": float(r[i]),
                  "f1": float(f[i]), "support": int(s[i])}
            for i, lab in enumerate(labels)
        },
        "labels": list(labels),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=idx).tolist(),
    }


def latency_summary(seconds: Sequence[float]) -> dict:
    ms = np.asarray(seconds) * 1000.0
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "mean_ms": float(ms.mean()), "n": len(ms)}
