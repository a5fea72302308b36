import numpy as np

from medai.core.calibration import TemperatureScaler, softmax


def test_temperature_fixes_overconfidence_and_keeps_argmax():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=2000)
    scores = rng.normal(size=(2000, 3))
    scores[np.arange(2000), y] += 1.0
    scores *= 8  # wildly overconfident raw margins
    scaler = TemperatureScaler().fit(scores, y)
    assert scaler.temperature > 2
    p = scaler.predict_proba(scores)
    assert (p.argmax(1) == scores.argmax(1)).all()
    conf, acc = p.max(1).mean(), (p.argmax(1) == y).mean()
    assert abs(conf - acc) < 0.05
    raw = softmax(scores)
    assert abs(raw.max(1).mean() - acc) > 0.1


def test_validation_split_missing_a_class_is_fine():
    scores = np.array([[2.0, 0.0, -1.0], [0.0, 2.0, -1.0], [1.5, 0.2, -2.0]])
    scaler = TemperatureScaler().fit(scores, np.array([0, 1, 0]))  # class 2 absent
    assert np.allclose(scaler.predict_proba(scores).sum(1), 1)
