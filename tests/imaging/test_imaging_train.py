"""Imaging training on tiny generated images: masked loss, backbones, best restore, resume."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.imaging import _pattern_dataset
from medai.imaging.io import ImageInputError
from medai.imaging.networks import ImagingNet, to_tensor
from medai.imaging.train import (
    ImagingTrainConfig,
    load_model,
    masked_bce,
    save_model,
    train_model,
)

pytestmark = pytest.mark.slow


def test_masked_bce_ignores_unannotated_labels():
    logits = torch.tensor([[5.0, -5.0, 100.0]])
    annotated = masked_bce(logits, torch.tensor([[1.0, 0.0, float("nan")]]), torch.ones(3))
    assert annotated[1] == 2 and annotated[0] < 0.02  # the wild third logit costs nothing
    wrong = masked_bce(logits, torch.tensor([[1.0, 0.0, 0.0]]), torch.ones(3))
    assert wrong[0] > 50


@pytest.mark.parametrize("backbone", ["densenet121", "efficientnet-lite0"])
def test_backbones_take_gray_unit_images(backbone):
    net = ImagingNet(backbone, 4, pretrained=False).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 1, 64, 64))
    assert out.shape == (2, 4) and torch.isfinite(out).all()


def test_hf_backbone_from_local_directory(tmp_path):
    from transformers import ConvNextConfig, ConvNextForImageClassification

    cfg = ConvNextConfig(
        num_channels=3, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], num_labels=2
    )
    ConvNextForImageClassification(cfg).save_pretrained(tmp_path / "hf")
    net = ImagingNet(f"hf:{tmp_path / 'hf'}", 4).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 1, 64, 64)).shape == (1, 4)
        logits, feats = net.logits_and_features(torch.rand(2, 1, 64, 64))
    # the gate reads a hidden layer (32 channels here), not the 4 logits
    assert logits.shape == (2, 4) and feats.shape == (2, 32)
    with pytest.raises(ValueError, match="not defined for Hugging Face"):
        net.set_trainable("top")
    assert net.set_trainable("head") > 0


def test_train_restores_best_and_roundtrips(tmp_path):
    ds = _pattern_dataset(tmp_path)
    labels = ds.annotated_labels()
    # COVID-19 is a viral pneumonia (the task's hierarchy), so its images annotate both
    assert set(labels) == {
        "No Finding",
        "COVID-19",
        "Viral_Pneumonia",
        "Bacterial_Pneumonia",
        "Pneumonia",
    }
    cfg = ImagingTrainConfig(
        task="cxr",
        backbone="efficientnet-lite0",
        labels=labels,
        epochs=3,
        batch_size=8,
        learning_rate=1e-3,
        image_size=48,
        patience=5,
    )
    model, history = train_model(cfg, ds, ds, tmp_path / "work")
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    save_model(model, cfg, tmp_path / "model")
    loaded, loaded_cfg = load_model(tmp_path / "model")
    x = torch.stack(
        [
            to_tensor(np.asarray(Image.open(r.path), dtype=np.float32) / 255, 48)
            for r in ds.records[:4]
        ]
    )
    with torch.no_grad():
        assert torch.allclose(model(x), loaded(x), atol=1e-5)
    assert loaded_cfg.labels == labels

    # resume: a second call with more epochs continues after epoch 3
    cfg.epochs = 4
    _, history2 = train_model(cfg, ds, ds, tmp_path / "work", resume=True)
    assert [h["epoch"] for h in history2] == [1, 2, 3, 4]
    assert not math.isnan(history2[-1]["val_loss"])


def test_pipeline_writes_card_metrics_and_plots(tmp_path):
    import json

    from medai.core import model_dir
    from medai.imaging.pipeline import train_imaging

    _pattern_dataset(tmp_path, n_per_class=12)
    out = tmp_path / "cxr-model"
    summary = train_imaging(
        "cxr",
        tmp_path / "manifest.csv",
        out,
        epochs=2,
        batch_size=8,
        learning_rate=1e-3,
        image_size=48,
    )
    card = json.loads((out / "model_card.json").read_text())
    assert card["task"] == "cxr" and set(card["thresholds"]) == set(card["labels"])
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    for key in ("macro_auroc", "accuracy", "macro_f1", "per_label"):
        assert key in metrics
    assert {"auroc", "ci_low", "ci_high", "threshold", "sensitivity", "specificity"} <= set(
        metrics["per_label"]["COVID-19"]
    )
    assert (out / "evaluation" / "roc_curves.png").is_file()
    assert (out / "evaluation" / "training_curves.png").is_file()
    assert summary["test"]["n"] == metrics["n"]
    predictor = model_dir.load(out)
    result = predictor.predict(tmp_path / "1_0.png").model_dump()
    assert result["refused"] is False and len(result["findings"]) == len(card["labels"])
    # a two-epoch model may lead with any decided label, an implied parent ("Pneumonia" of
    # COVID-19) included, or decide nothing; whatever leads is one the decision states
    decision = result["decision"]
    assert result["primary"] == decision["primary"]
    assert result["primary"] is None or result["primary"] in (
        set(decision["positives"]) | {"No Finding"}
    )
    assert {"label", "probability", "threshold", "positive"} <= set(result["findings"][0])
    photo = np.zeros((48, 48, 3), dtype=np.uint8)
    photo[..., 0] = 220
    Image.fromarray(photo).save(tmp_path / "photo.png")
    refused = predictor.predict(tmp_path / "photo.png").model_dump()
    assert refused["refused"] is True and "photograph" in refused["reason"]
    with pytest.raises(ImageInputError, match="not an image"):
        predictor.predict(b"not an image at all" * 10)


def test_linear_probe_then_partial_fine_tune_freezes_the_right_parts(tmp_path):
    ds = _pattern_dataset(tmp_path)
    labels = ds.annotated_labels()
    cfg = ImagingTrainConfig(
        task="cxr",
        backbone="efficientnet-lite0",
        labels=labels,
        epochs=3,
        batch_size=8,
        learning_rate=1e-3,
        image_size=48,
        patience=5,
        augment=False,
        trainable="top",
        probe_epochs=1,
        backbone_lr_scale=0.5,
    )
    start = ImagingNet("efficientnet-lite0", len(labels)).state_dict()
    torch.manual_seed(0)
    best, history = train_model(cfg, ds, ds, tmp_path / "work")
    assert [h["trainable"] for h in history] == ["head", "top", "top"]
    after = best.state_dict()
    stem = "net._conv_stem.weight"
    assert torch.equal(after[stem], start[stem])  # never trained under "top"
    assert torch.equal(after["net._bn0.running_mean"], start["net._bn0.running_mean"])
    top = "net._conv_head.weight"
    best_epoch = min(history, key=lambda h: h["val_loss"])["epoch"]
    assert (best_epoch == 1) == torch.equal(after[top], start[top])


def test_set_trainable_rejects_unknown_parts():
    net = ImagingNet("densenet121", 2, pretrained=False)
    assert 0 < net.set_trainable("head") < net.set_trainable("top") < net.set_trainable("all")
    with pytest.raises(ValueError, match="trainable"):
        net.set_trainable("everything")


def test_two_process_training_on_cpu(tmp_path):
    """The Accelerate path with two CPU processes (gloo), through the CLI's torchrun relaunch,
    with a frozen-then-unfrozen recipe (DDP must accept parameters without gradients)."""
    import json
    import os
    import subprocess
    import sys

    _pattern_dataset(tmp_path, n_per_class=12)
    out = tmp_path / "ddp-model"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("MEDAI_DISTRIBUTED_CHILD", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "medai.cli",
            "imaging",
            "train",
            "--task",
            "cxr",
            "--data",
            str(tmp_path / "manifest.csv"),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--image-size",
            "48",
            "--probe-epochs",
            "1",
            "--learning-rate",
            "0.001",
            "--trainable",
            "top",
            "--num-processes",
            "2",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1  # only the main process reports
    history = summaries[0]["history"]
    assert [h["trainable"] for h in history] == ["head", "top"]
    # the cosine is half-way after one epoch of two, with two processes as with one (it was
    # at 0 there: Accelerate steps the schedule once per process)
    assert 0.35 < history[0]["lr"] / 0.001 < 0.65, history[0]["lr"]
    assert (out / "model.safetensors").is_file() and (out / "model_card.json").is_file()


def test_one_seed_gives_identical_weights(tmp_path):
    """Every random source a run uses (Python, NumPy, torch, MONAI augmentation, the shuffle)
    follows the seed: two runs agree bit for bit, another seed differs."""
    ds = _pattern_dataset(tmp_path, n_per_class=4)
    labels = ds.annotated_labels()

    def run(seed: int, name: str) -> dict:
        cfg = ImagingTrainConfig(
            task="cxr",
            backbone="efficientnet-lite0",
            labels=labels,
            epochs=2,
            batch_size=4,
            learning_rate=1e-3,
            image_size=32,
            patience=5,
            seed=seed,
            augment=True,
        )
        model, _ = train_model(cfg, ds, ds, tmp_path / name)
        return model.state_dict()

    a, b, c = run(7, "a"), run(7, "b"), run(8, "c")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())
