"""BLIP-2 + LoRA captioning on a tiny BLIP-2 built from a config (random weights, offline):
targets, frozen parts, fp32 trainables under the fp16 plan, training with best-adapter saving,
loading, generation length, and the 2-process Accelerate path on CPU."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.blip2 import make_tiny_blip2
from medai.reporting.captioning.blip2 import (
    Blip2LoraConfig,
    _refuse_fp16_trainables,
    load_base,
    lora_target,
)
from medai.reporting.captioning.blip2_plan import plan_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("blip2")
    base = make_tiny_blip2(root / "base")
    captions = [
        "left pleural effusion",
        "normal chest radiograph",
        "right upper lobe mass",
        "bilateral patchy consolidation",
    ]
    rows = ["file,caption"]
    rng = np.random.default_rng(0)
    for c, caption in enumerate(captions):
        for i in range(3):
            arr = rng.integers(0, 50, (40, 40)).astype(np.uint8)
            arr[c * 10 : (c + 1) * 10] = 220
            Image.fromarray(arr).save(root / f"{c}_{i}.png")
            rows.append(f"{c}_{i}.png,{caption}")
    (root / "pairs.csv").write_text("\n".join(rows) + "\n")
    return root, base


def test_lora_targets_the_language_model_only(tiny):
    _, base = tiny
    model, _ = load_base(Blip2LoraConfig(base=str(base), lora_r=4))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "language_projection" in n for n in trainable)
    assert any("language_model" in n and "q_proj.lora_A" in n for n in trainable)
    assert not any("vision_model" in n or "qformer" in n for n in trainable)
    assert lora_target("t5").endswith(r"\.(q|k|v|o)$")


def test_lora_targets_for_a_t5_language_model():
    """BLIP-2-FlanT5: LoRA lands on the T5 attention projections (q, k, v, o) only."""
    from peft import LoraConfig, get_peft_model
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2QFormerConfig,
        Blip2VisionConfig,
        T5Config,
    )

    cfg = Blip2Config(
        vision_config=Blip2VisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ).to_dict(),
        qformer_config=Blip2QFormerConfig(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            encoder_hidden_size=32,
            vocab_size=50,
        ).to_dict(),
        text_config=T5Config(
            vocab_size=50,
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=1,
            num_heads=2,
            decoder_start_token_id=0,
        ).to_dict(),
        num_query_tokens=4,
    )
    model = Blip2ForConditionalGeneration(cfg)
    peft = get_peft_model(
        model, LoraConfig(r=4, target_modules=lora_target(model.config.text_config.model_type))
    )
    trainable = [n for n, p in peft.named_parameters() if p.requires_grad]
    # encoder self-attention, decoder self- and cross-attention: 3 × 4 projections × (A, B)
    assert len(trainable) == 24
    assert all("language_model" in n and "lora_" in n for n in trainable)


def test_fp16_plan_keeps_trainables_fp32_and_cpu_runs_fp32(tiny):
    """fp16 *trainable* weights are what goes NaN: under the fp16 plan the frozen base is fp16
    and every trainable parameter fp32 (loaded on CPU only; fp16 training needs a GPU)."""
    _, base = tiny
    cfg = Blip2LoraConfig(base=str(base), lora_r=4, precision="fp16")
    model, _ = load_base(cfg, plan_settings("fp16", bf16=False))
    params = dict(model.named_parameters())
    trainable = {n: p for n, p in params.items() if p.requires_grad}
    assert trainable and all(p.dtype == torch.float32 for p in trainable.values())
    assert any("language_projection" in n for n in trainable)
    frozen_lm = [p for n, p in params.items() if not p.requires_grad and "language_model" in n]
    assert frozen_lm and all(p.dtype == torch.float16 for p in frozen_lm)
    # transformers keeps the Q-Former in fp32 when loading in fp16 (_keep_in_fp32_modules)
    assert all(p.dtype == torch.float32 for n, p in params.items() if ".qformer." in n)
    bad = torch.nn.Linear(2, 2).half()
    with pytest.raises(ValueError, match="fp16"):
        _refuse_fp16_trainables(bad)

    auto, _ = load_base(Blip2LoraConfig(base=str(base), lora_r=4))  # auto on CPU: fp32
    if not torch.cuda.is_available():
        assert all(p.dtype == torch.float32 for p in auto.parameters())


def test_saved_configs_from_before_precision_plans_still_load():
    old = {"base": "b", "mixed_precision": "bf16", "load_in_8bit": False}
    assert Blip2LoraConfig.from_dict(old).precision == "bf16"
    assert Blip2LoraConfig.from_dict({**old, "mixed_precision": "no"}).precision == "fp32"
    assert Blip2LoraConfig.from_dict({**old, "load_in_8bit": True}).precision == "int8"
    assert Blip2LoraConfig.from_dict({"base": "b", "precision": "nf4"}).precision == "nf4"


def test_train_save_load_generate(tiny, tmp_path):
    from medai.core import model_dir
    from medai.reporting.pipeline import train_blip2_captioner

    root, base = tiny
    out = tmp_path / "captioner"
    m = train_blip2_captioner(
        root / "pairs.csv",
        out,
        str(base),
        epochs=3,
        batch_size=4,
        learning_rate=5e-3,
        lora_r=4,
        test_frac=0.25,
    )
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert not (out / "adapter" / "model.safetensors").exists()  # only the adapter is saved
    # the checkpoint holds the adapter and the trained projection, never the frozen base
    from safetensors.torch import load_file

    last = out / "checkpoints" / "last"
    trained = load_file(str(last / "trained.safetensors"))
    assert trained and all(
        "lora_" in k or "language_projection.modules_to_save" in k for k in trained
    ), sorted(trained)[:5]
    assert not any("vision_model" in k or "qformer" in k for k in trained)
    assert not (last / "model.safetensors").exists()
    base_bytes = sum(f.stat().st_size for f in base.glob("*.safetensors"))
    assert (last / "trained.safetensors").stat().st_size < base_bytes / 4
    assert {"tokens_per_s", "images_per_s", "step_s"} <= set(m["history"][0])
    assert len(m["history"]) >= 2 and m["history"][-1]["train_loss"] < m["history"][0]["train_loss"]
    for key in ("bleu_1", "bleu_4", "rouge_l", "meteor", "cider", "n"):
        assert key in m
    assert m["generation_batch_size"] == 4  # on CPU, the training batch (blip2_plan)
    recorded = json.loads((out / "blip2_lora.json").read_text())["plan"]  # what it reads back
    assert {"on_gpu", "budget_bytes", "terms_bytes"} <= set(recorded) and not recorded["on_gpu"]
    card = json.loads((out / "model_card.json").read_text())
    assert card["model_type"] == "blip2-lora" and card["metrics"]["n"] == m["n"]
    captioner = model_dir.load(out)
    result = captioner.predict(root / "0_0.png")
    assert result.status == "ai_suggestion" and len(result.caption.split()) >= 2
    assert result.model.content_hash.startswith("sha256:") and result.method == "blip2-lora"

    # moved to another machine: no absolute path inside; the base is found by name in
    # MEDAI_MODELS_DIR (passed down by the faces) and checked by its config hash
    import shutil

    elsewhere = tmp_path / "other-machine"
    shutil.copytree(out, elsewhere / "captioner")
    shutil.copytree(base, elsewhere / "models" / base.name)
    for f in (elsewhere / "captioner").rglob("*.json"):  # the card keeps the command as typed
        if f.name != "model_card.json":
            assert str(tmp_path) not in f.read_text(), f
    shutil.rmtree(out)
    moved = model_dir.load(elsewhere / "captioner", models_dir=elsewhere / "models")
    assert moved.predict(root / "0_0.png").caption == result.caption


def test_two_process_training_on_cpu(tiny, tmp_path):
    root, base = tiny
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("MEDAI_DISTRIBUTED_CHILD", None)
    out = tmp_path / "ddp"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "medai.cli",
            "caption",
            "train",
            "--method",
            "blip2",
            "--base",
            str(base),
            "--data",
            str(root / "pairs.csv"),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--batch-size",
            "2",
            "--lora-r",
            "4",
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
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 1 and "bleu_4" in lines[0]
    assert (out / "adapter" / "adapter_config.json").is_file()


def test_a_stopped_run_resumes_from_its_checkpoint(tiny, tmp_path, capsys):
    """A long run stopped after an epoch continues from the adapter's checkpoint (the frozen
    base is rebuilt from its directory, not read from the checkpoint)."""
    from medai.reporting.pipeline import train_blip2_captioner

    root, base = tiny
    out = tmp_path / "resumed"
    first = train_blip2_captioner(
        root / "pairs.csv",
        out,
        str(base),
        epochs=1,
        batch_size=4,
        lora_r=4,
        test_frac=0.25,
        num_workers=0,
    )
    assert [h["epoch"] for h in first["history"]] == [1]
    again = train_blip2_captioner(
        root / "pairs.csv",
        out,
        str(base),
        epochs=2,
        batch_size=4,
        lora_r=4,
        test_frac=0.25,
        num_workers=0,
        resume=True,
    )
    assert "resuming at epoch 2, batch 0" in capsys.readouterr().out
    assert [h["epoch"] for h in again["history"]] == [1, 2]
    assert again["history"][0] == first["history"][0]
