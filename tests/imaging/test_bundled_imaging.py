"""Bundled imaging defaults: present, small, documented, and refusing what they should."""

import json

import numpy as np
import pytest
from PIL import Image

from helpers.paths import SHARED_DATA
from medai.core import model_dir
from medai.core.model_dir import bundled_models_dir

TASKS = [t for t in ("cxr", "mri") if (bundled_models_dir() / f"{t}-default").is_dir()]


@pytest.mark.parametrize("task", TASKS)
def test_bundled_imaging_model(task, tmp_path):
    directory = bundled_models_dir() / f"{task}-default"
    card = json.loads((directory / "model_card.json").read_text())
    assert card["task"] == task and set(card["thresholds"]) == set(card["labels"])
    assert card["metrics"]["macro_auroc"] > 0.85
    for f in directory.rglob("*"):
        if "checkpoints" not in f.parts:  # resumable training state, never committed
            assert f.stat().st_size <= 25 * 1024 * 1024, f
    predictor = model_dir.load(model_dir.resolve_model(None, task))
    gray = (np.tile(np.linspace(0, 255, 256), (256, 1))).astype(np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    # a synthetic gradient is no radiograph or MRI slice: the learned gate refuses it (real
    # images of the right kind are accepted: see the card's held-out test acceptance)
    assert predictor.gate is not None
    assert card["params"]["gate"]["test_acceptance"] >= 0.95
    result = predictor.predict(tmp_path / "g.png").model_dump()
    assert result["refused"] is True and "does not look like" in result["reason"]
    photo = np.zeros((256, 256, 3), dtype=np.uint8)
    photo[..., 1] = 200
    Image.fromarray(photo).save(tmp_path / "photo.jpg")
    assert predictor.predict(tmp_path / "photo.jpg").model_dump()["refused"] is True


SHARED = SHARED_DATA
MANIFESTS = {
    "cxr": SHARED / "chest_xray" / "manifest.csv",
    "mri": SHARED / "brain_mri" / "manifest.csv",
}


@pytest.mark.shared_data
@pytest.mark.parametrize("task", TASKS)
def test_bundled_imaging_model_accepts_and_separates_real_images(task, tmp_path):
    """Recomputed, not copied from the card: on a random sample of the real images the gate
    accepts nearly all and the findings separate the classes (a gate that refuses everything,
    or a model that answers the same for every image, fails here)."""
    if not MANIFESTS[task].is_file():
        pytest.skip(f"{MANIFESTS[task]} not present (../shared/data is optional)")
    from medai.imaging.datasets import load_dataset
    from medai.imaging.evaluate import evaluate_arrays
    from medai.imaging.io import load_image

    ds = load_dataset(MANIFESTS[task], task)
    rng = np.random.default_rng(0)
    idx = rng.choice(len(ds.records), size=min(120, len(ds.records)), replace=False)
    predictor = model_dir.load(model_dir.resolve_model(None, task))
    images = [load_image(ds.records[i].path) for i in idx]
    results = [predictor.predict(img) for img in images]
    accepted = np.mean([not r.refused for r in results])
    assert accepted >= 0.9, accepted
    probs, _ = predictor.proba_and_features([img.pixels for img in images])
    cols = [ds.labels.index(lab) for lab in predictor.labels]
    targets = ds.targets()[idx][:, cols]
    metrics = evaluate_arrays(
        task, predictor.labels, targets, probs, predictor.thresholds, n_boot=0
    )
    assert metrics["macro_auroc"] > 0.8, metrics["macro_auroc"]
