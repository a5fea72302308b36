"""The bundled default triage model: present, small, documented, and sensible."""

import json

import pytest

from helpers.paths import SHARED_DATA
from medai.core import model_dir
from medai.core.model_dir import bundled_models_dir

DEFAULT = bundled_models_dir() / "triage-default"


def test_bundled_model_card_is_complete():
    card = json.loads((DEFAULT / "model_card.json").read_text(encoding="utf-8"))
    for key in (
        "task",
        "model_type",
        "labels",
        "thresholds",
        "training_command",
        "data",
        "metrics",
        "created_at",
        "medai_version",
        "licence_notes",
    ):
        assert card[key], key
    assert card["task"] == "triage" and "min_confidence" in card["thresholds"]
    assert len(card["data"][0]["sha256"]) == 64
    assert card["metrics"]["macro_f1"] > 0.85


def test_bundled_artifacts_are_under_the_size_limit():
    for f in DEFAULT.rglob("*"):
        if f.is_file():
            assert f.stat().st_size <= 25 * 1024 * 1024, f


def test_default_model_predicts_sensibly():
    predictor = model_dir.load(model_dir.resolve_model(None, "triage"))
    cases = {
        "İki haftadır kulağımda çınlama var ve işitmem azaldı, burnum da tıkalı": "ent",
        "Yüzümde kaşıntılı kırmızı lekeler ve sivilceler çıktı, krem kullandım geçmedi": "dermatology",
        "Bel fıtığım var, fizik tedavi almam gerekiyor mu, bacağıma vuruyor": "physical_medicine_rehabilitation",
        "Sık sık migren ataklarım oluyor ve ellerimde uyuşma, karıncalanma var": "neurology",
    }
    for text, expected in cases.items():
        assert predictor.predict(text).departments[0].id == expected, text


def test_extended_model_covers_more_departments():
    extended = bundled_models_dir() / "triage-extended"
    card = json.loads((extended / "model_card.json").read_text(encoding="utf-8"))
    assert len(card["labels"]) == 13
    assert card["data"][1]["role"] == "train_only_weak"
    predictor = model_dir.load(extended)
    result = predictor.predict(
        "Adetim 10 gün gecikti ve kasıklarımda ağrı var, hamile olabilir miyim?"
    )
    assert result.departments[0].id == "obstetrics_gynecology"
    assert any("13 of 15" in w for w in result.warnings)


@pytest.mark.shared_data
def test_default_model_quality_is_recomputed_on_real_complaints(tmp_path):
    """Not the card's number: macro-F1 computed here on a sample of the real complaints (the
    sample overlaps the training data, so this catches a broken artifact, not overfitting)."""

    data = SHARED_DATA / "triage" / "complaints.csv"
    if not data.is_file():
        pytest.skip(f"{data} not present (../shared/data is optional)")
    from medai.triage.evaluate import evaluate_file

    predictor = model_dir.load(model_dir.resolve_model(None, "triage"))
    metrics = evaluate_file(predictor, data, out_dir=None, limit=600)
    assert metrics["n"] == 600 and metrics["macro_f1"] > 0.85, metrics["macro_f1"]
