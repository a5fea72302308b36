"""`make gpu-check`: what tiny CPU tests cannot show, measured on the GPU at hand in one run.

1. **BLIP-2 at real size** through the project's own captioning path: BLIP-2-OPT-6.7B built
   from its configuration with random weights (7.75 B parameters; a word-level tokenizer of
   OPT's vocabulary size), saved as a model directory, then ``train_blip2_captioner`` on
   synthetic image–caption pairs — split, memory plan, LoRA through the one trainer,
   checkpoint, adapter save, reload, generation on the test part, scoring. Step time, tokens/s,
   images/s, peak memory and checkpoint sizes.
2. **A quantised base** (4-bit QLoRA, and 8-bit when time allows) the same way, when
   bitsandbytes is importable: what the reference hardware (2× T4, 16 GB, no bf16) must use.
3. **Imaging**: MONAI DenseNet121 at 224 px — the GPU's ceiling on synthetic batches and the
   real pipeline (PNG decoding, augmentation, workers) trained through the project's loader;
   images/s of each and their ratio (``benchmarks/imaging_gpu_throughput.py``).
4. **Issue 60** (``benchmarks/gpu_plans.py``): ``t4_plan`` — the plan ``caption plan``
   chooses for a 16 GB T4, trained and generating under a 15 GiB cap, generation at the
   plan's batch against batch 8; ``step_limit`` — the bf16 step at batch 32 and 64, eager and
   with the blocks compiled, as a fraction of the card's bf16 peak; ``mri_series`` — a
   200-slice MR series from DICOM files to a decision on the CPU and on the GPU.

One JSON report (``--out``): device, versions, and per section its numbers or why it was
skipped or failed — a failing section never loses the others. ``--size tiny`` runs every
section at toy sizes on any machine (CPU included: the report's format is tested that way);
``--size full`` is the real check, planned to finish within ``--budget-s`` (default 8 min) on
one GPU: a section that would not fit in the time left is skipped and says so.

It needs nothing but the checkout and works with the machine's own torch: run it as
``PYTHONPATH=src python3 benchmarks/gpu_check.py`` (what ``make gpu-check`` does when there is
no ``.venv``); missing packages are named up front (see docs/benchmarks/gpu.md for carrying
them as wheels).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

FORMAT = "medai-gpu-check/1"
NEEDED = (
    "torch",
    "numpy",
    "PIL",
    "transformers",
    "peft",
    "accelerate",
    "safetensors",
    "monai",
    "pydantic",
    "pydantic_settings",
    "nltk",
    "rouge_score",
    "sklearn",
    "tokenizers",
)
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


def missing_packages() -> list[str]:
    return [name for name in NEEDED if importlib.util.find_spec(name) is None]


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


# --- imaging --------------------------------------------------------------------------------


def imaging_section(work: Path, size: dict) -> dict:
    from imaging_gpu_throughput import measure

    return measure(work=work / "imaging", backbone="densenet121", **size["imaging"])


# --- the run --------------------------------------------------------------------------------


def _plans(name: str) -> Callable[[Path, dict], dict]:
    """A section of ``gpu_plans`` (imported when it runs: it imports this module)."""

    def section(work: Path, size: dict) -> dict:
        import gpu_plans

        return getattr(gpu_plans, name)(work, size)

    return section


SECTIONS: dict[str, Callable[[Path, dict], dict]] = {
    "imaging": imaging_section,
    "blip2": lambda work, size: blip2_section(work, size),
    "blip2_nf4": lambda work, size: blip2_section(work, size, "nf4"),
    "blip2_int8": lambda work, size: blip2_section(work, size, "int8"),
    # issue 60: a T4's budget, the step near the card's limit, a series on the GPU
    "t4_plan": _plans("t4_plan_section"),
    "step_limit": _plans("step_limit_section"),
    "mri_series": _plans("mri_series_section"),
}
# sections that need bitsandbytes (a quantised base); t4_plan's plan for 16 GB is one, on a
# GPU (on CPU it runs the same path unquantised: the toy-size test)
NEEDS_BNB = ("blip2_nf4", "blip2_int8")
NEEDS_BNB_ON_GPU = ("t4_plan",)
# what a section has measured so far, written as it goes (``save_partial``): a section
# stopped at the budget's end still reports it
PARTIAL_OUT: Path | None = None


def save_partial(result: dict) -> None:
    if PARTIAL_OUT is not None:
        PARTIAL_OUT.write_text(json.dumps({"status": "partial", **result}, default=str))


# seconds each section needs on one H200 at full size, so that a section is skipped rather
# than cut off: as timed by make gpu-check there on 2026-11-27 (docs/benchmarks/gpu.md, issue
# 60: t4_plan 209 s with the 6.7 B build and save, step_limit 187 with 76 s of compilation,
# mri_series 17, blip2 93 reusing the build, imaging 186), a margin added; the quantised
# sections as timed on 2026-11-26 (nf4 141; int8 over 197 s, its generation unfinished). In
# 480 s: imaging, blip2 and nf4; the rest with a longer --budget-s or --sections.
NEEDS_S = {
    "full": {
        "imaging": 195,
        "blip2": 130,  # 93 when the base is already built, ~120 when this section builds it
        "blip2_nf4": 145,
        "blip2_int8": 230,
        "t4_plan": 220,
        "step_limit": 195,
        "mri_series": 25,
    },
    "tiny": {name: 1 for name in SECTIONS},
}


def _section(
    report: dict, name: str, size_name: str, work: Path, deadline: float, skip: str | None = None
) -> None:
    """One section in a process of its own: the GPU's memory, its peak and Accelerate's
    process-wide state start clean for each, and one that overruns what is left of the budget
    is stopped there."""
    import subprocess

    left = deadline - time.perf_counter()
    needs_s = NEEDS_S[size_name][name]
    if skip:
        report["sections"][name] = {"status": "skipped", "reason": skip}
        return
    if left < needs_s:
        report["sections"][name] = {
            "status": "skipped",
            "reason": f"{left:.0f} s left of the budget, about {needs_s:.0f} s needed",
        }
        return
    started = time.perf_counter()
    out = work / f"section-{name}.json"
    out.unlink(missing_ok=True)
    try:
        subprocess.run(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--child",
                name,
                "--size",
                size_name,
                "--work",
                str(work),
                "--out",
                str(out),
            ],
            timeout=max(1.0, left),
            check=False,
        )
        result = (
            json.loads(out.read_text())
            if out.is_file()
            else {"status": "failed", "error": "the section's process ended without a report"}
        )
    except subprocess.TimeoutExpired:
        partial = json.loads(out.read_text()) if out.is_file() else {}
        result = {
            **partial,
            "status": "failed",
            "error": f"stopped at the budget's end ({left:.0f} s)",
        }
    result["seconds"] = round(time.perf_counter() - started, 1)
    report["sections"][name] = result
    print(
        f"gpu-check: {name}: {result['status']} ({result['seconds']} s)",
        file=sys.stderr,
        flush=True,
    )


def run_child(name: str, size_name: str, work: Path, out: Path) -> None:
    global PARTIAL_OUT
    PARTIAL_OUT = out
    try:
        register_checkout_tasks()
        result = {"status": "ok", **SECTIONS[name](work, SIZES[size_name])}
    except Exception as exc:  # a failing section is reported, never fatal
        result = {
            "status": "failed",
            "error": f"{type(exc).__name__}: {exc}",
            "where": traceback.format_exc(limit=-3),
        }
    out.write_text(json.dumps(result, default=str))


def run(
    size_name: str = "full",
    out: Path | None = None,
    budget_s: float = 480,
    work: Path | None = None,
    sections: tuple[str, ...] = tuple(SECTIONS),
) -> dict:
    """The check: ``sections`` in the order given (the default: ``SECTIONS``' order; the
    first BLIP-2 section builds the base the others reuse)."""
    started = time.perf_counter()
    deadline = started + budget_s
    missing = missing_packages()
    report: dict = {
        "format": FORMAT,
        "size": size_name,
        "budget_s": budget_s,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "missing": missing,
        "versions": versions(),
        "sections": {},
    }
    if missing:
        report["error"] = (
            "missing packages: " + ", ".join(missing) + " (bring them as "
            "wheels: docs/benchmarks/gpu.md)"
        )
        report["device"] = None
        return _finish(report, out, started)
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown section(s) {unknown}: one of {', '.join(SECTIONS)}")
    report["device"] = device()
    own = work is None
    work = Path(work or tempfile.mkdtemp(prefix="medai-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    cuda = report["device"]["kind"] == "cuda"
    bnb = report["versions"].get("bitsandbytes") is not None
    no_bnb = (
        None
        if (cuda and bnb)
        else ("bitsandbytes is not installed" if cuda else "quantised bases need a CUDA GPU")
    )
    try:
        for name in dict.fromkeys(sections):
            quantised = name in NEEDS_BNB or (cuda and name in NEEDS_BNB_ON_GPU)
            _section(report, name, size_name, work, deadline, skip=no_bnb if quantised else None)
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    return _finish(report, out, started)


def _finish(report: dict, out: Path | None, started: float) -> dict:
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--out", type=Path, default=Path("build/gpu-check.json"))
    parser.add_argument("--budget-s", type=float, default=480.0)
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="where the model directories are written (default: a temporary "
        "folder, removed after; full size needs ~17 GB)",
    )
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--child", choices=sorted(SECTIONS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # one section, in its own process (``_section``)
        run_child(args.child, args.size, args.work, args.out)
        return 0
    report = run(
        args.size,
        args.out,
        args.budget_s,
        args.work,
        tuple(s.strip() for s in args.sections.split(",") if s.strip()),
    )
    print(
        json.dumps(
            {k: report[k] for k in ("format", "size", "device", "elapsed_s")}
            | {"sections": {k: v["status"] for k, v in report["sections"].items()}},
            default=str,
        )
    )
    failed = report.get("error") or any(
        s["status"] == "failed" for s in report["sections"].values()
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
