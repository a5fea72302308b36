"""Training for the platform's retraining job: the imaging trainer behind one call, so the
lifecycle (platform) never imports a job package itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def train_imaging_model(task: str, manifest: Path, out: Path, **options: Any) -> dict:
    """``medai imaging train`` on a manifest; returns its summary (model_dir, metrics)."""
    from medai.imaging.pipeline import train_imaging

    return train_imaging(task, manifest, out, **options)
