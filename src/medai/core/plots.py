"""The plots people expect next to a metrics JSON: confusion matrix, training curves,
precision-recall curves and a reliability diagram."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out: Path, dpi: int = 110) -> Path:
    """Lay out, write (its folder made) and close a figure; returns ``out``."""
    plt = _plt()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def confusion_matrix_plot(
    matrix: Sequence[Sequence[int]],
    names: Sequence[str],
    out: Path,
    title: str = "Confusion matrix",
) -> Path:
    """Row-normalised matrix with counts; DejaVu Sans renders Turkish letters (ğ, ş, İ)."""
    plt = _plt()
    m = np.asarray(matrix, dtype=float)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.9 * len(names) + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), labels=names, rotation=40, ha="right")
    ax.set_yticks(range(len(names)), labels=names)
    ax.set_xlabel("Tahmin / Predicted")
    ax.set_ylabel("Gerçek / True")
    for i in range(len(names)):
        for j in range(len(names)):
            colour = "white" if norm[i, j] > 0.5 else "black"
            ax.text(
                j,
                i,
                f"{int(m[i, j])}\n{norm[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=8,
                color=colour,
            )
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return save_figure(fig, out, dpi=120)


def training_curves_plot(history: Sequence[dict], out: Path, title: str = "Training") -> Path:
    """Per-epoch losses (left) and validation metrics (right) from a list of epoch dicts."""
    plt = _plt()
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for key, style in (("train_loss", "o-"), ("val_loss", "s-")):
        vals = [h.get(key) for h in history]
        if any(v is not None for v in vals):
            ax1.plot(epochs, vals, style, label=key)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    ax1.grid(alpha=0.3)
    plotted = False
    for key in ("val_accuracy", "val_macro_f1", "val_macro_auroc"):
        vals = [h.get(key) for h in history]
        if any(v is not None for v in vals):
            ax2.plot(epochs, vals, "o-", label=key)
            plotted = True
    ax2.set_xlabel("epoch")
    ax2.set_ylim(0, 1)
    if plotted:
        ax2.legend()
    else:
        ax2.set_visible(False)
    ax2.grid(alpha=0.3)
    fig.suptitle(title)
    return save_figure(fig, out)


def pr_curves_plot(
    curves: dict[str, tuple[np.ndarray, np.ndarray, float, float]], out: Path, title: str
) -> Path:
    """One precision-recall curve per label (``label → (recall, precision, average precision,
    prevalence)``), each with its prevalence as a dotted line: the precision of guessing."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 6))
    for label, (recall, precision, ap, prevalence) in curves.items():
        (line,) = ax.plot(
            recall, precision, label=f"{label} (AP {ap:.3f}, prevalence {prevalence:.0%})"
        )
        ax.axhline(prevalence, color=line.get_color(), ls=":", lw=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall (sensitivity)")
    ax.set_ylabel("precision (PPV)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(alpha=0.3)
    return save_figure(fig, out)


def reliability_plot(bins: dict[str, dict], out: Path, title: str) -> Path:
    """A reliability diagram: per label, the fraction of positives against the mean predicted
    probability of each bin (``core.metrics.binary_calibration``), the diagonal being a
    perfectly calibrated model; the label's ECE in its legend."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="calibrated")
    for label, cal in bins.items():
        rows = cal["bins"]
        x = [r["mean_score"] for r in rows]
        y = [r["fraction_positive"] for r in rows]
        total = max(1, sum(r["n"] for r in rows))
        (line,) = ax.plot(x, y, "-", lw=1, alpha=0.7, label=f"{label} (ECE {cal['ece']:.3f})")
        # a bin of two images says little: each point is as large as the share of images in it
        ax.scatter(x, y, s=[12 + 300 * r["n"] / total for r in rows], color=line.get_color())
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("fraction of images with the label")
    ax.set_title(f"{title}\npoint size: the share of images in the bin", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return save_figure(fig, out)
