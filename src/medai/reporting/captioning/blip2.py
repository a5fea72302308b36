"""BLIP-2 captioning fine-tuned with LoRA (PEFT), from a local Hugging Face BLIP-2 directory.

What the reference system learnt the hard way is built in: the vision encoder and the language
model stay frozen (LoRA adapters on the LLM's attention projections, the Q-Former→LLM projection
trained in full); the precision is a plan chosen before loading from the GPU's memory and
capabilities (``blip2_plan``: bf16, fp16 with fp32 trainables and a gradient scaler, fp32, an
8-bit or 4-bit QLoRA base) — fp16 *trainable* weights collapse the loss to NaN on BLIP-2-OPT,
so every trainable parameter is fp32 and a model with fp16 trainables is refused; gradient
checkpointing for big models; early stopping on validation loss; only the adapter is saved.
Generation has a minimum length and repetition controls, so no empty or one-word captions.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from medai.core.model_dir import ModelLoadError, file_sha256
from medai.core.trainer import LoopConfig, adamw, fit
from medai.reporting.captioning.blip2_plan import (
    MODULES_TO_SAVE,
    Plan,
    bitsandbytes_installed,
    choose_plan,
    describe,
    detect_gpus,
    host_memory_bytes,
    load_config,
    lora_target,
    plan_settings,
    quantisation_skips,
)
from medai.reporting.captioning.caption_predict import CaptionPredict
from medai.reporting.captioning.caption_stream import loader, readable

ADAPTER_DIR = "adapter"
CONFIG_FILE = "blip2_lora.json"


@dataclass
class Blip2LoraConfig:
    base: str | dict  # a path while training; a base_reference in a saved adapter
    epochs: int = 5
    batch_size: int = 4
    grad_accum: int = 1
    learning_rate: float = 1e-4
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    patience: int = 2
    precision: str = "auto"  # auto | bf16 | fp16 | fp32 | int8 | nf4 (blip2_plan); saved: what ran
    gradient_checkpointing: bool = False
    max_length: int = 64
    seed: int = 13
    plan: dict | None = None  # recorded by train_blip2: the plan's estimate and hardware
    trainable_parameters: int | None = None  # recorded by train_blip2

    @classmethod
    def from_dict(cls, raw: dict) -> Blip2LoraConfig:
        """A saved ``blip2_lora.json``, including those from before precision plans
        (``mixed_precision`` bf16 | no | auto and ``load_in_8bit``)."""
        raw = dict(raw)
        mixed, eight_bit = raw.pop("mixed_precision", None), raw.pop("load_in_8bit", False)
        if "precision" not in raw:
            raw["precision"] = (
                "int8" if eight_bit else {"no": "fp32"}.get(mixed or "auto", mixed or "auto")
            )
        return cls(**raw)


def training_plan(cfg: Blip2LoraConfig) -> Plan:
    """The precision plan for ``cfg`` on this machine's GPUs, from the base's config.json
    alone (nothing loaded); ``PlanRefused`` when the requested plan cannot run or fit."""
    config, gpu = load_config(cfg.base), detect_gpus()
    # on CPU the processes of one machine share its RAM, each with a whole copy
    host = None if gpu else host_memory_bytes() // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return choose_plan(
        config,
        gpu,
        batch_size=cfg.batch_size,
        tokens=max(1, cfg.max_length - config.num_query_tokens),
        lora_r=cfg.lora_r,
        gradient_checkpointing=cfg.gradient_checkpointing,
        requested=cfg.precision,
        host_bytes=host,
    )


class _OncePerProcess(logging.Filter):
    """Lets the first record that starts with ``prefix`` through and drops its repeats."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix, self.seen = prefix, False

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self.prefix):
            return True
        first, self.seen = not self.seen, True
        return first


def _once_per_process(logger: logging.Logger, prefix: str) -> None:
    """bitsandbytes logs "MatMul8bitLt: inputs will be cast from bfloat16 to float16" at every
    int8 matrix product with 16-bit inputs: thousands of lines an epoch on the GPU check, which
    bury the epoch lines. Once says it."""
    if not any(isinstance(f, _OncePerProcess) and f.prefix == prefix for f in logger.filters):
        logger.addFilter(_OncePerProcess(prefix))


def _quantisation_config(plan: Plan, config):
    """bitsandbytes' settings for an int8 or nf4 plan; the trained ``language_projection``
    and transformers' default skips (the output embedding) stay in floating point."""
    if not bitsandbytes_installed():
        raise ValueError(
            f"the {plan.name} plan needs bitsandbytes (pip install bitsandbytes) and a CUDA GPU"
        )
    from transformers import BitsAndBytesConfig

    skips = quantisation_skips(config)
    if plan.quantisation == "int8":
        _once_per_process(logging.getLogger("bitsandbytes.autograd._functions"), "MatMul8bitLt")
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skips)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=plan.torch_dtype,
        llm_int8_skip_modules=skips,
    )


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def _refuse_fp16_trainables(model) -> None:
    """fp16 weights that train are what collapses BLIP-2-OPT's loss to NaN (and what a
    gradient scaler cannot unscale): none may reach the optimiser."""
    bad = [n for n, p in model.named_parameters() if p.requires_grad and p.dtype == torch.float16]
    if bad:
        raise ValueError(
            f"{len(bad)} trainable parameters are fp16 (e.g. {bad[0]}): fp16 "
            "trainable weights collapse BLIP-2's loss to NaN; keep them fp32"
        )


def _base_path(cfg: Blip2LoraConfig) -> Path:
    """The folder of the base model trained from (a path while training)."""
    if isinstance(cfg.base, dict):  # Path(a dict)'s own error, named
        raise TypeError(f"the base to train from must be a path, not {cfg.base!r}")
    return Path(cfg.base)


def load_base(cfg: Blip2LoraConfig, plan: Plan | None = None):
    """Model with LoRA adapters attached, and its processor (all from local files), loaded as
    ``plan`` says (default: ``training_plan(cfg)``). Every trainable parameter is fp32."""
    from peft import LoraConfig, get_peft_model
    from transformers import Blip2ForConditionalGeneration, Blip2Processor, PreTrainedConfig

    base = _base_path(cfg)
    config = load_config(base)
    plan = plan or training_plan(cfg)
    kwargs: dict = {"local_files_only": True, "dtype": plan.torch_dtype}
    if plan.quantisation:
        kwargs["quantization_config"] = _quantisation_config(plan, config)
    if torch.cuda.is_available():
        # a whole copy per DDP process, loaded straight onto its own GPU (torchrun's
        # LOCAL_RANK): through the host, 8 processes held 8 × 15.5 GB of RAM at once
        kwargs["device_map"] = {"": _local_rank()}
    model = Blip2ForConditionalGeneration.from_pretrained(base, **kwargs)
    processor = Blip2Processor.from_pretrained(base, local_files_only=True)
    if plan.quantisation:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.gradient_checkpointing
        )
    elif cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        bias="none",
        # Blip2Config makes its text_config a config
        target_modules=lora_target(cast(PreTrainedConfig, model.config.text_config).model_type),
        modules_to_save=list(MODULES_TO_SAVE),
    )
    peft_model = get_peft_model(model, lora)
    for p in peft_model.parameters():  # LoRA and the language_projection copy: fp32 in every plan
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
    _refuse_fp16_trainables(peft_model)
    return peft_model, processor


def _rgb_image(pixels: np.ndarray):
    """A PIL RGB image from ``caption_stream.decode``'s uint8 H × W × 3 or a gray float array
    in [0, 1] (``load_image``'s, as the draft service passes)."""
    from PIL import Image

    if pixels.ndim == 3:
        return Image.fromarray(np.ascontiguousarray(pixels[..., :3], dtype=np.uint8), "RGB")
    gray = np.rint(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")


# in a training batch beside the model's inputs, counted on the host by the collate (reading
# them off the GPU in the loop would make every step wait)
BATCH_COUNTS = ("n_images", "n_tokens", "unreadable")


class _Collate:
    """Streamed items → the processor's batch, in the DataLoader's workers (an object, so it
    pickles): unreadable images are dropped and counted, pads and query-token placeholders are
    masked out of the labels. A batch whose every image was unreadable still holds one blank
    image with nothing to learn (``n_images`` 0), so every process runs the model."""

    def __init__(self, processor, max_length: int, image_token: int | None) -> None:
        self.processor, self.max_length, self.image_token = processor, max_length, image_token

    def __call__(self, batch) -> dict:

        _, pixels, texts, unreadable = readable(batch)
        n = len(pixels)
        if not n:
            pixels, texts = [np.zeros((32, 32, 3), dtype=np.uint8)], [""]
        enc = self.processor(
            images=[_rgb_image(p) for p in pixels],
            text=list(texts),
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_length,
        )
        labels = enc["input_ids"].clone()
        labels[enc["attention_mask"] == 0] = -100
        if self.image_token is not None:
            labels[labels == self.image_token] = -100  # the query-token placeholders are not text
        if not n:
            labels[:] = -100
        tokens = int(enc["attention_mask"].sum()) if n else 0  # query placeholders + text
        return {
            **dict(enc),
            "labels": labels,
            "n_images": n,
            "n_tokens": tokens,
            "unreadable": unreadable,
        }


class _Blip2Adapter:
    """BLIP-2 + LoRA's part of the one training loop (``core.trainer``)."""

    def __init__(self, cfg: Blip2LoraConfig, train, val, num_workers: int | None = None) -> None:
        self.cfg, self.train, self.val, self.num_workers = cfg, train, val, num_workers
        self.processor: Any = None  # a Blip2Processor, set by build()
        self.image_token: int | None = None
        self.unreadable = 0  # images dropped since the last validation (train and validation)
        self.plan: Plan | None = None  # train_blip2's; None: chosen when the model is built

    def build(self):
        model, self.processor = load_base(self.cfg, self.plan)
        self.cfg.trainable_parameters = sum(
            p.numel() for p in model.parameters() if p.requires_grad
        )
        self.image_token = getattr(model.config, "image_token_index", None)
        return model

    def optimizer(self, model):
        params = [p for p in model.parameters() if p.requires_grad]
        return adamw(params, lr=self.cfg.learning_rate, weight_decay=0.01)

    def loaders(self):

        collate = _Collate(self.processor, self.cfg.max_length, self.image_token)
        return (
            loader(
                self.train, self.cfg.batch_size, collate, shuffle=True, num_workers=self.num_workers
            ),
            # its workers end after each validation: kept, they doubled the decoding
            # processes per GPU for a pass a few minutes apart
            loader(
                self.val,
                self.cfg.batch_size,
                collate,
                num_workers=self.num_workers,
                persistent=False,
            ),
        )

    def throughput(self, batch) -> dict[str, int]:
        """What the loop counts per second: images and the language model's tokens."""
        return {"images": batch["n_images"], "tokens": batch["n_tokens"]}

    def loss(self, model, batch):
        n = batch["n_images"]
        self.unreadable += batch["unreadable"]
        out = model(**{k: v for k, v in batch.items() if k not in BATCH_COUNTS})
        if not n:  # nothing readable: a zero that still went through the model
            return out.logits.float().sum() * 0.0, 0
        return out.loss * n, n

    def validate(self, model, loader, acc) -> dict:
        total = torch.zeros(2, device=acc.device)
        model.eval()
        with torch.no_grad():
            for batch in loader:
                loss_sum, n = self.loss(model, batch)
                total += torch.stack(
                    [loss_sum.detach().float(), torch.tensor(float(n), device=acc.device)]
                )
        total = acc.reduce(total, "sum")
        dropped = acc.reduce(torch.tensor([float(self.unreadable)], device=acc.device), "sum")
        self.unreadable = 0
        return {
            "val_loss": float(total[0] / total[1].clamp(min=1)),
            "unreadable_images": int(dropped.item()),
        }

    def save_best(self, model, directory: Path) -> None:
        model.save_pretrained(directory / ADAPTER_DIR)

    def load_best(self, directory: Path) -> Path:
        return directory / ADAPTER_DIR


def train_blip2(
    cfg: Blip2LoraConfig,
    train,
    val,
    out: Path,
    resume: bool = False,
    cancel=None,
    num_workers: int | None = None,
) -> list[dict]:
    """Fit LoRA adapters with the one training loop on two ``caption_stream.CaptionImages``
    (images decoded as batches are drawn, in ``num_workers`` processes); the best epoch's
    adapter (validation loss) is saved in ``out``. Each epoch's history says how many
    images could not be read (``unreadable_images``: skipped, never a crash)."""
    import shutil

    from accelerate import PartialState

    plan = training_plan(cfg)  # before loading anything: refused here if it cannot fit
    if _local_rank() == 0 and os.environ.get("RANK", "0") == "0":
        # (no PartialState here: created before the trainer's Accelerator, it would fix the
        # process group without cpu=True and a CPU DDP run would become N lone processes)
        print(describe(plan.table, plan), flush=True)
    cfg.precision = plan.name  # blip2_lora.json and the model card record what ran
    cfg.plan = plan.record()
    adapter = _Blip2Adapter(cfg, train, val, num_workers)
    adapter.plan = plan
    loop = LoopConfig(
        epochs=cfg.epochs,
        patience=cfg.patience,
        grad_accum=cfg.grad_accum,
        clip_grad_norm=1.0,
        mixed_precision=plan.mixed_precision,
        seed=cfg.seed,
        resume=resume,
        schedule="constant",
    )
    best, history = fit(adapter, loop, out, cancel=cancel)
    if PartialState().is_main_process:
        if (out / ADAPTER_DIR).resolve() != best.resolve():
            shutil.rmtree(out / ADAPTER_DIR, ignore_errors=True)
            shutil.copytree(best, out / ADAPTER_DIR)
        processor = adapter.processor
        processor.save_pretrained(out / "processor")
        (out / CONFIG_FILE).write_text(
            json.dumps({**asdict(cfg), "base": base_reference(_base_path(cfg), out)}, indent=2)
        )
        peft_cfg = out / ADAPTER_DIR / "adapter_config.json"
        if peft_cfg.is_file():  # peft records the base's absolute path: keep its name only
            raw = json.loads(peft_cfg.read_text())
            raw["base_model_name_or_path"] = _base_path(cfg).name
            peft_cfg.write_text(json.dumps(raw, indent=2))
    return history


GENERATION: dict[str, Any] = {  # generate()'s keyword arguments
    "max_new_tokens": 60,
    "min_new_tokens": 5,
    "num_beams": 3,
    "no_repeat_ngram_size": 3,
    "repetition_penalty": 1.2,
}


def base_reference(base: Path, out: Path) -> dict:
    """How an adapter names its (multi-GB, never copied) base: the folder name, the path
    relative to the adapter, and the hash of its config.json — no absolute path."""
    import os

    return {
        "name": base.name,
        "relative": os.path.relpath(base.resolve(), out.resolve()),
        "config_sha256": file_sha256(base / "config.json"),
    }


def find_base(ref: str | dict, directory: Path, models_dir: Path | None = None) -> Path:
    """The base directory for an adapter: next to it as when it was trained, or a folder of
    that name under ``models_dir`` (MEDAI_MODELS_DIR, passed by the caller); its config.json
    must be the one trained on."""

    if isinstance(ref, str):  # adapters saved before base references
        return Path(ref)
    candidates = [directory / ref["relative"]]
    if models_dir is not None:
        candidates.append(Path(models_dir) / ref["name"])
    for base in candidates:
        if (base / "config.json").is_file():
            if file_sha256(base / "config.json") != ref["config_sha256"]:
                raise ModelLoadError(
                    f"{base}: not the BLIP-2 base this adapter was trained on (config.json differs)"
                )
            return base
    elsewhere = f" or {candidates[1]}" if len(candidates) > 1 else " or under MEDAI_MODELS_DIR"
    raise ModelLoadError(
        f"{directory}: BLIP-2 base {ref['name']!r} not found; put it at "
        f"{candidates[0].resolve()}{elsewhere}"
    )


def inference_load_kwargs(precision: str, base: Path) -> dict:
    """How a captioner loads its base: bf16 on GPUs with bf16, fp16 on older CUDA GPUs, fp32
    on CPU; a base trained quantised (int8, nf4) is quantised the same way on CUDA when
    bitsandbytes is installed."""
    if not torch.cuda.is_available():
        return {"dtype": torch.float32}
    if precision in ("int8", "nf4") and bitsandbytes_installed():
        plan = plan_settings(precision, bf16=torch.cuda.is_bf16_supported())
        return {
            "dtype": plan.torch_dtype,
            "device_map": {"": torch.cuda.current_device()},
            "quantization_config": _quantisation_config(plan, load_config(base)),
        }
    return {"dtype": torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16}


class Blip2Captioner(CaptionPredict):
    """A BLIP-2 base directory plus a LoRA adapter, behind the retrieval captioner's interface."""

    reads_colour = True  # trained on RGB: ``predict`` and scoring read images in colour

    def __init__(self, directory: Path, card=None, models_dir: Path | None = None) -> None:
        from peft import PeftModel
        from transformers import Blip2ForConditionalGeneration, Blip2Processor

        cfg = Blip2LoraConfig.from_dict(json.loads((directory / CONFIG_FILE).read_text()))
        base_dir = find_base(cfg.base, directory, models_dir)
        kwargs = inference_load_kwargs(cfg.precision, base_dir)
        base = Blip2ForConditionalGeneration.from_pretrained(
            base_dir, local_files_only=True, **kwargs
        )
        self.model = PeftModel.from_pretrained(base, directory / ADAPTER_DIR).eval()
        self.processor = Blip2Processor.from_pretrained(
            directory / "processor", local_files_only=True
        )
        self.card, self.cfg = card, cfg
        if torch.cuda.is_available() and "quantization_config" not in kwargs:
            self.model.to("cuda")  # a quantised base is placed on its GPU as it loads

    def caption_pixels(self, pixels: list[np.ndarray], **generation) -> list[dict]:
        """Captions for RGB uint8 (``caption_stream.decode``) or gray float images."""
        images = [_rgb_image(p) for p in pixels]
        enc = self.processor(images=images, return_tensors="pt").to(self.model.device)
        enc["pixel_values"] = enc["pixel_values"].to(self.model.dtype)
        with torch.no_grad():
            ids = self.model.generate(**enc, **{**GENERATION, **generation})
        texts = self.processor.batch_decode(ids, skip_special_tokens=True)
        return [
            {"caption": " ".join(t.split()), "status": "ai_suggestion", "method": "blip2-lora"}
            for t in texts
        ]
