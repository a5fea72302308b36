"""ROCOv2 at full size: caption images are read when a loader asks for them, never held; colour
stays colour; an unreadable image is skipped and counted; the RGB filter reads headers only;
the ROCOv2 layout trains a (tiny) BLIP-2 end to end and is scored with the ImageCLEFmedical
2025 normalisation."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from helpers.blip2 import make_tiny_blip2
from medai.cli import app
from medai.imaging import io as image_io
from medai.reporting.captioning.caption_stream import CaptionImages, readable, stream_images
from medai.reporting.captioning.captions import load_captions, read_roco

CAPTIONS = [
    "left pleural effusion",
    "normal chest radiograph",
    "right upper lobe mass",
    "bilateral patchy consolidation",
    "a left lobe mass",
]


def _colour(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    arr = rng.integers(0, 60, (40, 48, 3)).astype(np.uint8)
    arr[:, :16, i % 3] = 230  # a coloured band: not gray
    return arr


def _gray(i: int) -> np.ndarray:
    arr = np.random.default_rng(100 + i).integers(0, 50, (40, 40)).astype(np.uint8)
    arr[(i % 4) * 10 : (i % 4 + 1) * 10] = 220
    return arr


def _roco(root, n_rgb: int = 6, n_gray: int = 5, corrupt: bool = True):
    """A ROCOv2-style layout: images/ROCOv2_2023_train_NNNNNN.png, captions.csv (ID,Caption)
    and concepts.csv (ID,CUIs)."""
    images = root / "images"
    images.mkdir()
    caps, cuis = ["ID,Caption"], ["ID,CUIs"]
    for k in range(n_rgb + n_gray + int(corrupt)):
        rid = f"ROCOv2_2023_train_{k:06d}"
        if k < n_rgb:
            Image.fromarray(_colour(k)).save(images / f"{rid}.png")
        elif k < n_rgb + n_gray:
            Image.fromarray(_gray(k)).save(images / f"{rid}.png")
        else:
            (images / f"{rid}.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
        caps.append(f'{rid},"{CAPTIONS[k % len(CAPTIONS)].capitalize()}, {k % 3 + 1} views."')
        cuis.append(f"{rid},C0032227;C{k:07d}")
    (root / "captions.csv").write_text("\n".join(caps) + "\n")
    (root / "concepts.csv").write_text("\n".join(cuis) + "\n")
    return images, root / "captions.csv", root / "concepts.csv"


def test_rgb_filter_reads_headers_only_and_reports_what_it_dropped(tmp_path, monkeypatch):
    from PIL import ImageFile

    images, captions, concepts = _roco(tmp_path, n_rgb=3, n_gray=2)
    decoded = []
    real = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(1) or real(self))
    ds = read_roco(images, captions, concepts, rgb_only=True)
    assert not decoded  # the mode comes from the header: no pixel was decoded
    assert ds.report["pairs"] == 3 and ds.report["dropped_not_rgb"] == 2
    assert ds.report["dropped_unreadable"] == 1
    assert all(r.path.stem < "ROCOv2_2023_train_000003" for r in ds.records)
    # without the filter every listed image is kept (gray converted when read, not dropped)
    everything = read_roco(images, captions, concepts)
    assert everything.report["pairs"] == 6 and "dropped_unreadable" not in everything.report
    assert everything.records[0].cuis == ["C0032227", "C0000000"]


def test_caption_images_decode_only_when_asked(tmp_path, monkeypatch):
    images, captions, concepts = _roco(tmp_path, n_rgb=2, n_gray=1)
    ds = load_captions(captions, images=images, concepts=concepts)
    calls = []
    real = image_io.load_rgb
    monkeypatch.setattr(image_io, "load_rgb", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    items = CaptionImages([r.path for r in ds.records], [r.caption for r in ds.records])
    assert not calls  # building the dataset decodes nothing ...
    assert not any(isinstance(v, np.ndarray) for v in vars(items).values())  # ... holds no pixels
    assert all(isinstance(p, str) for p in items.paths)
    i, rgb, caption = items[0]
    assert len(calls) == 1 and i == 0 and caption == ds.records[0].caption
    assert rgb.dtype == np.uint8 and rgb.shape == (40, 48, 3)
    assert np.array_equal(rgb, _colour(0))  # colour kept as colour, exactly
    _, gray, _ = items[2]
    assert gray.shape == (40, 40, 3) and np.array_equal(gray[..., 0], _gray(2))
    assert np.array_equal(gray[..., 0], gray[..., 2])  # gray repeated on three channels
    _, broken, _ = items[3]
    assert broken is None  # unreadable: no exception
    positions, pixels, _, dropped = readable([items[k] for k in range(4)])
    assert positions == [0, 1, 2] and len(pixels) == 3 and dropped == 1


def test_stream_images_yields_bounded_batches(tmp_path):
    images = _roco(tmp_path, n_rgb=3, n_gray=2)[0]
    paths = sorted(images.iterdir())
    batches = list(stream_images(paths, colour=False, batch_size=2, num_workers=0))
    assert [len(b[1]) for b in batches] == [2, 2, 1]  # the corrupt last one dropped
    assert [p for b in batches for p in b[0]] == [0, 1, 2, 3, 4]
    assert all(px.ndim == 2 and px.dtype == np.float32 for b in batches for px in b[1])


def test_load_rgb_is_bounded_and_reduces(tmp_path):
    big = np.zeros((300, 200, 3), dtype=np.uint8)
    big[..., 1] = 200
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=95)
    small = image_io.load_rgb(tmp_path / "big.jpg", max_side=100)
    assert max(small.shape[:2]) <= 100 and small.shape[2] == 3
    assert small[..., 1].mean() > 150 and small[..., 0].mean() < 40
    rgba = np.zeros((40, 40, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 128  # half-transparent red over black
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    out = image_io.load_rgb(tmp_path / "rgba.png")
    assert out.shape == (40, 40, 3) and 120 <= out[0, 0, 0] <= 136 and out[0, 0, 1] == 0
    with pytest.raises(image_io.ImageTooLarge):
        image_io.load_rgb(tmp_path / "big.jpg", max_pixels=1000)


def test_score_captioner_captions_a_batch_at_a_time(tmp_path):
    from medai.reporting.pipeline import score_captioner

    images, captions, concepts = _roco(tmp_path, n_rgb=3, n_gray=3)
    ds = load_captions(captions, images=images, concepts=concepts)

    class Recorder:
        reads_colour = True

        def __init__(self) -> None:
            self.sizes: list[int] = []

        def caption_pixels(self, pixels):
            self.sizes.append(len(pixels))
            assert all(p.ndim == 3 for p in pixels)
            return [{"caption": "left pleural effusion", "status": "ai_suggestion"} for _ in pixels]

    captioner = Recorder()
    m = score_captioner(
        captioner,
        ds,
        list(range(len(ds.records))),
        batch_size=2,
        normalisation="imageclef2025",
        num_workers=0,
    )
    assert max(captioner.sizes) <= 2 and sum(captioner.sizes) == 6
    assert m["n"] == 6 and m["unreadable_images"] == 1
    assert m["normalisation"] == "imageclef2025" and "relevance" in m["not_computed"]


@pytest.mark.slow
def test_blip2_trains_on_the_roco_layout(tmp_path):
    """``caption train --method blip2`` on a ROCOv2 layout: images streamed (RGB and gray,
    one unreadable, skipped and counted), scored with the 2025 normalisation by default."""
    images, captions, concepts = _roco(tmp_path)
    base = make_tiny_blip2(tmp_path / "base")
    out = tmp_path / "captioner"
    result = CliRunner().invoke(
        app,
        [
            "caption",
            "train",
            "--method",
            "blip2",
            "--base",
            str(base),
            "--data",
            str(captions),
            "--images",
            str(images),
            "--concepts",
            str(concepts),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--batch-size",
            "2",
            "--lora-r",
            "4",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout.strip().splitlines()[-1])
    assert m["normalisation"] == "imageclef2025" and "bleurt" in m["not_computed"]
    # the corrupt image is in one part or another: counted once, never a crash
    assert m["unreadable_images"] + m["history"][0]["unreadable_images"] == 1
    card = json.loads((out / "model_card.json").read_text())
    assert card["metrics"]["normalisation"] == "imageclef2025"
    assert card["data"][0]["report"]["pairs"] == 12
    assert f"--images {images}" in card["training_command"]
    from medai.core import model_dir

    captioner = model_dir.load(out)
    assert captioner.reads_colour
    result = captioner.predict(images / "ROCOv2_2023_train_000000.png")  # a colour figure
    assert result.status == "ai_suggestion" and result.caption
    # earlier numbers stay reproducible: the normalisation is a choice, named in the result
    ev = CliRunner().invoke(
        app,
        [
            "caption",
            "evaluate",
            "--data",
            str(captions),
            "--images",
            str(images),
            "--model",
            str(out),
            "--normalisation",
            "medai-v1",
            "--json",
        ],
    )
    assert ev.exit_code == 0, ev.output
    e = json.loads(ev.stdout.strip().splitlines()[-1])
    assert e["normalisation"] == "medai-v1" and "not_computed" not in e
    assert e["n"] == 11 and e["unreadable_images"] == 1


def test_a_batch_with_no_readable_image_still_runs_the_model(tmp_path):
    """Every process must run the model each step (DDP): a batch whose images were all
    unreadable is one blank image with nothing to learn, and its loss is a zero that
    backpropagates."""
    from transformers import Blip2ForConditionalGeneration, Blip2Processor

    from medai.reporting.captioning.blip2 import _Blip2Adapter, _Collate

    base = make_tiny_blip2(tmp_path / "base")
    processor = Blip2Processor.from_pretrained(base)
    model = Blip2ForConditionalGeneration.from_pretrained(base)
    collate = _Collate(processor, 32, model.config.image_token_index)
    batch = collate([(0, None, "left pleural effusion"), (1, None, "normal chest")])
    assert batch["n_images"] == 0 and batch["unreadable"] == 2
    assert (batch["labels"] == -100).all()
    adapter = _Blip2Adapter(cfg=None, train=None, val=None)
    loss_sum, n = adapter.loss(model, batch)
    assert n == 0 and float(loss_sum.detach()) == 0.0 and adapter.unreadable == 2
    loss_sum.backward()  # connected to the model: a step on every process stays in step
    good = collate([(0, _colour(0), "left pleural effusion"), (1, None, "normal chest")])
    assert good["n_images"] == 1 and good["unreadable"] == 1
    loss_sum, n = adapter.loss(model, good)
    assert n == 1 and float(loss_sum.detach()) > 0 and adapter.unreadable == 3


def test_rocov2_at_full_size_is_indexed_without_decoding(tmp_path, monkeypatch):
    """80,000 captions (ROCOv2's training part) become a dataset and a training loader's
    dataset in bounded memory, one pass over the rows and one listing of the folder, with no
    image decoded or held (the files are hard links of two small PNGs)."""
    import os
    import time
    import tracemalloc

    images = tmp_path / "images"
    images.mkdir()
    for source in range(2):  # a file takes at most 65,000 links on ext4
        Image.fromarray(_colour(source)).save(tmp_path / f"source{source}.png")
    rows = ["ID,Caption"]
    for k in range(80_000):
        rid = f"ROCOv2_2023_train_{k:06d}"
        os.link(tmp_path / f"source{k % 2}.png", images / f"{rid}.png")
        rows.append(f'{rid},"{CAPTIONS[k % len(CAPTIONS)]}, case {k}."')
    (tmp_path / "captions.csv").write_text("\n".join(rows) + "\n")
    decoded = []
    monkeypatch.setattr(image_io, "load_rgb", lambda *a, **k: decoded.append(a) or None)
    tracemalloc.start()
    started = time.process_time()
    ds = load_captions(tmp_path / "captions.csv", images=images)
    items = CaptionImages([r.path for r in ds.records], [r.caption for r in ds.records])
    cpu_s = time.process_time() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"80k ROCOv2 rows: {peak / 2**20:.1f} MiB peak, {cpu_s:.2f} s CPU")
    assert len(items) == 80_000 and ds.report["pairs"] == 80_000 and not decoded
    assert peak < 200 * 2**20, peak  # ~2.5 kB a row with its caption; 80 k images: gigabytes
