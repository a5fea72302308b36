"""Caption datasets (pairs.csv, ROCOv2 layout) and the retrieval captioner end to end."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medai.cli import app
from medai.reporting.captioning.caption_select import consensus
from medai.reporting.captioning.captions import (
    CaptionDataError,
    clean_caption,
    group_split,
    read_pairs,
    read_roco,
)

runner = CliRunner()
CAPTIONS = [
    "bilateral patchy consolidation",
    "right sided pleural effusion",
    "normal chest radiograph",
    "left upper lobe mass",
]


def _image(kind: int, i: int) -> np.ndarray:
    rng = np.random.default_rng(100 * kind + i)
    arr = rng.integers(0, 40, (64, 64)).astype(np.uint8)
    [arr[:32], arr[:, 32:], arr[20:44, 20:44], arr[::2]][kind][...] += 180
    return arr


def _pairs(root, per_caption=4):
    rows = ["file,caption,modality"]
    for kind, caption in enumerate(CAPTIONS):
        for i in range(per_caption):
            name = f"img_{kind}_{i}.png"
            Image.fromarray(_image(kind, i)).save(root / name)
            # several images share one caption, as in the shared pairs
            rows.append(f"{name},Figure {i + 1}: {caption},X-ray")
    (root / "pairs.csv").write_text("\n".join(rows) + "\n")
    return root / "pairs.csv"


def test_clean_caption():
    assert clean_caption('  Fig. 2a: "Right  pleural effusion" ') == "Right pleural effusion"


def test_pairs_reader_and_split_keep_caption_groups_together(tmp_path):
    ds = read_pairs(_pairs(tmp_path))
    assert ds.report["pairs"] == 16 and ds.report["distinct_captions"] == 4
    train, test = group_split(ds, test_frac=0.25)
    assert not {ds.records[i].group for i in train} & {ds.records[i].group for i in test}
    (tmp_path / "bad.csv").write_text("image,text\na.png,x\n")
    with pytest.raises(CaptionDataError, match="file,caption"):
        read_pairs(tmp_path / "bad.csv")


def test_roco_layout_grayscale_kept_rgb_only_optional(tmp_path):
    images = tmp_path / "train"
    images.mkdir()
    Image.fromarray(_image(0, 0)).save(images / "ROCOv2_2023_train_000001.jpg")
    Image.fromarray(np.stack([_image(1, 0)] * 3, axis=2)).save(
        images / "ROCOv2_2023_train_000002.jpg"
    )
    (tmp_path / "captions.csv").write_text(
        "ID,Caption\nROCOv2_2023_train_000001,CT of the chest.\n"
        "ROCOv2_2023_train_000002,Chest X-ray showing effusion.\n"
        "ROCOv2_2023_train_000003,Image that is missing.\n"
    )
    (tmp_path / "concepts.csv").write_text("ID,CUIs\nROCOv2_2023_train_000001,C0040405;C0817096\n")
    ds = read_roco(images, tmp_path / "captions.csv", tmp_path / "concepts.csv")
    assert ds.report["pairs"] == 2 and ds.report["missing_images"] == 1
    assert ds.records[0].cuis == ["C0040405", "C0817096"]
    rgb = read_roco(images, tmp_path / "captions.csv", rgb_only=True)
    assert rgb.report["pairs"] == 1 and rgb.report["dropped_not_rgb"] == 1


def test_consensus_prefers_the_caption_the_neighbours_agree_on():
    caps = ["left pleural effusion", "zebra crossing", "small left pleural effusion"]
    assert consensus(caps, np.array([0.9, 0.95, 0.8])) in (0, 2)
    assert consensus(["only one"], np.array([0.1])) == 0


@pytest.mark.slow
def test_caption_train_evaluate_predict_cli(tmp_path):
    data = _pairs(tmp_path)
    out = tmp_path / "captioner"
    result = runner.invoke(
        app, ["caption", "train", "--data", str(data), "--out", str(out), "--k", "3", "--json"]
    )
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("bleu_1", "bleu_4", "rouge_1", "rouge_l", "meteor", "cider", "n"):
        assert key in m
    assert m["split"]["test"] == 4  # one caption group of four images held out
    card = json.loads((out / "model_card.json").read_text())
    assert card["task"] == "caption" and card["metrics"]["n"] == 4
    # beside its baselines, measured in the same run; the verdict is said, not assumed
    base = card["baselines"]
    assert base["metric"] == "rouge_l" and set(base["beats"]) == {
        "baseline: best constant caption",
        "baseline: nearest neighbour's caption",
    }
    assert m["verdict"].startswith(("beats every baseline", "ties", "does NOT beat"))
    # scored on its own training pairs the index finds each image's own caption
    ev = runner.invoke(
        app, ["caption", "evaluate", "--data", str(data), "--model", str(out), "--json"]
    )
    e = json.loads(ev.stdout.strip().splitlines()[-1])
    assert ev.exit_code == 0 and e["n"] == 16 and e["bleu_1"] > 0.5
    assert "training data" in e["warning"]  # scored on what it indexed: said out loud
    # the bundled captioner by name scores every row and nothing is trained
    before = sorted(p.name for p in tmp_path.rglob("*"))
    bundled = runner.invoke(
        app, ["caption", "evaluate", "--data", str(data), "--model", "caption-retrieval", "--json"]
    )
    b = json.loads(bundled.stdout.strip().splitlines()[-1])
    assert bundled.exit_code == 0 and b["n"] == 16 and b["model"]["name"] == "caption-retrieval"
    assert "warning" not in b and sorted(p.name for p in tmp_path.rglob("*")) == before
    # it ties one fixed sentence, so it is not a default: without --model the CLI says so
    none = runner.invoke(app, ["caption", "evaluate", "--data", str(data), "--json"])
    err = json.loads(none.stdout.strip().splitlines()[-1])["error"]
    assert none.exit_code != 0 and "no default model for task 'caption'" in err
    assert "caption-retrieval (ties baseline: best constant caption" in err
    pred = runner.invoke(
        app, ["caption", "predict", str(tmp_path / "img_1_0.png"), "--model", str(out), "--json"]
    )
    p = json.loads(pred.stdout.strip().splitlines()[-1])
    assert p["caption"] and p["status"] == "ai_suggestion" and p["model"]["content_hash"]
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    bad = runner.invoke(
        app, ["caption", "predict", str(tmp_path / "broken.png"), "--model", str(out), "--json"]
    )
    assert bad.exit_code == 2
    assert "image" in json.loads(bad.stdout.strip().splitlines()[-1])["error"]
