"""Imaging evaluation: per-label AUROC with bootstrap CIs, average precision and calibration
(ECE, reliability bins), operating thresholds, F1/sensitivity/specificity at them, accuracy,
per-class precision/recall/F1 of the decision and the confusion matrix over the mutually
exclusive classes, a per-source breakdown, and the ROC, precision-recall, reliability and
confusion-matrix plots."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medai.core.metrics import (
    auroc_with_ci,
    average_precision,
    binary_at_threshold,
    binary_calibration,
    youden_threshold,
)
from medai.core.plots import (
    confusion_matrix_plot,
    pr_curves_plot,
    reliability_plot,
    save_figure,
    training_curves_plot,
)
from medai.imaging.decision import OperatingPolicy, ancestors, decide_array, most_specific
from medai.imaging.labels import space


# Classes of which an image has exactly one: scored by arg-max for accuracy / confusion.
def exclusive_classes(task: str) -> tuple[str, ...]:
    """The task's mutually exclusive classes (from its definition in the task registry)."""

    return space(task).exclusive


def choose_thresholds(
    targets: np.ndarray, probs: np.ndarray, labels: Sequence[str]
) -> dict[str, float]:
    """Per-label Youden-J thresholds on validation, over the images that annotate the label."""
    out = {}
    for j, lab in enumerate(labels):
        mask = ~np.isnan(targets[:, j])
        out[lab] = youden_threshold(targets[mask, j], probs[mask, j]) if mask.any() else 0.5
    return out


def evaluate_arrays(
    task: str,
    labels: Sequence[str],
    targets: np.ndarray,
    probs: np.ndarray,
    thresholds: dict[str, float] | OperatingPolicy,
    sources: Sequence[str | None] | None = None,
    n_boot: int = 1000,
    with_sources: bool = True,
) -> dict:
    per_label = {}
    aurocs, f1s, aps, eces = [], [], [], []
    raw, probs = probs, hierarchical_scores(task, labels, probs)
    for j, lab in enumerate(labels):
        mask = ~np.isnan(targets[:, j])
        y, s = targets[mask, j].astype(int), probs[mask, j]
        roc = auroc_with_ci(y, s, n_boot=n_boot)
        at = binary_at_threshold(y, s, _thresholds(thresholds).get(lab, 0.5))
        ap = average_precision(y, s)
        # calibration of the probability a reader is shown (the model's own, before the
        # hierarchy lifts a parent label)
        calibration = binary_calibration(y, raw[mask, j])
        per_label[lab] = {**roc, **at, "average_precision": ap, "calibration": calibration}
        if roc["auroc"] is not None:
            aurocs.append(roc["auroc"])
        if ap is not None:
            aps.append(ap)
        if calibration["ece"] is not None:
            eces.append(calibration["ece"])
        if at["f1"] is not None and y.sum() > 0:
            f1s.append(at["f1"])
    result: dict[str, Any] = {
        "task": task,
        "n": len(targets),
        "macro_auroc": float(np.mean(aurocs)) if aurocs else None,
        "macro_average_precision": float(np.mean(aps)) if aps else None,
        "macro_ece": float(np.mean(eces)) if eces else None,
        "macro_f1_thresholded": float(np.mean(f1s)) if f1s else None,
        "per_label": per_label,
    }
    result.update(_exclusive_metrics(task, labels, targets, raw, thresholds))
    if result.get("macro_f1") is None:
        result["macro_f1"] = result["macro_f1_thresholded"]
    if with_sources and sources is not None and len(set(sources)) > 1:
        result["per_source"] = {}
        for src in sorted({s or "" for s in sources}):
            idx = np.array([(s or "") == src for s in sources])
            sub = evaluate_arrays(
                task, labels, targets[idx], raw[idx], thresholds, n_boot=200, with_sources=False
            )
            result["per_source"][src] = {
                k: sub.get(k) for k in ("n", "macro_auroc", "accuracy", "macro_f1")
            }
    return result


def hierarchical_scores(task: str, labels: Sequence[str], probs: np.ndarray) -> np.ndarray:
    """A parent label scored as its strongest descendant at least (a COVID-19 pneumonia is a
    viral pneumonia, whatever the viral output says), the scores the decision's closed
    hierarchy implies; labels outside the hierarchy keep their probability."""

    spec = space(task)
    out = np.array(probs, dtype=float, copy=True)
    for j, lab in enumerate(labels):
        for parent in ancestors(spec, lab):
            if parent in labels:
                k = list(labels).index(parent)
                out[:, k] = np.maximum(out[:, k], probs[:, j])
    return out


def _thresholds(thresholds) -> dict[str, float]:
    return getattr(thresholds, "thresholds", thresholds)


def _exclusive_metrics(
    task: str, labels: Sequence[str], targets: np.ndarray, probs: np.ndarray, thresholds
) -> dict:
    """Accuracy over the task's exclusive classes, each image's predicted class being the most
    specific one its *decision* holds (``imaging.decision``); an indeterminate decision (or
    one outside these classes) counts as not answered, and as wrong in ``accuracy``."""
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    spec = space(task)
    classes = [lab for lab in exclusive_classes(task) if lab in labels]
    if len(classes) < 2:
        return {"accuracy": None, "macro_f1": None}
    cols = [list(labels).index(c) for c in classes]
    sub_t = np.nan_to_num(targets[:, cols], nan=0.0)
    for i, row in enumerate(sub_t):  # a COVID-19 image is also a viral pneumonia: keep COVID-19
        keep = set(most_specific(spec, [c for c, v in zip(classes, row, strict=True) if v == 1]))
        sub_t[i] = [1.0 if c in keep else 0.0 for c in classes]
    one = sub_t.sum(axis=1) == 1
    if not one.any():
        return {"accuracy": None, "macro_f1": None}
    y = sub_t[one].argmax(axis=1)
    policy = (
        thresholds
        if isinstance(thresholds, OperatingPolicy)
        else OperatingPolicy(thresholds={lab: float(thresholds.get(lab, 0.5)) for lab in labels})
    )
    picked = []
    for d in decide_array(spec, labels, probs[one], policy):
        held = most_specific(spec, [c for c in d.positives if c in classes])
        picked.append(classes.index(held[0]) if len(held) == 1 else -1)
    pred = np.array(picked)
    answered = pred >= 0
    shown = np.where(answered, pred, len(classes))  # "not answered" is its own column
    # each class as the decision names it (an unanswered image counts against its recall)
    p, r, f, n = precision_recall_fscore_support(
        y, shown, labels=list(range(len(classes))), zero_division=0
    )
    return {
        "accuracy": float((y == pred).mean()),
        "macro_f1": float(f1_score(y, shown, average="macro", labels=sorted(set(y.tolist())))),
        "coverage": float(answered.mean()),
        "answered_accuracy": float((y[answered] == pred[answered]).mean())
        if answered.any()
        else None,
        "exclusive_classes": classes,
        # a class without test images has no recall or F1 (None, as per_label says), and
        # a precision only when the decision gave it
        "per_class": {
            c: {
                "precision": float(p[i]) if n[i] or (shown == i).any() else None,
                "recall": float(r[i]) if n[i] else None,
                "f1": float(f[i]) if n[i] else None,
                "support": int(n[i]),
            }
            for i, c in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(y, shown, labels=range(len(classes))).tolist(),
        "confusion_matrix_axes": "rows: the true class; columns: the class the decision gave "
        "(an image the decision left unanswered is in no column: see coverage)",
    }


def write_plots(
    metrics: dict,
    targets: np.ndarray,
    probs: np.ndarray,
    labels: Sequence[str],
    out_dir: Path,
    history: Sequence[dict] = (),
) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    fig, ax = plt.subplots(figsize=(7, 6))
    scores = hierarchical_scores(metrics["task"], labels, probs)  # as the metrics scored them
    pr, undrawn = {}, []
    for j, lab in enumerate(labels):
        mask = ~np.isnan(targets[:, j])
        y = targets[mask, j]
        if len(np.unique(y)) == 2:
            fpr, tpr, _ = roc_curve(y, scores[mask, j])
            ax.plot(fpr, tpr, label=f"{lab} (AUROC {metrics['per_label'][lab]['auroc']:.3f})")
            precision, recall, _ = precision_recall_curve(y, scores[mask, j])
            ap = metrics["per_label"][lab]["average_precision"]
            pr[lab] = (recall, precision, ap, float(y.mean()))
        else:
            undrawn.append(lab)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel("1 − specificity")
    ax.set_ylabel("sensitivity")
    # a label without positives (or negatives) here has no curve: named, not silently gone
    missing = f"\nno curve (all one class here): {', '.join(undrawn)}" if undrawn else ""
    ax.set_title(f"ROC — {metrics['task']} (n={metrics['n']}){missing}", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    files["roc_curves"] = str(save_figure(fig, out_dir / "roc_curves.png"))
    if pr:
        files["pr_curves"] = str(
            pr_curves_plot(
                pr,
                out_dir / "pr_curves.png",
                f"Precision-recall — {metrics['task']} (n={metrics['n']}){missing}",
            )
        )
    calibrated = {
        lab: m["calibration"]
        for lab, m in metrics["per_label"].items()
        if (m.get("calibration") or {}).get("bins")
    }
    if calibrated:
        files["calibration"] = str(
            reliability_plot(
                calibrated,
                out_dir / "calibration.png",
                f"Reliability — {metrics['task']} (n={metrics['n']})",
            )
        )
    if metrics.get("confusion_matrix"):
        files["confusion_matrix"] = str(
            confusion_matrix_plot(
                metrics["confusion_matrix"],
                metrics["exclusive_classes"],
                out_dir / "confusion_matrix.png",
                title=f"{metrics['task']} — confusion matrix",
            )
        )
    if history:
        files["training_curves"] = str(
            training_curves_plot(
                history, out_dir / "training_curves.png", title=f"{metrics['task']} training"
            )
        )
    return files


def write_metrics(metrics: dict, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2, ensure_ascii=False))
    return path
