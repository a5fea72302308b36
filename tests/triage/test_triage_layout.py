"""The weight layouts chosen for speed (issue 27) change no answer: the department model, the
scope gate and the red-flag classifier give bit-identical probabilities with the fast layout
and with scikit-learn's / the file's own, on written development and blind complaints."""

from __future__ import annotations

import json

import numpy as np

from helpers.paths import TESTS

FIXTURE = TESTS / "data" / "red_flag_texts.jsonl"  # from development sets


def _texts() -> list[str]:
    return [
        json.loads(line)["text"]
        for line in FIXTURE.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def test_fast_layouts_give_the_same_probabilities():
    from medai.core import model_dir
    from medai.triage.red_flags.classifier import features
    from medai.triage.red_flags.engine import build_engine
    from medai.triage.red_flags.rules import quiet_tokens, token_times
    from medai.triage.red_flags.tokens import tokenize

    texts = _texts()
    predictor = model_dir.load(model_dir.resolve_model(None, "triage"))
    svm = predictor.model.svm
    assert svm.coef_.flags.f_contiguous  # laid out at load
    fast = predictor.model.predict_proba(texts)
    svm.coef_ = np.ascontiguousarray(svm.coef_)  # scikit-learn's own layout
    assert np.array_equal(predictor.model.predict_proba(texts), fast)
    if predictor.scope is not None:
        fast_scope = predictor.scope.p_other(texts)
        logistic = predictor.scope.pipeline.steps[-1][1]
        logistic.coef_ = np.ascontiguousarray(logistic.coef_)
        assert np.array_equal(predictor.scope.p_other(texts), fast_scope)

    engine = build_engine(embeddings=False)
    clf = engine.classifier
    feats = []
    for t in texts:
        tokens = tokenize(t)
        times = token_times(tokens)
        hits = engine.concepts.find(tokens, times)
        feats.append(features(tokens, times, hits, quiet_tokens(tokens, times)))
    fast_p = clf.probabilities(feats)
    clf._coef_t = clf.coef.T  # the strided view it used before
    assert np.array_equal(clf.probabilities(feats), fast_p)
