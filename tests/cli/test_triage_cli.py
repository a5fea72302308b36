"""End-to-end through the real CLI: train → evaluate → predict → models list/show."""

import json

import pytest
from typer.testing import CliRunner

from helpers.builders import make_rows, write_csv
from medai.cli import app

runner = CliRunner()


def run_json(*args: str, code: int = 0) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_train_writes_model_card_and_plots(tmp_path, complaints_csv):
    out = tmp_path / "m"
    summary = run_json("triage", "train", "--data", str(complaints_csv), "--out", str(out))
    card = json.loads((out / "model_card.json").read_text())
    assert card["task"] == "triage" and card["model_type"] == "tfidf"
    assert set(card["labels"]) == {
        "dermatology",
        "ent",
        "neurology",
        "physical_medicine_rehabilitation",
    }
    assert len(card["data"][0]["sha256"]) == 64
    assert "medai triage train" in card["training_command"]
    assert 0.4 <= card["thresholds"]["min_confidence"] <= 0.9
    assert card["metrics"]["macro_f1"] > 0.8 and card["created_at"] and card["medai_version"]
    assert (out / "evaluation" / "confusion_matrix.png").stat().st_size > 1000
    assert summary["test"]["macro_f1"] == card["metrics"]["macro_f1"]


def test_evaluate_json_counts_unknown_labels(tmp_path, tfidf_model_dir):
    rows = make_rows(per_class=10, seed=5) + [
        {"text": "Gözümde bulanıklık var", "label": "Göz"},
        {"text": "Dişim ağrıyor", "label": "Diş"},
    ]
    data = write_csv(tmp_path / "eval.csv", rows)
    m = run_json(
        "triage",
        "evaluate",
        "--data",
        str(data),
        "--model",
        str(tfidf_model_dir),
        "--out",
        str(tmp_path / "ev"),
    )
    for key in (
        "accuracy",
        "macro_f1",
        "weighted_f1",
        "top2_accuracy",
        "top3_accuracy",
        "ece",
        "per_class",
    ):
        assert key in m
    assert m["n"] == 40 and m["accuracy"] > 0.8
    # 'Göz' is a real department the model does not know; 'Diş' is no department at all
    assert m["data"]["unknown_labels"] == {"Göz": 1, "Diş": 1}
    assert m["data"]["unknown_label_rows"] == 2
    assert set(m["per_class"]["ent"]) >= {"precision", "recall", "f1", "support"}
    assert (tmp_path / "ev" / "metrics.json").is_file()
    assert (tmp_path / "ev" / "confusion_matrix.png").is_file()


def test_error_file_is_redacted(tmp_path, tfidf_model_dir):
    rows = [
        {
            "text": "Merhaba Gökhan bey, sivilce ve akne sorunum var, tel 0532 111 22 33",
            "label": "Nöroloji",
        }
    ]  # deliberately mislabelled so it lands in errors.csv
    data = write_csv(tmp_path / "e.csv", rows)
    run_json(
        "triage",
        "evaluate",
        "--data",
        str(data),
        "--model",
        str(tfidf_model_dir),
        "--out",
        str(tmp_path / "ev"),
    )
    errors = (tmp_path / "ev" / "errors.csv").read_text(encoding="utf-8")
    assert "[İSİM] bey" in errors and "[TELEFON]" in errors
    assert "Gökhan" not in errors and "0532" not in errors


def test_predict_json_contract(tfidf_model_dir):
    r = run_json(
        "triage",
        "predict",
        "--model",
        str(tfidf_model_dir),
        "İki haftadır kulak çınlaması ve işitme kaybı var",
    )
    assert r["status"] == "ai_suggestion"
    assert r["departments"][0]["id"] == "ent"
    assert r["departments"][0]["name"] == "Kulak Burun Boğaz"
    assert set(r["departments"][0]) >= {"id", "name", "probability"}
    assert r["urgent"] is False and r["red_flags"] == []
    assert isinstance(r["abstained"], bool)
    probs = [d["probability"] for d in r["departments"]]
    assert probs == sorted(probs, reverse=True) and len(probs) == 3


def test_predict_red_flag_overrides(tfidf_model_dir):
    r = run_json(
        "triage",
        "predict",
        "--model",
        str(tfidf_model_dir),
        "Göğsümde sıkışma ve nefes darlığı var, kolum uyuşuyor",
    )
    assert r["urgent"] is True
    assert r["recommendation"]["kind"] == "emergency"
    flag = {f["id"]: f for f in r["red_flags"]}["acute_coronary"]
    assert flag["level"] == "call_112" == r["urgency_level"] == r["recommendation"]["level"]
    assert flag["advice_tr"] and flag["advice_en"] and flag["name_en"]
    assert "rules" in flag["detectors"] and flag["evidence"]
    assert {e["detector"] for e in flag["evidence"]} <= {"rules", "embedding", "classifier"}
    assert "classifier" in flag["detectors"]  # the bundled classifier agrees, with its score
    assert next(e for e in flag["evidence"] if e["detector"] == "classifier")["score"] > 0.5
    engine = r["red_flag_engine"]
    assert engine["rules_version"] and engine["detectors"] == ["rules", "embedding", "classifier"]
    assert engine["classifier"]["content_hash"].startswith("sha256:")
    assert r["departments"]  # the model's view is still shown, not hidden


def test_predict_abstains_below_threshold(tfidf_model_dir):
    r = run_json(
        "triage",
        "predict",
        "--model",
        str(tfidf_model_dir),
        "--min-confidence",
        "0.99",
        "Merhaba, bir sorum olacaktı",
    )
    assert r["abstained"] is True and r["recommendation"]["kind"] == "general_triage"


@pytest.mark.parametrize("args", [[""], ["   "], ["x" * 1_000_000]])
def test_predict_bad_text_is_a_clear_error(tfidf_model_dir, args):
    r = run_json("triage", "predict", "--model", str(tfidf_model_dir), *args, code=2)
    assert r["error_type"] == "TextInputError"


def test_predict_non_utf8_and_binary_files(tmp_path, tfidf_model_dir):
    latin = tmp_path / "latin.txt"
    latin.write_bytes("kulağım ağrıyor".encode("iso-8859-9"))
    r = run_json("triage", "predict", "--model", str(tfidf_model_dir), "--file", str(latin), code=2)
    assert "UTF-8" in r["error"]
    binary = tmp_path / "bin.txt"
    binary.write_bytes(bytes(range(256)) * 10)
    r = run_json(
        "triage", "predict", "--model", str(tfidf_model_dir), "--file", str(binary), code=2
    )
    assert r["error_type"] == "TextInputError"


def test_evaluate_bad_csv_is_a_clear_error(tmp_path, tfidf_model_dir):
    bad = tmp_path / "bad.csv"
    bad.write_text("metin,etiket\nx,y\n")
    r = run_json("triage", "evaluate", "--data", str(bad), "--model", str(tfidf_model_dir), code=2)
    assert "missing column" in r["error"]


def test_models_list_and_show(tfidf_model_dir):
    listed = run_json("models", "list", "--path", str(tfidf_model_dir.parent))
    names = {m["name"] for m in listed["models"]}
    assert "tiny-tfidf" in names
    card = run_json("models", "show", str(tfidf_model_dir))
    assert card["name"] == "tiny-tfidf" and card["task"] == "triage"


def test_models_show_not_a_model(tmp_path):
    r = run_json("models", "show", str(tmp_path), code=1)
    assert "not a model directory" in r["error"]


def test_train_rejects_unknown_model_type(tmp_path, complaints_csv):
    r = run_json(
        "triage",
        "train",
        "--data",
        str(complaints_csv),
        "--out",
        str(tmp_path / "x"),
        "--model-type",
        "magic",
        code=2,
    )
    assert "unknown model type" in r["error"]


def test_train_single_department_is_refused(tmp_path):
    data = write_csv(tmp_path / "one.csv", [r for r in make_rows(10) if r["label"] == "Nöroloji"])
    r = run_json("triage", "train", "--data", str(data), "--out", str(tmp_path / "x"), code=2)
    assert "at least two departments" in r["error"]


def test_train_with_a_rare_department(tmp_path):
    """A department with 3 rows cannot be on every side of the split; training must cope."""
    rows = make_rows(per_class=30) + [
        {"text": f"Gözümde bulanıklık ve kızarıklık var {i}", "label": "Göz Hastalıkları"}
        for i in range(3)
    ]
    data = write_csv(tmp_path / "rare.csv", rows)
    summary = run_json("triage", "train", "--data", str(data), "--out", str(tmp_path / "m"))
    assert "ophthalmology" in summary["labels"]


def test_extra_train_source_is_training_only(tmp_path, complaints_csv):
    extra = write_csv(
        tmp_path / "weak.csv",
        [
            {
                "text": f"Gözümde bulanıklık ve sulanma var, gözlük numaram arttı {i}",
                "label": "Göz Hastalıkları",
            }
            for i in range(12)
        ],
    )
    out = tmp_path / "m"
    summary = run_json(
        "triage",
        "train",
        "--data",
        str(complaints_csv),
        "--out",
        str(out),
        "--extra-train",
        str(extra),
    )
    assert "ophthalmology" in summary["labels"]
    card = json.loads((out / "model_card.json").read_text())
    assert card["data"][1]["role"] == "train_only_weak" and card["data"][1]["rows_added"] == 12
    assert "--extra-train" in card["training_command"]
    # metrics are on the real test split only: no ophthalmology rows there
    assert card["metrics"]["per_class_f1"]["ophthalmology"] is None
    assert summary["test"]["n"] == summary["split"]["test"]
