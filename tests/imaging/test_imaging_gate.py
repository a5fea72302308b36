"""The learned out-of-distribution gate: fitted on features, refuses images unlike training."""

import numpy as np
import pytest
from PIL import Image

from medai.imaging.gate import FeatureGate


def _features(rng, n, shift=0.0, dim=64):
    return rng.normal(size=(n, dim)) * 0.3 + np.sin(np.linspace(0, 6, dim)) + shift


def test_gate_accepts_in_distribution_and_refuses_shifted(tmp_path):
    rng = np.random.default_rng(0)
    gate = FeatureGate.fit(_features(rng, 200), _features(rng, 60))
    inside = gate.distance(_features(rng, 500)) <= gate.threshold
    assert inside.mean() > 0.97
    shifted = gate.distance(_features(rng, 100, shift=1.0)) <= gate.threshold
    assert shifted.mean() == 0.0
    gate.save(tmp_path)
    again = FeatureGate.load(tmp_path)
    x = _features(rng, 5)
    assert np.allclose(again.distance(x), gate.distance(x)) and again.threshold == gate.threshold
    assert FeatureGate.load(tmp_path / "nowhere") is None
    with pytest.raises(ValueError, match="at least"):
        FeatureGate.fit(_features(rng, 3), _features(rng, 3))


@pytest.mark.slow
def test_trained_model_refuses_another_kind_of_image(tmp_path):
    from helpers.imaging import _pattern_dataset
    from medai.core import model_dir
    from medai.imaging.pipeline import train_imaging

    _pattern_dataset(tmp_path, n_per_class=16)
    out = tmp_path / "model"
    summary = train_imaging(
        "cxr",
        tmp_path / "manifest.csv",
        out,
        epochs=2,
        batch_size=8,
        learning_rate=1e-3,
        image_size=48,
    )
    assert (out / "gate.npz").is_file()
    card = model_dir.read_card(out)
    assert card.params["gate"]["test_acceptance"] >= 0.5
    predictor = model_dir.load(out)
    accepted = [
        predictor.predict(p).model_dump()["refused"] is False
        for p in sorted(tmp_path.glob("[012]_*.png"))
    ]
    assert np.mean(accepted) > 0.9
    # an "MRI-like" slice: a bright ring on black, nothing like the training patterns
    yy, xx = np.mgrid[:48, :48]
    r = np.hypot(yy - 24, xx - 24)
    ring = ((np.abs(r - 15) < 3) * 255).astype(np.uint8)
    Image.fromarray(ring).save(tmp_path / "ring.png")
    result = predictor.predict(tmp_path / "ring.png").model_dump()
    assert result["refused"] is True and "does not look like" in result["reason"]
    assert summary["test"]["n"] > 0
