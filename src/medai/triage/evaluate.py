"""Evaluate a triage model: metrics JSON + confusion-matrix and training-curve plots."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medai.core.metrics import classification_report
from medai.core.plots import confusion_matrix_plot, training_curves_plot
from medai.core.text import redact_pii
from medai.triage import departments
from medai.triage.data import LoadReport, load_complaints


def score(predictor, texts: Sequence[str], labels: Sequence[str]) -> tuple[dict, np.ndarray]:
    """Metrics of ``predictor`` on already-loaded texts whose labels it knows, and its
    probabilities."""
    labels_known = predictor.labels
    t0 = time.perf_counter()
    proba = predictor.predict_proba(list(texts)) if texts else np.zeros((0, len(labels_known)))
    elapsed = time.perf_counter() - t0
    pos = {lab: i for i, lab in enumerate(labels_known)}
    y = np.array([pos[lab] for lab in labels], dtype=int)
    report = classification_report(y, proba, labels_known, departments.display_names(labels_known))
    threshold = getattr(predictor, "min_confidence", None)
    if threshold is not None and len(y):
        answered = proba.max(axis=1) >= threshold
        report["abstention"] = {
            "min_confidence": threshold,
            "coverage": float(answered.mean()),
            "accuracy_when_answered": float((proba.argmax(1) == y)[answered].mean())
            if answered.any()
            else None,
        }
    report["texts_per_second_batch"] = len(y) / elapsed if elapsed > 0 and len(y) else None
    return report, proba


def write_errors(
    path: Path,
    texts: Sequence[str],
    labels: Sequence[str],
    proba: np.ndarray,
    classes: Sequence[str],
    limit: int = 500,
) -> Path:
    """The most confident mistakes, for error analysis. Texts are PII-redacted: this file
    leaves the process."""
    pred = proba.argmax(axis=1)
    wrong = [i for i, lab in enumerate(labels) if classes[pred[i]] != lab]
    wrong.sort(key=lambda i: -proba[i, pred[i]])
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text_redacted", "label", "predicted", "confidence"])
        for i in wrong[:limit]:
            w.writerow(
                [redact_pii(texts[i]), labels[i], classes[pred[i]], f"{proba[i, pred[i]]:.4f}"]
            )
    return path


def evaluate_file(
    predictor, data: str | Path, out_dir: Path | None = None, limit: int | None = None
) -> dict:
    """Evaluate on a ``text,label`` file; rows with labels the model does not know are counted."""
    dataset = load_complaints(data, dedup_threshold=None, known_labels=set(predictor.labels))
    texts, labels = dataset.texts, dataset.labels
    if limit is not None and len(texts) > limit:
        rng = np.random.default_rng(0)
        pick = np.sort(rng.choice(len(texts), size=limit, replace=False))
        texts, labels = [texts[i] for i in pick], [labels[i] for i in pick]
    metrics, proba = score(predictor, texts, labels)
    metrics["data"] = _data_summary(dataset.report)
    metrics["model"] = {
        "name": predictor.card.name,
        "model_type": predictor.card.model_type,
        "path": str(predictor.directory) if predictor.directory else None,
    }
    if out_dir is not None:
        write_errors(out_dir / "errors.csv", texts, labels, proba, predictor.labels)
        write_outputs(metrics, out_dir, getattr(predictor.model, "history", []))
    return metrics


def _data_summary(report: LoadReport) -> dict:
    d = report.to_dict()
    return {
        "path": d["path"],
        "rows_read": d["rows_read"],
        "rows_evaluated": d["rows_kept"],
        "skipped": d["skipped"],
        "unknown_labels": d["unknown_labels"],
        "unknown_label_rows": sum(d["unknown_labels"].values()),
    }


def write_outputs(metrics: dict, out_dir: Path, history: Sequence[dict] = ()) -> dict[str, str]:
    """metrics.json, confusion_matrix.png and (when there were epochs) training_curves.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"metrics": str(out_dir / "metrics.json")}
    names = [metrics["per_class"][lab]["name"] for lab in metrics["labels"]]
    files["confusion_matrix"] = str(
        confusion_matrix_plot(
            metrics["confusion_matrix"],
            names,
            out_dir / "confusion_matrix.png",
            title=f"Triage — confusion matrix (n={metrics['n']})",
        )
    )
    epochs = [h for h in history if "epoch" in h]
    if epochs:
        files["training_curves"] = str(
            training_curves_plot(epochs, out_dir / "training_curves.png", title="Triage training")
        )
    metrics["files"] = files
    (out_dir / "metrics.json").write_text(
        json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    return files
