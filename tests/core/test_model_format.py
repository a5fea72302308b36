"""One model format: self-contained directories that load and predict the same after a move,
safetensors weights, and a card whose content hash is checked before anything is loaded."""

import json
import shutil

import numpy as np
import pytest

from helpers.builders import gray_png, make_imaging_model_dir
from medai.core import model_dir


def _same_predictions(a_dir, b_dir, image):
    a = model_dir.load(a_dir, runtime="torch").predict(image)
    b = model_dir.load(b_dir, runtime="torch").predict(image)
    assert a.model.content_hash == b.model.content_hash
    for fa, fb in zip(a.findings, b.findings, strict=True):
        assert fa.label == fb.label and abs(fa.probability - fb.probability) < 1e-6


def _no_absolute_paths(directory, original):
    """Nothing a loader reads names a path (the card keeps the training command as typed, for
    provenance only)."""
    for f in directory.rglob("*"):
        if f.is_file() and f.suffix in (".json", ".txt", ".yaml") and f.name != "model_card.json":
            assert str(original) not in f.read_text(errors="ignore"), f


def test_hf_imaging_model_moves_and_predicts_the_same(tmp_path):
    from transformers import ConvNextConfig, ConvNextForImageClassification

    from medai.imaging.networks import ImagingNet
    from medai.imaging.train import ImagingTrainConfig, save_model

    hf = tmp_path / "hf-base"
    ConvNextForImageClassification(
        ConvNextConfig(
            num_channels=3, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], num_labels=2
        )
    ).save_pretrained(hf)
    labels = ["Pneumonia", "No Finding"]
    net = ImagingNet(f"hf:{hf}", len(labels)).eval()
    original = tmp_path / "model"
    save_model(
        net,
        ImagingTrainConfig(task="cxr", backbone=f"hf:{hf}", labels=labels, image_size=64),
        original,
    )
    model_dir.save_card(
        original, model_dir.ModelCard(task="cxr", model_type="hf", labels=labels, name="hf-tiny")
    )
    assert (original / "model.safetensors").is_file() and not (original / "model.pt").exists()
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(original, moved)
    shutil.rmtree(hf)  # the base folder is gone: the copy must not need it
    shutil.rmtree(original)
    image = gray_png(tmp_path / "a.png", 3)
    again = tmp_path / "again"
    shutil.copytree(moved, again)
    _same_predictions(moved, again, image)
    _no_absolute_paths(moved, tmp_path)


def test_retrieval_captioner_with_a_model_embedder_moves(tmp_path):
    from medai.imaging.io import load_image
    from medai.reporting.captioning.captioner import ImageEmbedder, RetrievalCaptioner

    embedder_dir = make_imaging_model_dir(tmp_path / "embedder-model")
    pixels = [load_image(gray_png(tmp_path / f"{i}.png", i)).pixels for i in range(4)]
    cap = RetrievalCaptioner.fit(
        pixels,
        ["a b c", "b c d", "c d e", "d e f"],
        ["1", "2", "3", "4"],
        ImageEmbedder(str(embedder_dir)),
        k=2,
    )
    out = tmp_path / "captioner"
    cap.save(out)
    model_dir.save_card(
        out, model_dir.ModelCard(task="caption", model_type="retrieval", labels=[], name="cap")
    )
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    shutil.rmtree(embedder_dir)
    shutil.rmtree(out)
    result = model_dir.load(moved).predict(tmp_path / "2.png")
    assert result.caption and result.neighbours[0].id == "3"
    _no_absolute_paths(moved, tmp_path)


def test_altered_model_files_are_refused_before_loading(tmp_path, tfidf_model_dir):
    model = tmp_path / "m"
    shutil.copytree(tfidf_model_dir, model)
    card = json.loads((model / "model_card.json").read_text())
    assert card["content_hash"].startswith("sha256:")
    assert model_dir.load(model).identity.content_hash == card["content_hash"]
    pickle = next(model.glob("*.joblib"))
    pickle.write_bytes(pickle.read_bytes() + b"\0")  # could be any code
    with pytest.raises(model_dir.ModelLoadError, match="differ"):
        model_dir.load(model)
    assert model_dir.reseal(model).content_hash != card["content_hash"]  # operator vouches


def test_labels_have_one_source(tmp_path):
    model = make_imaging_model_dir(tmp_path / "m")
    card = json.loads((model / "model_card.json").read_text())
    card["labels"] = list(reversed(card["labels"]))
    (model / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(model_dir.ModelLoadError, match="different labels"):
        model_dir.load(model)


def test_identical_copies_hash_alike(tmp_path):
    a = make_imaging_model_dir(tmp_path / "a")
    b = tmp_path / "deep" / "b"
    shutil.copytree(a, b)
    assert (
        model_dir.identity(a, model_dir.read_card(a)).content_hash
        == model_dir.identity(b, model_dir.read_card(b)).content_hash
    )
    assert np.isfinite(
        model_dir.load(b).predict(gray_png(tmp_path / "x.png", 1)).findings[0].probability
    )
