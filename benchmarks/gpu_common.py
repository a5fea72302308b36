"""What ``gpu_check`` (the runner) and its section modules (``gpu_plans``,
``blip2_step_profile``) share: the sizes and BLIP-2 shapes, the synthetic ROCOv2 pairs and the
random-weight BLIP-2 built from them, the BLIP-2 section itself, the device and versions
record, the checkout's task registration, and ``save_partial`` (what a section has measured so
far).

It exists so that the imports run one way: the runner imports this module and the section
modules, the section modules import this module only — never the runner, which would make an
import circle (``gpu_check`` -> ``gpu_plans`` -> ``gpu_check``). Importing it puts ``src/`` on
the path, so a checkout runs without installing medai.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

VERSIONED = (
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "monai",
    "bitsandbytes",
    "numpy",
    "safetensors",
    "tokenizers",
)

# BLIP-2 shapes: ``opt-6.7b`` is Salesforce/blip2-opt-6.7b's (ViT-g/14 at 224 px, a 12-layer
# Q-Former with 32 queries, OPT-6.7B); ``tiny`` runs anywhere in seconds.
BLIP2_SPECS: dict[str, dict] = {
    "opt-6.7b": {
        "vision": {},
        "qformer": {},
        "query_tokens": 32,
        "image_size": 224,
        "text": {
            "hidden_size": 4096,
            "ffn_dim": 16384,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "vocab_size": 50272,
            "max_position_embeddings": 2048,
            "word_embed_proj_dim": 4096,
        },
    },
    # between the two: big enough that the frozen base dominates, as at real size
    "small": {
        "vision": {
            "hidden_size": 128,
            "intermediate_size": 512,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 64,
            "patch_size": 16,
        },
        "qformer": {
            "hidden_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 512,
            "encoder_hidden_size": 128,
        },
        "query_tokens": 8,
        "image_size": 64,
        "text": {
            "hidden_size": 512,
            "ffn_dim": 2048,
            "num_hidden_layers": 4,
            "num_attention_heads": 8,
            "vocab_size": 4096,
            "max_position_embeddings": 128,
            "word_embed_proj_dim": 512,
        },
    },
    "tiny": {
        "vision": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        "qformer": {
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "encoder_hidden_size": 32,
        },
        "query_tokens": 4,
        "image_size": 32,
        "text": {
            "hidden_size": 32,
            "ffn_dim": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "vocab_size": 64,
            "max_position_embeddings": 64,
            "word_embed_proj_dim": 32,
        },
    },
}
# per size: the BLIP-2 spec, synthetic pairs, batch, epochs; imaging image size, batch, steps
SIZES: dict[str, dict] = {
    "full": {
        "blip2": "opt-6.7b",
        "pairs": 400,
        "batch_size": 8,
        "epochs": 2,
        "imaging": {
            "image_size": 224,
            "batch_size": 64,
            "steps": 300,
            "ceiling_batch_size": 256,
            "workers": None,
        },
    },
    "tiny": {
        "blip2": "tiny",
        "pairs": 32,
        "batch_size": 4,
        "epochs": 1,
        "imaging": {
            "image_size": 64,
            "batch_size": 4,
            "steps": 3,
            "warmup": 1,
            "ceiling_batch_size": 4,
            "workers": 0,
            "source_size": 96,
            "distinct_images": 8,
        },
    },
}
FINDINGS = (
    "pleural effusion",
    "consolidation",
    "nodule",
    "mass",
    "atelectasis",
    "pneumothorax",
    "cardiomegaly",
    "normal study",
)
PLACES = (
    "left upper lobe",
    "left lower lobe",
    "right upper lobe",
    "right middle lobe",
    "right lower lobe",
    "both lungs",
)


def register_checkout_tasks() -> list[str]:
    """A checkout run without installing medai (a GPU machine with no index) has no
    ``medai.tasks`` entry points, so no task would be known: register those that
    ``pyproject.toml`` declares and the installed entry points lack, read from it (one list),
    as installing would. Compared by name: a hospital's own plugin, installed beside an
    uninstalled checkout, does not hide the built-in tasks. Returns the names registered."""
    import tomllib
    from importlib.metadata import entry_points

    from medai.core.task_registry import ENTRY_POINT_GROUP

    installed = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["entry-points"][ENTRY_POINT_GROUP]
    missing = {name: target for name, target in declared.items() if name not in installed}
    for target in missing.values():
        module, _, function = target.partition(":")
        getattr(importlib.import_module(module), function)()
    return sorted(missing)


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = importlib.import_module(name).__version__
        except Exception:  # absent or broken: reported as such
            out[name] = None
    try:
        import torch

        out["cuda"] = torch.version.cuda
    except ImportError:
        out["cuda"] = None
    return out


def device() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {
            "kind": "cpu",
            "name": platform.processor() or platform.machine(),
            "count": 0,
            "cpu_count": os.cpu_count(),
        }
    props = torch.cuda.get_device_properties(0)
    return {
        "kind": "cuda",
        "name": props.name,
        "count": torch.cuda.device_count(),
        "total_memory_bytes": int(props.total_memory),
        "capability": f"{props.major}.{props.minor}",
        "bf16": torch.cuda.is_bf16_supported(),
        "cpu_count": os.cpu_count(),
    }


def _peak_reset() -> None:
    import gc

    import torch

    gc.collect()  # a model dropped by the caller may still sit in a reference cycle
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak() -> int | None:
    import torch

    return int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else None


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


# --- BLIP-2 --------------------------------------------------------------------------------

SPECIAL_TOKENS = ["<pad>", "<unk>", "</s>", "<image>"]


def word_level_processor(vocab: list[str], image_size: int, query_tokens: int):
    """A BLIP-2 processor over a word-level tokenizer of exactly ``vocab`` (``SPECIAL_TOKENS``
    first, in that order): offline, no tokenizer download, any vocabulary size."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import Blip2Processor, PreTrainedTokenizerFast
    from transformers.models.blip.image_processing_blip import BlipImageProcessor

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        eos_token="</s>",
        bos_token="</s>",
    )
    fast.add_special_tokens({"additional_special_tokens": ["<image>"]})
    return Blip2Processor(
        image_processor=BlipImageProcessor(size={"height": image_size, "width": image_size}),
        tokenizer=fast,
        num_query_tokens=query_tokens,
    )


def build_blip2(directory: Path, spec_name: str, words: list[str]) -> dict:
    """A BLIP-2 model directory with random weights: the configuration of ``spec_name``, a
    word-level tokenizer over ``words`` padded with filler words to the text model's
    vocabulary size, and a processor. Built on the GPU where there is one, saved in bf16
    there (fp32 on CPU)."""
    import torch
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2QFormerConfig,
        Blip2VisionConfig,
        OPTConfig,
    )

    spec = BLIP2_SPECS[spec_name]
    vocab_size = spec["text"]["vocab_size"]
    vocab = SPECIAL_TOKENS + sorted(set(words) - set(SPECIAL_TOKENS))
    if len(vocab) > vocab_size:
        raise ValueError(f"{len(vocab)} words do not fit a vocabulary of {vocab_size}")
    vocab += [f"w{i}" for i in range(vocab_size - len(vocab))]
    processor = word_level_processor(vocab, spec["image_size"], spec["query_tokens"])
    fast = processor.tokenizer
    text = OPTConfig(pad_token_id=0, bos_token_id=2, eos_token_id=2, **spec["text"])
    cfg = Blip2Config(
        vision_config=Blip2VisionConfig(**spec["vision"]).to_dict(),
        qformer_config=Blip2QFormerConfig(vocab_size=64, **spec["qformer"]).to_dict(),
        text_config=text.to_dict(),
        num_query_tokens=spec["query_tokens"],
        image_token_index=fast.convert_tokens_to_ids("<image>"),
    )
    cuda = torch.cuda.is_available()
    started = time.perf_counter()
    torch.manual_seed(0)
    # built in bf16 directly on the GPU: 15.5 GB, where fp32 then a cast held 46 GB at once
    # (more than a 16–40 GB GPU, the ones the quantised sections are for)
    with torch.device("cuda" if cuda else "cpu"):
        model = Blip2ForConditionalGeneration._from_config(
            cfg, dtype=torch.bfloat16 if cuda else torch.float32
        )
    params = sum(p.numel() for p in model.parameters())
    built = time.perf_counter() - started
    started = time.perf_counter()
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    saved = time.perf_counter() - started
    del model
    _peak_reset()
    return {
        "spec": spec_name,
        "parameters": params,
        "build_s": round(built, 2),
        "save_s": round(saved, 2),
        "directory_bytes": _dir_bytes(directory),
        "dtype": "bfloat16" if cuda else "float32",
    }


def synthetic_roco(
    directory: Path, n: int, size: int, seed: int = 0
) -> tuple[Path, Path, list[str]]:
    """``n`` RGB PNGs in ROCOv2's released layout (an image folder and an ``ID,Caption`` CSV),
    each caption told by where two coloured bands lie. Captions combine a finding and a place
    (48 distinct), so the case-group split has groups to hold out; the ROCOv2 reader, its RGB
    filter and the ImageCLEF 2025 normalisation are the ones a real run goes through."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = directory / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows, words = ["ID,Caption"], set()
    for i in range(n):
        f, p = i % len(FINDINGS), (i // len(FINDINGS)) % len(PLACES)
        caption = f"{FINDINGS[f]} in the {PLACES[p]}"
        arr = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
        band, column = max(1, size // len(FINDINGS)), max(1, size // len(PLACES))
        arr[f * band : (f + 1) * band, :, 0] = 230
        arr[:, p * column : (p + 1) * column, 1] = 200
        Image.fromarray(arr).save(images / f"ROCOv2_synthetic_{i:05d}.png")
        rows.append(f"ROCOv2_synthetic_{i:05d},{caption}")
        words.update(caption.split())
    (directory / "captions.csv").write_text("\n".join(rows) + "\n")
    return directory / "captions.csv", images, sorted(words)


def blip2_base(work: Path, size: dict) -> tuple[Path, Path, Path, dict]:
    """The synthetic pairs and the random-weight base, built once per ``work`` (every BLIP-2
    section reuses them): (captions CSV, image folder, base directory, build record)."""
    spec = BLIP2_SPECS[size["blip2"]]
    data, images, words = synthetic_roco(work / "roco", size["pairs"], max(64, spec["image_size"]))
    base = work / f"blip2-{size['blip2']}"
    built = (
        json.loads((work / "built.json").read_text()) if (work / "built.json").is_file() else None
    )
    if built is None:
        built = build_blip2(base, size["blip2"], words)
        (work / "built.json").write_text(json.dumps(built))
    return data, images, base, built


def blip2_section(
    work: Path, size: dict, precision: str = "auto", out_name: str | None = None
) -> dict:
    """Build (once per ``work``), then train → save → reload → caption → score."""
    from medai.reporting.pipeline import train_blip2_captioner

    data, images, base, built = blip2_base(work, size)
    out = work / (out_name or f"captioner-{precision}")
    shutil.rmtree(out, ignore_errors=True)
    _peak_reset()
    started = time.perf_counter()
    metrics = train_blip2_captioner(
        data,
        out,
        str(base),
        epochs=size["epochs"],
        batch_size=size["batch_size"],
        lora_r=16,
        learning_rate=1e-4,
        precision=precision,
        images=images,
        rgb_only=True,
        # a tenth of the caption groups is captioned at the end: generation (3 beams) took
        # 55–70 s of each section for a fifth on the H200, and measures speed, not quality
        test_frac=0.1,
    )
    total = time.perf_counter() - started
    history = metrics.get("history", [])
    last = history[-1] if history else {}  # the last epoch: warm (the first includes set-up)
    card = json.loads((out / "model_card.json").read_text())
    ckpt = out / "checkpoints" / "last"
    position = (
        json.loads((ckpt / "position.json").read_text())
        if (ckpt / "position.json").is_file()
        else {}
    )
    tokens_per_s = last.get("tokens_per_s")
    step_s = last.get("step_s")
    split = card.get("data", [{}])[0].get("split") or {}
    result = {
        "base": built,
        "plan": card.get("params", {}).get("plan"),
        "parameters": {
            "total": built["parameters"],
            "trainable": card.get("params", {}).get("trainable_parameters"),
        },
        "train": {
            "epochs": len(history),
            "batch_size": size["batch_size"],
            "steps": -(-split.get("train", 0) // size["batch_size"]) * len(history),
            "pairs": split,
            "step_s": step_s,
            "tokens_per_s": tokens_per_s,
            "tokens_per_step": round(tokens_per_s * step_s, 1) if tokens_per_s and step_s else None,
            "images_per_s": last.get("images_per_s"),
            "train_loss": last.get("train_loss"),
            "val_loss": last.get("val_loss"),
        },
        # training (the trainer's per-epoch peak) and the whole section (reload + generation)
        "peak_memory_bytes": int(last["peak_gpu_memory_gb"] * 2**30)
        if last.get("peak_gpu_memory_gb") is not None
        else None,
        "peak_memory_with_generation_bytes": _peak(),
        "checkpoint_bytes": {"total": _dir_bytes(ckpt), **position.get("bytes", {})},
        "adapter_bytes": _dir_bytes(out / "adapter"),
        "generation": {"images": metrics.get("n"), "seconds": metrics.get("generation_s")},
        "scores": {k: metrics.get(k) for k in ("bleu_4", "rouge_l", "cider") if k in metrics},
        "normalisation": metrics.get("normalisation"),
        "wall_s": round(total, 1),
    }
    return result


# what a section has measured so far, written as it goes (``save_partial``): a section
# stopped at the budget's end still reports it. The runner's child process sets it here
# (``gpu_check.run_child``), on this module, where ``save_partial`` reads it.
PARTIAL_OUT: Path | None = None


def save_partial(result: dict) -> None:
    if PARTIAL_OUT is not None:
        PARTIAL_OUT.write_text(json.dumps({"status": "partial", **result}, default=str))
