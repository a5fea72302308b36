"""The imaging CLI end to end on a tiny model: train, evaluate, predict, explain, ONNX."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from helpers.imaging import _pattern_dataset
from medai.cli import app

pytestmark = pytest.mark.slow
runner = CliRunner()


def run_json(*args, code=0):
    """The command's JSON; ``code=None`` accepts any exit code (a refusal exits 3)."""
    result = runner.invoke(app, [*args, "--json"])
    assert code is None or result.exit_code == code, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("img")
    _pattern_dataset(root, n_per_class=12)
    out = root / "model"
    run_json(
        "imaging",
        "train",
        "--task",
        "cxr",
        "--data",
        str(root / "manifest.csv"),
        "--out",
        str(out),
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--learning-rate",
        "1e-3",
        "--image-size",
        "48",
    )
    return root, out


def test_evaluate_json(tiny, tmp_path):
    root, model = tiny
    with (root / "manifest.csv").open("a") as fh:
        fh.write("0_0.png,Alien finding,px\n")
    m = run_json(
        "imaging",
        "evaluate",
        "--task",
        "cxr",
        "--data",
        str(root / "manifest.csv"),
        "--model",
        str(model),
        "--out",
        str(tmp_path / "ev"),
    )
    for key in ("macro_auroc", "accuracy", "macro_f1", "per_label"):
        assert key in m
    assert {"auroc", "threshold"} <= set(m["per_label"]["COVID-19"])
    assert m["data"]["unknown_labels"] == {"Alien finding": 1}
    assert (tmp_path / "ev" / "roc_curves.png").is_file()
    # the plots an ML engineer expects beside ROC, and their figures in the JSON
    for plot in ("pr_curves.png", "calibration.png"):
        assert (tmp_path / "ev" / plot).stat().st_size > 1000
    covid = m["per_label"]["COVID-19"]
    assert 0 <= covid["average_precision"] <= 1 and covid["calibration"]["bins"]
    assert m["macro_average_precision"] is not None and m["macro_ece"] is not None
    # the metrics name the exact model measured, on screen and in metrics.json
    card = json.loads((model / "model_card.json").read_text())
    stored = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["model"]["content_hash"] == stored["model"]["content_hash"]
    assert m["model"]["content_hash"] == card["content_hash"] and m["model"]["name"]


def test_an_image_size_too_small_for_the_network_is_refused_before_any_work(tmp_path):
    """--image-size 16 failed inside the network with a padding error (after the data was
    read and a checkpoints folder made)."""
    result = runner.invoke(
        app,
        [
            "imaging",
            "train",
            "--task",
            "mri",
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "m"),
            "--image-size",
            "16",
        ],
    )
    assert result.exit_code == 2 and "--image-size" in result.output and "32" in result.output
    assert not (tmp_path / "m").exists()


def test_predict_explain_and_onnx_agree(tiny, tmp_path):
    root, model = tiny
    image = root / "1_3.png"
    eager = run_json("imaging", "predict", str(image), "--task", "cxr", "--model", str(model))
    assert eager["refused"] is False and eager["status"] == "ai_suggestion"
    exported = run_json("imaging", "export", "--task", "cxr", "--model", str(model))
    assert exported["max_abs_logit_diff"] < 1e-3
    onnx = run_json(
        "imaging", "predict", str(image), "--task", "cxr", "--model", str(model), "--onnx"
    )
    for a, b in zip(eager["findings"], onnx["findings"], strict=True):
        assert a["label"] == b["label"] and abs(a["probability"] - b["probability"]) < 1e-4
        assert a["positive"] == b["positive"]
    out = tmp_path / "cam.png"
    r = run_json(
        "imaging", "explain", str(image), "--task", "cxr", "--model", str(model), "--out", str(out)
    )
    assert r["label"] in {f["label"] for f in eager["findings"]}
    cam = np.asarray(Image.open(out))
    assert cam.shape[1] == 48 and cam.shape[0] > 48 and cam.ndim == 3  # film, label band under


def test_wrong_task_and_bad_images(tiny, tmp_path):
    root, model = tiny
    r = run_json(
        "imaging", "predict", str(root / "1_3.png"), "--task", "mri", "--model", str(model), code=2
    )
    assert "cxr model" in r["error"]
    text = tmp_path / "notes.png"
    text.write_text("bu bir görüntü değil")
    r = run_json("imaging", "predict", str(text), "--task", "cxr", "--model", str(model), code=2)
    assert "not an image" in r["error"]
    r = run_json(
        "imaging",
        "predict",
        str(tmp_path / "missing.png"),
        "--task",
        "cxr",
        "--model",
        str(model),
        code=2,
    )
    assert "no such file" in r["error"]
    # a folder is a batch (issue 27): its one file is not an image, so no row gets a result
    r = runner.invoke(
        app, ["imaging", "predict", str(tmp_path), "--task", "cxr", "--model", str(model)]
    )
    assert r.exit_code == 1, r.output
    row = json.loads(next(x for x in r.stdout.splitlines() if x.startswith("{")))
    assert row["id"] == "notes.png" and "not an image" in row["error"]
    r = run_json(
        "imaging",
        "explain",
        str(text),
        "--task",
        "cxr",
        "--model",
        str(model),
        "--out",
        str(tmp_path / "x.png"),
        code=2,
    )
    assert "not an image" in r["error"]


def test_server_imaging_endpoints(tiny, tmp_path):
    from helpers.platform import signed_in

    root, model = tiny
    with signed_in(tmp_path / "home", models={"cxr": str(model), "mri": str(tmp_path)}) as (
        _app,
        client,
    ):
        _server_imaging_checks(root, client)


def _server_imaging_checks(root, client):
    png = (root / "2_1.png").read_bytes()
    r = client.post("/api/v1/imaging/cxr/predict", files={"file": ("x.png", png, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["refused"] is False and body["findings"][0]["label"]
    assert body["model"]["content_hash"].startswith("sha256:") and body["schema_version"]
    bad = b"GIF89a-not-really" * 5
    for route in ("predict", "heatmap"):  # one contract for an unusable image
        r = client.post(f"/api/v1/imaging/cxr/{route}", files={"file": ("x.png", bad, "image/png")})
        assert r.status_code == 422 and r.json()["code"] == "unusable_image"
    r = client.post(
        "/api/v1/reports/draft", data={"task": "cxr"}, files={"file": ("x.png", bad, "image/png")}
    )
    assert r.status_code == 422 and r.json()["code"] == "unusable_image"
    heat = client.post(
        "/api/v1/imaging/cxr/heatmap?label=COVID-19", files={"file": ("x.png", png, "image/png")}
    )
    assert heat.status_code == 200 and heat.headers["content-type"] == "image/png"
    assert heat.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert heat.headers["x-medai-label"] == "COVID-19" and heat.headers["x-medai-model-hash"]
    bad_label = client.post(
        "/api/v1/imaging/cxr/heatmap?label=Unicorn", files={"file": ("x.png", png, "image/png")}
    )
    assert bad_label.status_code == 422
    assert (
        client.post(
            "/api/v1/imaging/ct/predict", files={"file": ("x.png", png, "image/png")}
        ).status_code
        == 422
    )
    assert (
        client.post(
            "/api/v1/imaging/mri/predict", files={"file": ("x.png", png, "image/png")}
        ).status_code
        == 503
    )


def test_int8_export_is_gated_on_auroc(tiny, tmp_path):
    import shutil

    root, trained = tiny
    model = tmp_path / "model"
    shutil.copytree(trained, model)
    manifest = str(root / "manifest.csv")
    r = run_json("imaging", "export", "--task", "cxr", "--model", str(model), "--int8", code=2)
    assert "--data" in r["error"]
    r = run_json(
        "imaging",
        "predict",
        str(root / "1_3.png"),
        "--task",
        "cxr",
        "--model",
        str(model),
        "--int8",
        code=2,
    )
    assert "export --int8" in r["error"]
    # an impossible gate (AUROC must *rise* by 1) refuses the int8 model and removes it
    refused = run_json(
        "imaging",
        "export",
        "--task",
        "cxr",
        "--model",
        str(model),
        "--int8",
        "--data",
        manifest,
        "--max-auroc-drop",
        "-1",
    )
    assert refused["int8"]["accepted"] is False and not (model / "model.int8.onnx").exists()
    q = run_json(
        "imaging",
        "export",
        "--task",
        "cxr",
        "--model",
        str(model),
        "--int8",
        "--data",
        manifest,
        "--max-auroc-drop",
        "1",
        "--calibration-images",
        "16",
    )
    # a 2-epoch model on 36 images ranks near chance (AUROC ≈ 0.4–0.6), where how far int8
    # moves it depends on onnxruntime's quantiser, not on medai: the gate is checked on its
    # rule (accepted ⇔ the drop is within the budget; -1 above refuses, 1 here accepts)
    assert q["int8"]["calibration_images"] == 16 and q["int8"]["n"] >= 20
    assert q["int8"]["judged_on"] == "images not used for calibration"
    drop = q["int8"]["macro_auroc_fp32"] - q["int8"]["macro_auroc_int8"]
    assert q["int8"]["accepted"] is (drop <= 1.0) is True
    assert (model / "model.int8.onnx").is_file()
    # the wrong-kind-of-image gate of a 2-epoch model puts some training images near its limit,
    # where int8's slightly different features can cross it (CI saw 3.61 > 3.53 once): compare
    # on the images both runtimes accept (the tiny model's gate refuses many of its own)
    agreed = 0
    for name in ("1_3.png", "0_1.png", "1_5.png", "2_2.png", "0_7.png"):
        fp32 = run_json(
            "imaging",
            "predict",
            str(root / name),
            "--task",
            "cxr",
            "--model",
            str(model),
            "--onnx",
            code=None,
        )
        int8 = run_json(
            "imaging",
            "predict",
            str(root / name),
            "--task",
            "cxr",
            "--model",
            str(model),
            "--int8",
            code=None,
        )
        if fp32["refused"] or int8["refused"]:
            continue
        agreed += 1
        assert len(int8["findings"]) == len(fp32["findings"])
        for a in int8["findings"]:
            b = next(f for f in fp32["findings"] if f["label"] == a["label"])
            assert abs(a["probability"] - b["probability"]) < 0.1
    assert agreed >= 1
