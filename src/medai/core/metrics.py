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
    y_true: np.ndarray,
    proba: np.ndarray,
    labels: Sequence[str],
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
            lab: {
                "name": names[i],
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(s[i]),
            }
            for i, lab in enumerate(labels)
        },
        "labels": list(labels),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=idx).tolist(),
    }


def latency_summary(seconds: Sequence[float]) -> dict:
    ms = np.asarray(seconds) * 1000.0
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "mean_ms": float(ms.mean()),
        "n": len(ms),
    }


def auroc_with_ci(
    y: np.ndarray, score: np.ndarray, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> dict:
    """AUROC and a percentile-bootstrap confidence interval (resampling images)."""
    from sklearn.metrics import roc_auc_score

    y, score = np.asarray(y), np.asarray(score)
    if len(np.unique(y)) < 2:
        return {
            "auroc": None,
            "ci_low": None,
            "ci_high": None,
            "n": len(y),
            "positives": int(y.sum()),
        }
    auc = float(roc_auc_score(y, score))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if len(np.unique(y[idx])) == 2:
            boots.append(roc_auc_score(y[idx], score[idx]))
    low, high = (
        np.percentile(boots, [100 * alpha / 2, 100 * (1 - alpha / 2)]) if boots else (None, None)
    )
    return {
        "auroc": auc,
        "ci_low": float(low) if low is not None else None,
        "ci_high": float(high) if high is not None else None,
        "n": len(y),
        "positives": int(y.sum()),
    }


def binary_calibration(y: np.ndarray, score: np.ndarray, bins: int = 10) -> dict:
    """How well one label's probability says how often it is there: equal-width bins of the
    score, each with its mean score, the fraction of positives and its size (a reliability
    diagram), and their size-weighted gap (the label's ECE; None without images)."""
    y, score = np.asarray(y, dtype=float), np.asarray(score, dtype=float)
    if not len(y):
        return {"ece": None, "bins": []}
    which = np.minimum((score * bins).astype(int), bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            mean, frac = float(score[mask].mean()), float(y[mask].mean())
            rows.append({"mean_score": mean, "fraction_positive": frac, "n": int(mask.sum())})
            ece += mask.mean() * abs(frac - mean)
    return {"ece": float(ece), "bins": rows}


def average_precision(y: np.ndarray, score: np.ndarray) -> float | None:
    """The area under the precision-recall curve (None without a positive and a negative):
    what a rare finding's AUROC flatters."""
    from sklearn.metrics import average_precision_score

    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return None
    return float(average_precision_score(y, score))


def youden_threshold(y: np.ndarray, score: np.ndarray) -> float:
    """The operating threshold maximising sensitivity + specificity − 1 (chosen on validation)."""
    from sklearn.metrics import roc_curve

    if len(np.unique(y)) < 2:
        return 0.5
    fpr, tpr, thr = roc_curve(y, score)
    best = int(np.argmax(tpr - fpr))
    return float(np.clip(thr[best], 0.0, 1.0))


def binary_at_threshold(y: np.ndarray, score: np.ndarray, threshold: float) -> dict:
    y = np.asarray(y).astype(bool)
    pred = np.asarray(score) >= threshold
    tp, fp = int((pred & y).sum()), int((pred & ~y).sum())
    fn, tn = int((~pred & y).sum()), int((~pred & ~y).sum())
    sens = tp / (tp + fn) if tp + fn else None
    spec = tn / (tn + fp) if tn + fp else None
    prec = tp / (tp + fp) if tp + fp else None
    f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else None
    return {
        "threshold": float(threshold),
        "sensitivity": sens,
        "specificity": spec,
        "precision": prec,
        "f1": f1,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }
