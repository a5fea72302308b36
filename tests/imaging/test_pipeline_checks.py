"""What a training run checks before it spends time (a hospital's own folders): an image side
too small for the network is refused by name; a class with too few images to land in the
validation or test split is named, not hidden inside macro figures."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medai.imaging.datasets import patient_split, read_folder
from medai.imaging.networks import MIN_IMAGE_SIZE
from medai.imaging.pipeline import split_groups, unmeasured_labels
from medai.imaging.train import ImagingTrainConfig


def test_an_image_side_below_the_networks_minimum_is_refused_with_it():
    with pytest.raises(ValueError, match=f"at least {MIN_IMAGE_SIZE}"):
        ImagingTrainConfig(task="mri", image_size=MIN_IMAGE_SIZE - 1)
    assert ImagingTrainConfig(task="mri", image_size=MIN_IMAGE_SIZE).image_size == MIN_IMAGE_SIZE


def test_a_class_of_one_image_is_named_as_unmeasured(tmp_path):
    rng = np.random.default_rng(0)
    counts = {"Glioma": 12, "Meningioma": 12, "No tumour": 12, "Pituitary": 1}
    for label, n in counts.items():
        (tmp_path / label).mkdir()
        for i in range(n):
            pixels = rng.integers(0, 255, (40, 40)).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / label / f"{i}.png")
    ds = read_folder(tmp_path, "mri")
    _tr, va, te = patient_split(ds, groups=split_groups(ds))
    gone = unmeasured_labels(ds.labels, ds.subset(va), ds.subset(te))
    assert set(gone) == {"Pituitary"}
    pituitary = gone["Pituitary"]
    assert 0 in (pituitary["validation"], pituitary["test"])
    assert pituitary["validation"] + pituitary["test"] <= 1


def test_an_operating_point_short_of_its_target_is_said_when_it_is_chosen(tmp_path, capsys):
    """A run on a few validation images chose min_confidence 0.0 with ``met: false`` in its
    files, and nothing on screen said that its answers fall short of the target."""
    from medai.core.model_dir import ModelCard
    from medai.imaging.pipeline import _operating_points

    labels = ["Glioma", "Meningioma", "Pituitary", "No_Tumor"]
    rng = np.random.default_rng(3)
    targets = np.eye(4)[rng.integers(0, 4, 12)]
    probs = rng.dirichlet(np.ones(4), 12)  # a model that guesses
    card = ModelCard(task="mri", model_type="x", labels=labels, name="guess")
    _operating_points(tmp_path, "mri", labels, targets, probs, card)
    assert card.params["operating_points"]["met"] is False
    assert "warning: no operating point meets its target" in capsys.readouterr().err


def test_a_training_set_of_unreadable_files_is_refused_before_an_epoch(tmp_path):
    """Sixteen junk PNGs in four class folders trained an epoch on nothing, wrote a 40 MB
    checkpoint and only then failed on an unrelated gate message."""
    from medai.imaging.datasets import DatasetFormatError
    from medai.imaging.pipeline import train_imaging

    for label in ("Glioma", "Meningioma", "Pituitary", "No tumour"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(4):
            (tmp_path / "data" / label / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(i))
    with pytest.raises(DatasetFormatError, match=r"none of the .* training images tried can be"):
        train_imaging("mri", tmp_path / "data", tmp_path / "model", epochs=1, image_size=32)
    assert not (tmp_path / "model").exists()
