"""Every documented setting does something (each is read where it matters)."""

import pytest

from medai.settings import Settings, get_settings


def test_home_moves_the_models_and_cache_folders(monkeypatch, tmp_path):
    monkeypatch.delenv("MEDAI_MODELS_DIR", raising=False)
    monkeypatch.delenv("MEDAI_CACHE_DIR", raising=False)
    monkeypatch.setenv("MEDAI_HOME", str(tmp_path / "h"))
    s = Settings()
    assert (
        s.storage.models_dir == tmp_path / "h" / "models"
        and s.storage.cache_dir == tmp_path / "h" / "cache"
    )
    monkeypatch.setenv("MEDAI_CACHE_DIR", str(tmp_path / "c"))
    assert Settings().storage.cache_dir == tmp_path / "c"


def test_models_dir_is_searched_by_the_registry(monkeypatch, tmp_path, tfidf_model_dir):
    import shutil

    from medai.services.model_handles import model_folder

    shutil.copytree(tfidf_model_dir, tmp_path / "models" / "mine")
    monkeypatch.setenv("MEDAI_MODELS_DIR", str(tmp_path / "models"))
    get_settings.cache_clear()
    try:
        assert model_folder("mine", "triage") == tmp_path / "models" / "mine"
    finally:
        get_settings.cache_clear()


def test_triage_min_confidence_setting_is_applied(monkeypatch, tfidf_model_dir):
    from medai.core import model_dir
    from medai.services.triage import triage

    predictor = model_dir.load(tfidf_model_dir)
    text = "Yüzümde sivilce ve akne var"
    assert triage(predictor, text).min_confidence == predictor.min_confidence
    monkeypatch.setenv("MEDAI_TRIAGE_MIN_CONFIDENCE", "1.0")
    get_settings.cache_clear()
    try:
        r = triage(predictor, text)
        assert r.min_confidence == 1.0 and r.abstained
        assert triage(predictor, text, min_confidence=0.1).min_confidence == 0.1
    finally:
        get_settings.cache_clear()


def test_a_wrong_setting_value_is_refused(monkeypatch):
    monkeypatch.setenv("MEDAI_TRIAGE_MIN_CONFIDENCE", "1.5")
    with pytest.raises(ValueError):
        Settings()
