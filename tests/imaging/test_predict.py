"""Predictor invariants under arbitrary input: a clear error or a well-formed suggestion."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medai.core import model_dir
from medai.core.text import TextInputError
from medai.triage.predict import choose_min_confidence


@pytest.fixture(scope="module")
def predictor(tfidf_model_dir):
    return model_dir.load(tfidf_model_dir)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.one_of(
        st.text(max_size=600), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))
    ),
    top_k=st.integers(1, 15),
)
def test_any_text_gives_error_or_valid_result(predictor, text, top_k):
    try:
        r = predictor.predict(text, top_k=top_k)
    except TextInputError as exc:
        assert str(exc)
        return
    probs = [d.probability for d in r.departments]
    assert 1 <= len(probs) <= min(top_k, len(predictor.labels))
    assert probs == sorted(probs, reverse=True) and all(0 <= p <= 1 for p in probs)
    assert r.language in ("tr", "en", "other")
    assert r.abstained == (r.abstain_reason is not None)
    assert (r.abstain_reason == "not_turkish") == (r.language != "tr")
    if r.language == "tr" and not r.out_of_scope:
        assert r.abstained == (probs[0] < r.min_confidence)
        assert r.abstain_reason in (None, "low_confidence")
    assert r.urgent == bool(r.red_flags)
    assert r.recommendation.kind == (
        "emergency" if r.urgent else "general_triage" if r.abstained else "department"
    )
    assert r.status == "ai_suggestion"


def test_red_flag_wins_even_when_the_model_is_sure(predictor):
    r = predictor.predict(
        "Kulak ağrısı, kulak çınlaması, işitme kaybı ve intihar düşüncesi", min_confidence=0.0
    )
    assert r.departments[0].id == "ent" and not r.abstained
    assert r.urgent and r.recommendation.kind == "emergency"


def _synthetic(n=500, seed=0):
    """Half confidently right (0.95), half unsure (top 0.34-0.8) and right a third of the time."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    proba = np.zeros((n, 3))
    for i in range(n):
        top = 0.95 if i < n // 2 else rng.uniform(0.34, 0.8)
        guess = y[i] if i < n // 2 or rng.random() < 1 / 3 else (y[i] + 1) % 3
        proba[i] = (1 - top) / 2
        proba[i, guess] = top
    return proba, y


def test_choose_min_confidence_reaches_target():
    proba, y = _synthetic()
    out = choose_min_confidence(proba, y, target_accuracy=0.9)
    answered = proba.max(1) >= out["min_confidence"]
    assert (proba.argmax(1) == y)[answered].mean() >= 0.9
    assert out["coverage"] == pytest.approx(answered.mean())
    # the smallest such threshold: one step lower misses the target
    lower = proba.max(1) >= out["min_confidence"] - 0.01
    assert (proba.argmax(1) == y)[lower].mean() < 0.9


def test_choose_min_confidence_unreachable_target_uses_ceiling():
    proba, y = _synthetic()
    out = choose_min_confidence(proba, y, target_accuracy=1.01, ceiling=0.9)
    assert out["min_confidence"] == 0.9


@pytest.mark.parametrize(
    "text,language",
    [
        ("I have had an earache since yesterday", "en"),
        ("Ich habe seit gestern Ohrenschmerzen", "other"),
    ],
)
def test_a_complaint_not_in_turkish_abstains_from_a_department(predictor, text, language):
    """The department model reads only Turkish: whatever its top probability, no department."""
    r = predictor.predict(text, min_confidence=0.0)
    assert r.language == language and r.abstained and r.abstain_reason == "not_turkish"
    assert not r.urgent and r.recommendation.kind == "general_triage"
    assert r.to_dict()["abstain_reason"] == "not_turkish"


def test_a_turkish_complaint_names_its_language_and_no_abstain_reason(predictor):
    r = predictor.predict("kulağım ağrıyor ve çınlıyor", min_confidence=0.0)
    assert r.language == "tr" and not r.abstained and r.abstain_reason is None
    low = predictor.predict("kulağım ağrıyor ve çınlıyor", min_confidence=1.0)
    assert low.abstained and low.abstain_reason == "low_confidence"


def test_an_english_emergency_still_calls_for_the_emergency(predictor):
    r = predictor.predict("my wife collapsed and we cannot wake her up, she is not breathing")
    assert r.language == "en" and r.abstain_reason == "not_turkish"
    assert r.urgent and r.recommendation.kind == "emergency"
