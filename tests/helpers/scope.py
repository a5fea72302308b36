"""Films drawn to look like a frontal or a lateral chest radiograph, and a tiny chest model with a
scope fitted on them (gate, view check, out-of-scope threshold): what the scope tests, the
browser test and the PDF/FHIR tests read, built here, never from the shared data."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
from PIL import Image


def _ellipse(shape, cy, cx, ry, rx) -> np.ndarray:
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def frontal_film(seed: int, size: int = 128) -> np.ndarray:
    """Two dark lung fields either side of a bright spine and heart: a PA film's layout."""
    rng = np.random.default_rng(seed)
    s = size
    img = np.full((s, s), 0.55) + rng.normal(0, 0.03, (s, s))
    j = rng.uniform(-0.04, 0.04, 4) * s
    img[_ellipse((s, s), 0.45 * s + j[0], 0.30 * s + j[1], 0.30 * s, 0.15 * s)] = 0.18
    img[_ellipse((s, s), 0.45 * s + j[0], 0.70 * s - j[1], 0.30 * s, 0.15 * s)] = 0.18
    img[:, int(0.47 * s) : int(0.53 * s)] = 0.85  # spine
    img[_ellipse((s, s), 0.62 * s + j[2], 0.56 * s, 0.14 * s, 0.12 * s)] = 0.75  # heart
    img[int(0.82 * s) :, :] = 0.7  # diaphragm and abdomen
    return np.clip(img + rng.normal(0, 0.02, (s, s)), 0, 1)


def lateral_film(seed: int, size: int = 128) -> np.ndarray:
    """One lung field over the heart, the spine a band at the back: a lateral film's layout."""
    rng = np.random.default_rng(10_000 + seed)
    s = size
    img = np.full((s, s), 0.6) + rng.normal(0, 0.03, (s, s))
    j = rng.uniform(-0.04, 0.04, 3) * s
    img[_ellipse((s, s), 0.45 * s + j[0], 0.50 * s + j[1], 0.33 * s, 0.30 * s)] = 0.22
    img[:, int(0.78 * s + j[2]) : int(0.90 * s + j[2])] = 0.9  # spine at the back
    img[:, : int(0.08 * s)] = 0.8  # sternum and anterior soft tissue
    img[_ellipse((s, s), 0.66 * s, 0.38 * s, 0.16 * s, 0.18 * s)] = 0.7  # heart, anterior
    img[int(0.78 * s) :, :] = 0.72  # diaphragm dome
    if rng.random() < 0.5:  # a lateral may face either way
        img = img[:, ::-1]
    return np.clip(img + rng.normal(0, 0.02, (s, s)), 0, 1)


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def scoped_model(tiny_dir: Path, out: Path, flag_all: bool = False) -> Path:
    """A copy of a tiny chest model with its scope fitted on drawn films: a gate (fitted on
    both kinds, so neither is refused by it), a view check (frontal vs lateral drawings) and an
    out-of-scope threshold (``flag_all``: every film is flagged unlike training; else none
    is), sealed again."""
    from medai.core import model_dir
    from medai.imaging.gate import FeatureGate
    from medai.imaging.scope import OutOfScopeDetector
    from medai.imaging.views import ViewChecker

    shutil.copytree(tiny_dir, out)
    predictor = model_dir.load(out, runtime="torch")
    frontal = [frontal_film(i) for i in range(24)]
    lateral = [lateral_film(i) for i in range(24)]
    f_front = predictor.proba_and_features(frontal)[1]
    f_lat = predictor.proba_and_features(lateral)[1]
    ViewChecker.fit(f_front, f_lat, c=1.0).save(out)
    feats = np.concatenate([f_front, f_lat])
    FeatureGate.fit(feats[::2], feats[1::2], margin=50.0).save(out)
    OutOfScopeDetector(0.0 if flag_all else 1e9, chosen_on={"split": "test drawings"}).save(out)
    from medai.core.model_dir import read_card, save_card
    from medai.imaging.scope import limits

    card = read_card(out)
    detects, cannot = limits("cxr", predictor.labels)
    card.params["scope"] = {  # as `medai imaging fit-scope` records it
        "command": "medai imaging fit-scope --task cxr --data drawings.csv",
        "out_of_scope": {
            "detector": "feature_distance",
            "threshold": 0.0 if flag_all else 1e9,
            "quantile": 0.99,
            "split": "validation",
            "n": 24,
            "flagged_share": 0.0,
        },
        "view_check": {
            "cross_validated": {
                "laterals": 24,
                "laterals_caught": 24,
                "frontals": 24,
                "frontals_flagged": 0,
            }
        },
        "detects": detects,
        "cannot_detect": cannot,
    }
    save_card(out, card)
    return out
