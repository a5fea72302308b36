"""Imaging at hospital scale: a 100,000-row manifest indexed in bounded memory without decoding
an image, augmentation that does not depend on the number of DataLoader workers, unreadable
images skipped and counted, streamed evaluation equal to the in-memory one, training end to end
from a streamed manifest with workers, and the GPU throughput benchmark run tiny on CPU."""

from __future__ import annotations

import json
import os
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from helpers.builders import gray_png
from helpers.paths import ROOT
from medai.imaging import datasets
from medai.imaging.datasets import (
    DatasetFormatError,
    ImageDataset,
    ImageRecord,
    read_manifest,
    thumbnail_groups,
)
from medai.imaging.labels import space
from medai.imaging.train import (
    ImagingAdapter,
    ImagingTrainConfig,
    SkipUnreadable,
    StreamedImages,
)

ROWS = 100_000
LABELS = ("No Finding", "Pneumonia", "Effusion", "Cardiomegaly|Effusion")


def _films(folder: Path, n: int, size: tuple[int, int] = (80, 96)) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    return [gray_png(folder / f"{k}.png", seed=k, size=size).name for k in range(n)]


def _manifest(path: Path, names: list[str], rows: int, extra: list[str] = ()) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        fh.write("file,label,patient,src\n")
        for i in range(rows):
            fh.write(
                f"img/{names[i % len(names)]},{LABELS[i % len(LABELS)]},p{i // 2},site{i % 3}\n"
            )
        fh.writelines(extra)
    return path


def _record_objects_bytes(ds: ImageDataset, n: int) -> int:
    """What ``n`` rows cost as ImageRecord objects (the layout before the index): measured on
    n // 10 rows, times 10."""
    sample = n // 10
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    records = [
        ImageRecord(
            Path(f"{ds.records.path(i % len(ds))}"),
            np.array(ds.records.targets[i % len(ds)]),
            f"p{i // 2}",
            f"site{i % 3}",
        )
        for i in range(sample)
    ]
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del records
    return used * (n // sample)


def test_a_100k_row_manifest_is_indexed_in_bounded_memory_without_decoding(tmp_path, monkeypatch):
    names = _films(tmp_path / "img", 5)
    manifest = _manifest(
        tmp_path / "manifest.csv", names, ROWS, ["img/missing.png,No Finding,px,site0\n"]
    )

    def no_decoding(*args, **kwargs):
        raise AssertionError("an image was decoded while indexing")

    import PIL.Image

    import medai.imaging.io

    monkeypatch.setattr(PIL.Image, "open", no_decoding)
    monkeypatch.setattr(medai.imaging.io, "load_image", no_decoding)
    listings = []
    real_scandir = os.scandir
    monkeypatch.setattr(datasets.os, "scandir", lambda p: listings.append(p) or real_scandir(p))
    tracemalloc.start()
    ds = read_manifest(manifest, "cxr")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    monkeypatch.undo()

    assert len(ds) == ROWS and ds.skipped == {"missing_file": 1}
    assert listings == [str(tmp_path / "img")]  # one listing, not 100,000 stat calls
    held = ds.records.nbytes()
    objects = _record_objects_bytes(ds, ROWS)
    print(
        f"\n100,000-row manifest: peak while indexing {peak / 2**20:.1f} MiB, index arrays "
        f"{held / 2**20:.1f} MiB; the same rows as ImageRecord objects "
        f"{objects / 2**20:.1f} MiB"
    )
    assert peak < 40 * 2**20 and peak < objects / 2
    assert held < 16 * 2**20  # mostly the 100,000 × labels float32 targets

    # the API the rest of the code uses, answered from the index
    rec = ds.records[ROWS - 1]
    assert rec.path == tmp_path / "img" / names[(ROWS - 1) % 5]
    assert rec.patient == f"p{(ROWS - 1) // 2}" and rec.source == f"site{(ROWS - 1) % 3}"
    cxr = space("cxr")
    assert rec.targets[cxr.index("Effusion")] == 1 and rec.targets[cxr.index("Cardiomegaly")] == 1
    assert ds.targets().shape == (ROWS, len(cxr.labels))
    report = ds.report()
    assert report["images"] == ROWS and report["sources"] == {
        "site0": 33_334,
        "site1": 33_333,
        "site2": 33_333,
    }
    assert report["positives"]["Effusion"] == ROWS // 2
    part = ds.subset(np.arange(10, ROWS, 1000))
    assert len(part) == 100 and part.records[0].path == ds.records[10].path
    with pytest.raises(ValueError):
        ds.targets()[0, 0] = 5  # shared by subsets: read-only


def test_augmentation_depends_on_seed_epoch_and_index_not_on_workers(tmp_path):
    names = _films(tmp_path / "img", 6, size=(40, 48))
    ds = read_manifest(_manifest(tmp_path / "m.csv", names, 6), "cxr")
    images = StreamedImages(
        ds.records, [0, 1], 32, augment=True, flip=True, seed=5, strength="strong"
    )

    def epoch_batches(epoch: int, workers: int) -> torch.Tensor:
        images.set_epoch(epoch)
        loader = DataLoader(
            images, batch_size=2, num_workers=workers, collate_fn=SkipUnreadable(32, 2)
        )
        return torch.cat([b.x for b in loader])

    alone, two_workers = epoch_batches(3, 0), epoch_batches(3, 2)
    assert torch.equal(alone, two_workers)
    images.set_epoch(3)
    assert torch.equal(images[4][0], alone[4])  # and in any order
    later = epoch_batches(4, 2)
    assert not torch.equal(alone, later)
    plain = StreamedImages(ds.records, [0, 1], 32, augment=False, flip=False)
    assert not torch.equal(alone[0], plain[0][0])


def test_unreadable_images_are_skipped_and_counted(tmp_path):
    names = _films(tmp_path / "img", 3, size=(40, 48))
    (tmp_path / "img" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "img" / "empty.png").write_bytes(b"")
    ds = read_manifest(
        _manifest(
            tmp_path / "m.csv",
            names,
            3,
            ["img/broken.png,No Finding,pb,site0\n", "img/empty.png,Pneumonia,pe,site0\n"],
        ),
        "cxr",
    )
    assert len(ds) == 5  # they exist; whether they decode is the loader's business
    images = StreamedImages(ds.records, [0, 1, 2], 32, augment=True, flip=False)
    batches = list(DataLoader(images, batch_size=4, collate_fn=SkipUnreadable(32, 3)))
    assert [(b.x.shape[0], b.skipped, b.images) for b in batches] == [(3, 1, 3), (2, 1, 0)]
    blank = batches[1]  # nothing readable: a blank stand-in with nothing to learn
    assert torch.isnan(blank.targets).all() and not blank.x.any()

    labels = ["No Finding", "Pneumonia", "Effusion"]
    cfg = ImagingTrainConfig(task="cxr", labels=labels, image_size=32, num_workers=0)
    adapter = ImagingAdapter(cfg, ds, ds)
    model = adapter.build()
    loss, n = adapter.loss(model, blank)
    assert float(loss.detach()) == 0 and float(n) == 0
    assert adapter.batch_samples(batches[0]) == 3 and adapter.batch_samples(blank) == 0
    assert adapter.unreadable == 1


def test_thumbnail_groups_refuse_a_large_patient_free_set(tmp_path):
    paths = [tmp_path / f"{i}.png" for i in range(datasets.THUMBNAIL_GROUP_LIMIT + 1)]
    with pytest.raises(DatasetFormatError, match="patient column") as err:
        thumbnail_groups(paths)  # refused before any file is opened (none exists)
    assert "20,001 images" in str(err.value)


def test_split_groups_refuse_through_the_pipeline(tmp_path, monkeypatch):
    from medai.imaging.pipeline import split_groups

    names = _films(tmp_path / "img", 4, size=(40, 48))
    (tmp_path / "m.csv").write_text(
        "file,label\n" + "".join(f"img/{n},No Finding\n" for n in names)
    )
    ds = read_manifest(tmp_path / "m.csv", "cxr")
    assert len(split_groups(ds)) == 4
    monkeypatch.setattr(datasets, "THUMBNAIL_GROUP_LIMIT", 3)
    with pytest.raises(DatasetFormatError, match="Add a patient column"):
        split_groups(ds)


@pytest.mark.parametrize("backbone", ["densenet121", "efficientnet-lite0"])
def test_backbones_accept_channels_last(backbone):
    from medai.imaging.networks import ImagingNet

    torch.manual_seed(0)
    net = ImagingNet(backbone, 3, pretrained=False).eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        plain = net(x)
        net = net.to(memory_format=torch.channels_last)
        fast = net(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(plain, fast, atol=1e-5)


def test_streamed_scoring_equals_scoring_every_image_at_once(tmp_path, tiny_imaging_dir):
    from medai.core import model_dir
    from medai.imaging.pipeline import predict_streamed, readable, readable_chunks, score

    folder = tmp_path / "img"
    folder.mkdir()
    names = [
        gray_png(folder / f"{k}.png", seed=k, size=(60 + 7 * k, 50 + 5 * k)).name for k in range(7)
    ]
    (folder / "bad.png").write_bytes(b"not an image")
    ds = read_manifest(
        _manifest(tmp_path / "m.csv", names, 7, ["img/bad.png,No Finding,pb,site0\n"]), "cxr"
    )
    predictor = model_dir.load(tiny_imaging_dir, runtime="torch")
    pixels, keep, errors = readable(ds)
    probs, feats = predictor.proba_and_features(pixels)
    chunked = list(readable_chunks(ds, predictor.cfg.image_size, chunk=3))
    assert [len(k) for _, k, _ in chunked] == [3, 3, 1]
    assert {e for _, _, errs in chunked for e in errs} == set(errors) == {str(folder / "bad.png")}
    s_probs, s_feats, s_keep, unreadable = predict_streamed(predictor, ds, workers=2)
    assert s_keep == keep and unreadable == 1
    np.testing.assert_allclose(s_probs, probs, atol=1e-6)
    np.testing.assert_allclose(s_feats, feats, atol=1e-5)
    metrics, _, _ = score(predictor, ds, n_boot=0)
    assert metrics["unreadable_images"] == 1 and metrics["n"] == 7


@pytest.mark.slow
def test_cli_trains_densenet_from_a_streamed_manifest_with_workers(tmp_path):
    """``medai imaging train --backbone densenet121 --workers 2`` end to end; a file that does
    not decode is skipped and counted, in training or in the test split."""
    from typer.testing import CliRunner

    from medai.cli import app

    rng = np.random.default_rng(0)
    from PIL import Image

    (tmp_path / "img").mkdir()
    rows = []
    for i in range(36):
        arr = rng.integers(0, 60, (40, 40)).astype(np.uint8)
        label = ("No Finding", "Pneumonia")[i % 2]
        if i % 2:
            arr[:20] += 150
        Image.fromarray(arr).save(tmp_path / "img" / f"{i}.png")
        rows.append(f"img/{i}.png,{label},p{i}\n")
    (tmp_path / "img" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    rows.append("img/broken.png,Pneumonia,p99\n")
    (tmp_path / "manifest.csv").write_text("file,label,patient\n" + "".join(rows))
    out = tmp_path / "model"
    result = CliRunner().invoke(
        app,
        [
            "imaging",
            "train",
            "--task",
            "cxr",
            "--data",
            str(tmp_path / "manifest.csv"),
            "--out",
            str(out),
            "--backbone",
            "densenet121",
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--image-size",
            "32",
            "--workers",
            "2",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    history = summary["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    counted = history[0]["unreadable_images"] + metrics["unreadable_images"]
    assert counted == 1 and history[1]["unreadable_images"] == history[0]["unreadable_images"]
    config = json.loads((out / "imaging_config.json").read_text())
    assert config["backbone"] == "densenet121" and config["num_workers"] == 2


def test_gpu_throughput_benchmark_runs_tiny_on_cpu(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from imaging_gpu_throughput import main

    out = tmp_path / "bench.json"
    assert (
        main(
            [
                "--image-size",
                "64",
                "--batch-size",
                "4",
                "--steps",
                "3",
                "--warmup",
                "1",
                "--workers",
                "1",
                "--source-size",
                "96",
                "--distinct-images",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert {
        "device",
        "precision",
        "channels_last",
        "ceiling",
        "pipeline",
        "loader_only",
        "cpu_ms_per_image",
        "ratio",
        "manifest_rows",
        "workers",
    } <= set(result)
    assert result["device"] == "cpu" and result["precision"] == "fp32"
    for part in ("ceiling", "pipeline", "loader_only"):
        assert result[part]["images_per_s"] > 0
    assert result["pipeline"]["unreadable"] == 0 and result["ratio"] > 0
    print(
        f"\ntiny CPU benchmark: ceiling {result['ceiling']['images_per_s']} images/s, "
        f"pipeline {result['pipeline']['images_per_s']} images/s, loader alone "
        f"{result['loader_only']['images_per_s']} images/s"
    )


@pytest.mark.slow
def test_a_cancelled_and_resumed_run_with_workers_repeats_a_straight_run(tmp_path):
    """Shuffle order (the loop's seedable sampler) and augmentation (seed, epoch, index) are
    functions of the seed and the epoch: a run without workers and one with two workers that
    is cancelled mid-epoch and resumed end with the same weights, bit for bit."""
    from helpers.imaging import _pattern_dataset
    from medai.core.trainer import TrainingCancelled
    from medai.imaging.train import train_model

    ds = _pattern_dataset(tmp_path, n_per_class=4)

    def cfg(workers: int) -> ImagingTrainConfig:
        return ImagingTrainConfig(
            task="cxr",
            labels=ds.annotated_labels(),
            epochs=2,
            batch_size=4,
            learning_rate=1e-3,
            image_size=32,
            patience=5,
            seed=7,
            augment=True,
            augmentation="strong",
            num_workers=workers,
        )

    straight, _ = train_model(cfg(0), ds, ds, tmp_path / "straight")
    batches = iter(range(1, 100))
    with pytest.raises(TrainingCancelled):
        train_model(cfg(2), ds, ds, tmp_path / "resumed", cancel=lambda: next(batches) == 5)
    resumed, history = train_model(cfg(2), ds, ds, tmp_path / "resumed", resume=True)
    assert [h["epoch"] for h in history] == [1, 2]
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
