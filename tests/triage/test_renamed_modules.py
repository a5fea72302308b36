"""Model files pickled before a module was renamed still load (a hospital's trained triage
models hold ``lower_for_features`` by its old path), and the old path stays unimportable."""

from __future__ import annotations

import importlib
import pickle

import joblib
import pytest

from medai.triage.classifiers import tfidf
from medai.triage.classifiers.base import RENAMED_MODULES, load_pickled


def test_a_pickle_naming_the_old_module_loads(tmp_path):
    old, new = "medai.triage.models.tfidf", "medai.triage.classifiers.tfidf"
    # protocol 2 names a global as text ("c<module>\\n<name>\\n"): the old path, written
    # as the release before the rename wrote it
    raw = pickle.dumps({"pre": tfidf.lower_for_features}, protocol=2)
    assert new.encode() in raw
    path = tmp_path / "old.joblib"
    path.write_bytes(raw.replace(new.encode(), old.encode()))
    with pytest.raises(ModuleNotFoundError):
        joblib.load(path)
    state = load_pickled(path)
    assert state["pre"] is tfidf.lower_for_features
    with pytest.raises(ModuleNotFoundError):  # nothing else can import the old path
        importlib.import_module(old)
    assert old in RENAMED_MODULES


def test_the_bundled_triage_model_pickled_before_the_rename_loads():
    from medai.core import model_dir

    predictor = model_dir.load(model_dir.bundled_models_dir() / "triage-default")
    assert predictor.predict("Göğsümde baskı tarzında ağrı var").departments
