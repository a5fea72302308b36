"""BLIP-2 captioning fine-tuned with LoRA (PEFT), from a local Hugging Face BLIP-2 directory.

What the reference system learnt the hard way is built in: the vision encoder and the language
model stay frozen (LoRA adapters on the LLM's attention projections, the Q-Former→LLM projection
trained in full); bf16 on GPUs that support it and fp32 otherwise — fp16 training collapses the
loss to NaN on BLIP-2-OPT, so it is refused; optional 8-bit loading (bitsandbytes, GPU) and
gradient checkpointing for big models; early stopping on validation loss; only the adapter is
saved. Generation has a minimum length and repetition controls, so no empty or one-word captions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from medai.reporting.caption_predict import CaptionPredict

ADAPTER_DIR = "adapter"
CONFIG_FILE = "blip2_lora.json"

# LoRA targets per language-model family (module-name regexes, language model only)
LORA_TARGETS = {
    "opt": r".*language_model.*\.(q_proj|k_proj|v_proj|out_proj)$",
    "t5": r".*language_model.*\.(q|k|v|o)$",
    "default": r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)$",
}


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
    mixed_precision: str = "auto"  # auto | bf16 | no (fp16 is refused)
    load_in_8bit: bool = False
    gradient_checkpointing: bool = False
    max_length: int = 64
    seed: int = 13


def lora_target(text_model_type: str) -> str:
    if text_model_type in ("t5", "mt5", "umt5"):
        return LORA_TARGETS["t5"]
    return LORA_TARGETS.get(text_model_type, LORA_TARGETS["default"])


def _precision(requested: str) -> str:
    if requested == "fp16":
        raise ValueError("fp16 training of BLIP-2 is refused: its loss collapses to NaN (a "
                         "known pitfall); use bf16 on a GPU that supports it, or fp32 ('no')")
    if requested not in ("auto", "bf16", "no"):
        raise ValueError(f"mixed precision must be auto, bf16 or no, not {requested!r}")
    if requested == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return requested


def load_base(cfg: Blip2LoraConfig):
    """Model with LoRA adapters attached, and its processor (all from local files)."""
    from peft import LoraConfig, get_peft_model
    from transformers import Blip2ForConditionalGeneration, Blip2Processor

    base = Path(cfg.base)
    if not (base / "config.json").is_file():
        raise FileNotFoundError(f"{base}: not a Hugging Face BLIP-2 directory (no config.json)")
    kwargs: dict = {"local_files_only": True}
    if cfg.load_in_8bit:
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except ImportError:
            raise ValueError("--load-in-8bit needs bitsandbytes (pip install bitsandbytes) "
                             "and a CUDA GPU") from None
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
    model = Blip2ForConditionalGeneration.from_pretrained(base, **kwargs)
    processor = Blip2Processor.from_pretrained(base, local_files_only=True)
    if cfg.load_in_8bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    elif cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      bias="none", target_modules=lora_target(model.config.text_config.model_type),
                      modules_to_save=["language_projection"])
    return get_peft_model(model, lora), processor


class _Pairs(torch.utils.data.Dataset):
    def __init__(self, pixels: list[np.ndarray], captions: list[str]) -> None:
        self.pixels, self.captions = pixels, captions

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, i: int):
        from PIL import Image

        gray = (np.clip(self.pixels[i], 0, 1) * 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB"), self.captions[i]


def _collate(processor, max_length: int, image_token: int | None):
    def collate(batch):
        images, texts = zip(*batch, strict=True)
        enc = processor(images=list(images), text=list(texts), return_tensors="pt",
                        padding=True, truncation=True, max_length=max_length)
        labels = enc["input_ids"].clone()
        labels[enc["attention_mask"] == 0] = -100
        if image_token is not None:
            labels[labels == image_token] = -100  # the query-token placeholders are not text
        enc["labels"] = labels
        return dict(enc)
    return collate


class _Blip2Adapter:
    """BLIP-2 + LoRA's part of the one training loop (``core.trainer``)."""

    def __init__(self, cfg: Blip2LoraConfig, train, val) -> None:
        self.cfg, self.train, self.val = cfg, train, val
        self.processor, self.image_token = None, None

    def build(self):
        model, self.processor = load_base(self.cfg)
        self.image_token = getattr(model.config, "image_token_index", None)
        return model

    def optimizer(self, model):
        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.cfg.learning_rate, weight_decay=0.01)

    def loaders(self):
        collate = _collate(self.processor, self.cfg.max_length, self.image_token)
        return (torch.utils.data.DataLoader(_Pairs(*self.train), batch_size=self.cfg.batch_size,
                                            shuffle=True, collate_fn=collate),
                torch.utils.data.DataLoader(_Pairs(*self.val), batch_size=self.cfg.batch_size,
                                            collate_fn=collate))

    def loss(self, model, batch):
        n = len(batch["input_ids"])
        return model(**batch).loss * n, n

    def validate(self, model, loader, acc) -> dict:
        total = torch.zeros(2, device=acc.device)
        model.eval()
        with torch.no_grad():
            for batch in loader:
                loss_sum, n = self.loss(model, batch)
                total += torch.stack([loss_sum.detach().float(),
                                      torch.tensor(float(n), device=acc.device)])
        total = acc.reduce(total, "sum")
        return {"val_loss": float(total[0] / total[1].clamp(min=1))}

    def save_best(self, model, directory: Path) -> None:
        model.save_pretrained(directory / ADAPTER_DIR)

    def load_best(self, directory: Path) -> Path:
        return directory / ADAPTER_DIR


def train_blip2(cfg: Blip2LoraConfig, train: tuple[list[np.ndarray], list[str]],
                val: tuple[list[np.ndarray], list[str]], out: Path, resume: bool = False,
                cancel=None) -> list[dict]:
    """Fit LoRA adapters with the one training loop; the best epoch's adapter (validation
    loss) is saved in ``out``."""
    import shutil

    from accelerate import PartialState

    from medai.core.trainer import LoopConfig, fit

    adapter = _Blip2Adapter(cfg, train, val)
    loop = LoopConfig(epochs=cfg.epochs, patience=cfg.patience, grad_accum=cfg.grad_accum,
                      clip_grad_norm=1.0, mixed_precision=_precision(cfg.mixed_precision),
                      seed=cfg.seed, resume=resume, schedule="constant")
    best, history = fit(adapter, loop, out, cancel=cancel)
    if PartialState().is_main_process:
        if (out / ADAPTER_DIR).resolve() != best.resolve():
            shutil.rmtree(out / ADAPTER_DIR, ignore_errors=True)
            shutil.copytree(best, out / ADAPTER_DIR)
        processor = adapter.processor
        processor.save_pretrained(out / "processor")
        (out / CONFIG_FILE).write_text(json.dumps(
            {**asdict(cfg), "base": base_reference(Path(cfg.base), out)}, indent=2))
        peft_cfg = out / ADAPTER_DIR / "adapter_config.json"
        if peft_cfg.is_file():  # peft records the base's absolute path: keep its name only
            raw = json.loads(peft_cfg.read_text())
            raw["base_model_name_or_path"] = Path(cfg.base).name
            peft_cfg.write_text(json.dumps(raw, indent=2))
    return history


GENERATION = {"max_new_tokens": 60, "min_new_tokens": 5, "num_beams": 3,
              "no_repeat_ngram_size": 3, "repetition_penalty": 1.2}


def base_reference(base: Path, out: Path) -> dict:
    """How an adapter names its (multi-GB, never copied) base: the folder name, the path
    relative to the adapter, and the hash of its config.json — no absolute path."""
    import os

    from medai.core.registry import file_sha256

    return {"name": base.name, "relative": os.path.relpath(base.resolve(), out.resolve()),
            "config_sha256": file_sha256(base / "config.json")}


def find_base(ref: str | dict, directory: Path) -> Path:
    """The base directory for an adapter: next to it as when it was trained, or a folder of
    that name under MEDAI_MODELS_DIR; its config.json must be the one trained on."""
    from medai.core.registry import ModelLoadError, file_sha256
    from medai.settings import get_settings

    if isinstance(ref, str):  # adapters saved before base references
        return Path(ref)
    candidates = [directory / ref["relative"], get_settings().models_dir / ref["name"]]
    for base in candidates:
        if (base / "config.json").is_file():
            if file_sha256(base / "config.json") != ref["config_sha256"]:
                raise ModelLoadError(f"{base}: not the BLIP-2 base this adapter was trained "
                                     "on (config.json differs)")
            return base
    raise ModelLoadError(f"{directory}: BLIP-2 base {ref['name']!r} not found; put it at "
                         f"{candidates[0].resolve()} or {candidates[1]}")


class Blip2Captioner(CaptionPredict):
    """A BLIP-2 base directory plus a LoRA adapter, behind the retrieval captioner's interface."""

    def __init__(self, directory: Path, card=None) -> None:
        from peft import PeftModel
        from transformers import Blip2ForConditionalGeneration, Blip2Processor

        cfg = Blip2LoraConfig(**json.loads((directory / CONFIG_FILE).read_text()))
        dtype = torch.bfloat16 if _precision("auto") == "bf16" else torch.float32
        base = Blip2ForConditionalGeneration.from_pretrained(
            find_base(cfg.base, directory), local_files_only=True, dtype=dtype)
        self.model = PeftModel.from_pretrained(base, directory / ADAPTER_DIR).eval()
        self.processor = Blip2Processor.from_pretrained(directory / "processor",
                                                        local_files_only=True)
        self.card, self.cfg = card, cfg
        if torch.cuda.is_available():
            self.model.to("cuda")

    def caption_pixels(self, pixels: list[np.ndarray], **generation) -> list[dict]:
        images = [_Pairs([p], [""])[0][0] for p in pixels]
        enc = self.processor(images=images, return_tensors="pt").to(self.model.device)
        enc["pixel_values"] = enc["pixel_values"].to(self.model.dtype)
        with torch.no_grad():
            ids = self.model.generate(**enc, **{**GENERATION, **generation})
        texts = self.processor.batch_decode(ids, skip_special_tokens=True)
        return [{"caption": " ".join(t.split()), "status": "ai_suggestion", "method": "blip2-lora"}
                for t in texts]
