"""The out-of-scope gate: trained with the model, saved in its directory, and followed by the
predictor (referral to the general triage desk) while red flags still win."""

from __future__ import annotations

import csv

import pytest

from medai.core import model_dir
from medai.triage.scope import SCOPE_FILE, ScopeGate
from medai.triage.train import TrainOptions, train

OTHER = [
    "{n} haftalık hamileyim, kasıklarımda hafif çekilme oluyor normal mi",
    "adet gecikmem var, gebelik testi negatif, ne yapmalıyım",
    "çocuğum {n} yaşında, aşı takvimini sormak istiyorum",
    "kalp ritmim bazen hızlanıyor, holter taktırmalı mıyım, tansiyonum {n}",
    "prostat ilacımı {n} yıldır kullanıyorum, idrar sıklığı arttı",
    "dişim {n} gündür sızlıyor, dolgu mu kanal tedavisi mi",
    "kolesterolüm {n} çıktı, hangi ilacı kullanmalıyım",
    "gözümde uçuşan siyah noktalar var, gözlük numaram {n}",
]


@pytest.fixture(scope="module")
def gated_model(tmp_path_factory, complaints_csv):
    other = tmp_path_factory.mktemp("oos") / "other.csv"
    labels = ["Kadın Hastalıkları ve Doğum", "Pediatri", "Kardiyoloji", "Üroloji"]
    with other.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for n in range(12):
            for i, t in enumerate(OTHER):
                w.writerow([t.format(n=n + 2), labels[i % len(labels)]])
    out = tmp_path_factory.mktemp("models") / "gated"
    summary = train(TrainOptions(data=complaints_csv, out=out, out_of_scope=other, name="gated"))
    return out, summary


def test_gate_is_saved_with_its_threshold_and_data(gated_model):
    out, _ = gated_model
    assert (out / SCOPE_FILE).is_file()
    card = model_dir.read_card(out)
    predictor = model_dir.load(out)
    assert predictor.scope is not None
    assert card.thresholds["out_of_scope"] == predictor.scope.threshold
    assert any(d.get("role") == "out_of_scope_gate" for d in card.data)
    assert "--out-of-scope" in card.training_command


def test_other_department_is_not_confidently_misrouted(gated_model):
    predictor = model_dir.load(gated_model[0])
    texts = [
        "çocuğum 9 yaşında, aşı takvimini sormak istiyorum",
        "dişim 3 gündür sızlıyor, dolgu mu kanal tedavisi mi",
    ]
    for r in predictor.predict_many(texts):
        assert r.abstained and r.recommendation.kind == "general_triage"
    skin = predictor.predict("Yüzümde sivilce ve akne var, kaşıntı da var")
    assert not skin.out_of_scope and 0.0 <= skin.out_of_scope_probability < 1.0
    other = predictor.scope.p_other(texts)
    assert min(other) > predictor.scope.p_other(["Yüzümde sivilce ve akne var"])[0]


def test_out_of_scope_referral_says_why(gated_model):
    from dataclasses import replace

    from medai.triage.predict import TriagePredictor

    base = model_dir.load(gated_model[0])
    strict = TriagePredictor(base.model, base.card, scope=replace(base.scope, threshold=0.0))
    r = strict.predict("kulağım çınlıyor")
    assert r.out_of_scope and r.abstained and r.recommendation.kind == "general_triage"
    assert "not about a department this model knows" in r.recommendation.text_en


def test_red_flag_wins_over_out_of_scope(gated_model):
    predictor = model_dir.load(gated_model[0])
    r = predictor.predict("30 haftalık hamileyim, kanamam başladı, karnım çok ağrıyor")
    assert r.urgent and r.recommendation.kind == "emergency"


def test_gate_save_load_round_trip(gated_model, tmp_path):
    gate = ScopeGate.load(gated_model[0])
    gate.save(tmp_path)
    again = ScopeGate.load(tmp_path)
    texts = ["kulağım çınlıyor", "dişim ağrıyor"]
    assert again.threshold == gate.threshold
    assert list(again.p_other(texts)) == list(gate.p_other(texts))


def test_model_without_gate_reports_none(tfidf_model_dir):
    r = model_dir.load(tfidf_model_dir).predict("kulağım çınlıyor")
    assert r.out_of_scope is False and r.out_of_scope_probability is None
