"""Shared by the tests of several files (moved from platform/lifecycle/test_monitoring.py, platform/lifecycle/test_site_validation.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import select

from helpers.builders import make_imaging_model_dir


def film(seed: int, brighter: float = 0.0) -> bytes:
    """A film-like grey image (a smooth random pattern); ``brighter`` lifts every pixel."""
    rng = np.random.default_rng(seed)
    base = rng.random((13, 11)) * 0.6 + 0.2
    img = Image.fromarray((np.clip(base + brighter, 0, 1) * 255).astype("uint8"))
    img = img.resize((80, 96), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _alerts(p) -> list:
    from medai.platform.records.tables import MonitorAlert

    with p.db.reader() as db:
        return [(a.kind, a.key, a.cleared_at) for a in db.scalars(select(MonitorAlert))]


LABELS = ("Pneumothorax", "Effusion", "No Finding")


def _model(directory: Path, threshold: float, nudge: float = 0.0) -> Path:
    """A tiny CXR model deciding every label positive (threshold 0) or none (1); ``nudge``
    moves one bias a hair, so the files (and the hash) differ while the scores barely do. Its
    card's version is the directory's name (a name and version name one set of files)."""
    from safetensors.torch import load_file, save_file

    from medai.core.model_dir import reseal

    make_imaging_model_dir(directory, labels=LABELS, seed=0)
    if nudge:
        weights = next(directory.glob("*.safetensors"))
        state = load_file(weights)
        key = sorted(k for k in state if k.endswith("bias"))[-1]
        state[key] = state[key] + nudge
        save_file(state, weights)
    card_path = directory / "model_card.json"
    card = json.loads(card_path.read_text())
    # 0: both findings called on every film (the normal class never); 1: nothing called
    card["thresholds"] = {"Pneumothorax": threshold, "Effusion": threshold, "No Finding": 1.0}
    card["version"] = directory.name
    card_path.write_text(json.dumps(card))
    reseal(directory)
    return directory
