"""Which precision a BLIP-2 + LoRA training can run in on this hardware, decided from the
model's ``config.json`` before a single weight is read.

Why: the real BLIP-2-OPT-6.7B is 7.75 B parameters — 15.5 GB in bf16, 31 GB in fp32. It
trained on an H200 (bf16, 17.5 GiB peak), but the reference system trained on 2 × T4 (16 GB,
no bf16), where the bf16 weights alone do not fit with room to train. Finding that out by
loading 15 GB and running out of memory minutes later is the failure this module prevents:
each plan's memory is estimated from the configuration (the model is built on the meta
device, no memory, no weights), the first plan that fits the GPU is chosen, the table is
printed, and what cannot fit or cannot run here is refused with the reason and what would fit.

The plans, in order of preference:

* ``bf16`` — base and activations in bf16 (GPUs with bf16: compute capability 8.0+).
* ``fp16`` — frozen base in fp16, every trainable parameter in fp32, fp16 autocast with a
  gradient scaler (Accelerate's ``mixed_precision="fp16"``). BLIP-2-OPT's loss goes to NaN
  when the *trainable* weights are fp16; frozen fp16 weights under autocast are the standard
  mixed-precision recipe, so the trainables are kept fp32 and a plan with fp16 trainables is
  what is refused (``blip2.load_base``).
* ``fp32`` — everything fp32 (the only plan on CPU, unless bf16 is asked for).
* ``int8`` — bitsandbytes LLM.int8() base (CUDA), trainables fp32.
* ``nf4`` — 4-bit QLoRA base (nf4, double quantisation, bf16 compute where supported, else
  fp16), trainables fp32.

The estimate per GPU (DDP keeps a whole copy of the model on every GPU, so the budget is one
GPU's memory, never the sum) is the sum of these terms, each named in the printed table:

``weights``
    The frozen base as loaded: 2 B/parameter in bf16; in fp16 the same except the modules
    transformers keeps in fp32 when loading in fp16 (``_keep_in_fp32_modules``: the Q-Former
    and the query tokens); 4 B in fp32; for int8 the ``nn.Linear`` weights bitsandbytes
    quantises at 1 B plus a fp32 scale per output row, for nf4 at 0.5 B plus the block
    absmax (1 B per 64 weights with double quantisation, plus a fp32 per 256 blocks), and
    every other parameter at 4 B — ``prepare_model_for_kbit_training`` casts every
    non-quantised parameter to fp32. What bitsandbytes leaves unquantised is computed with
    transformers' own rules: the output embedding (the tied ``lm_head``), the last module,
    ``_keep_in_fp32_modules``, plus ``language_projection``, which is trained.
``trainable``
    LoRA A and B of every targeted projection (r × (in + out) each) and the trainable copy of
    ``language_projection`` (PEFT's ``modules_to_save``, beside the frozen original): 16 B per
    parameter — fp32 weight, fp32 gradient, AdamW's two fp32 moments.
``activations``
    The language model only: the vision encoder and the Q-Former are frozen and receive no
    gradient, so autograd keeps nothing of theirs. Per layer ≈ 34·T·h bytes at 16-bit
    (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
    Models"; without the attention-score term, which SDPA does not keep) for T tokens in the
    batch — batch × (query tokens + text tokens) — and hidden size h; × L layers. With
    gradient checkpointing, each layer's 16-bit input (2·T·h) plus one layer recomputed
    (34·T·h). Doubled in fp32. An upper bound for frozen layers with LoRA (a frozen linear
    keeps no input for its weight gradient).
``logits``
    T × vocabulary: the logits at activation precision, the fp32 copy the loss takes, the
    fp32 copy Accelerate returns, and the fp32 gradient (12 B + 2 or 4 B per entry).
``dequantised``
    int8/nf4: the largest quantised weight dequantised to 16-bit, forward and backward.
``cuda``
    A fixed 1 GiB for the CUDA context, cuBLAS workspaces and allocator slack (0 on CPU).

Checked against real runs on an H200 (tests/reporting/captioning/test_blip2_plan.py). Batch 8, ~483
tokens: bf16 estimate 18.0 GiB for a 17.5 GiB peak, 16.2 GiB with gradient checkpointing for
15.5 GiB. ``make gpu-check`` (2026-11-26, batch 8 × (32 query + 8 text) = 320 tokens): bf16
17.3 GiB for a 16.5 GiB peak, nf4 7.9 for 7.8; int8 measured 12.5 GiB where these terms gave
11.2 — bitsandbytes' ``MatMul8bitLt`` keeps each quantised linear's 16-bit input for its
backward (``ctx.tensors``; a frozen 16-bit linear keeps none) and makes an fp16 cast and an
int8 copy of it in every call, so the int8 plan counts its activations twice (12.5 GiB). That
factor rests on one measured point; a run at another token count should check it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from medai.core.errors import MedaiError
from medai.core.options import lookup

GIB = 2**30
BUDGET_FRACTION = 0.92  # of one GPU's total memory: allocator fragmentation and other processes
CUDA_OVERHEAD = GIB
ACTIVATION_FACTOR = 34  # bytes per token, hidden unit and layer at 16-bit (Korthikanti et al.)
CHECKPOINT_FACTOR = 2  # the 16-bit layer input kept per layer with gradient checkpointing
TRAINABLE_BYTES = 16  # fp32 weight + fp32 gradient + AdamW's two fp32 moments
LOGIT_BYTES = 12  # fp32 loss copy + fp32 copy Accelerate returns + fp32 gradient
INT8_ROW_SCALE = 4  # fp32 per output row (LLM.int8's SCB)
# LLM.int8() keeps every quantised linear's input for its backward (a frozen 16-bit linear
# keeps none) and makes fp16 and int8 copies of it in each call: measured on an H200, the int8
# peak exceeded the other terms by the activation term a second time (module docstring)
INT8_ACTIVATION_SCALE = 2
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)  # packed 4-bit + double-quantised block absmax
MODULES_TO_SAVE = ("language_projection",)  # trained in full; never quantised
PLAN_ORDER = ("bf16", "fp16", "fp32", "int8", "nf4")
PRECISIONS = ("auto", *PLAN_ORDER)

# LoRA targets per language-model family (module-name regexes, language model only)
LORA_TARGETS = {
    "opt": r".*language_model.*\.(q_proj|k_proj|v_proj|out_proj)$",
    "t5": r".*language_model.*\.(q|k|v|o)$",
    "default": r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)$",
}


def lora_target(text_model_type: str) -> str:
    if text_model_type in ("t5", "mt5", "umt5"):
        return LORA_TARGETS["t5"]
    return LORA_TARGETS.get(text_model_type, LORA_TARGETS["default"])


BF16_CAPABILITY = (8, 0)

_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
_DESCRIPTIONS = {
    "bf16": "bf16 base, bf16 autocast",
    "fp16": "fp16 base, fp32 trainables, fp16 autocast + gradient scaler",
    "fp32": "fp32 throughout",
    "int8": "8-bit base (bitsandbytes), fp32 trainables, {mp} autocast",
    "nf4": "4-bit nf4 base (QLoRA, double quantisation, {mp} compute), fp32 trainables",
}


class PlanRefused(MedaiError, ValueError):
    """A precision plan that cannot run here or does not fit; the message has the table of
    every plan, the GPU's memory and what would fit."""

    code = "invalid"

    def __init__(self, message: str, plans: list[Plan], advice: list[str]) -> None:
        super().__init__(message)
        self.plans, self.advice = plans, advice


@dataclass(frozen=True)
class GpuInfo:
    """The GPUs one training would use; with several, the smallest and least capable one
    (every DDP process holds a whole copy, so the smallest GPU decides)."""

    name: str
    total_bytes: int
    bf16: bool
    capability: tuple[int, int]
    count: int = 1
    # what is free now on the fullest of them (another process, the served models): None for
    # a described GPU, whose whole memory is assumed to be the training's
    free_bytes: int | None = None

    def describe(self) -> str:
        count = f"{self.count} × " if self.count > 1 else ""
        each = " each" if self.count > 1 else ""
        bf16 = "bf16" if self.bf16 else "no bf16"
        return (
            f"{count}{self.name} ({self.total_bytes / GIB:.1f} GiB{each}, {bf16}, compute "
            f"capability {self.capability[0]}.{self.capability[1]})"
        )


def detect_gpus() -> GpuInfo | None:
    """The local CUDA GPUs from torch, or None without one."""
    import torch

    if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
        return None
    props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
    smallest = min(props, key=lambda p: p.total_memory)
    capability = min((p.major, p.minor) for p in props)
    names = sorted({p.name for p in props})
    try:
        free = min(int(torch.cuda.mem_get_info(i)[0]) for i in range(len(props)))
    except RuntimeError:  # a GPU that cannot be queried now: its total is the best guess
        free = None
    return GpuInfo(
        name=" / ".join(names),
        total_bytes=int(smallest.total_memory),
        bf16=capability >= BF16_CAPABILITY,
        capability=capability,
        count=len(props),
        free_bytes=free,
    )


def host_memory_bytes() -> int:
    """This machine's RAM (the budget of a CPU training)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not POSIX
        return 0


def bitsandbytes_installed() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


@dataclass(frozen=True)
class Setting:
    """What every plan of one table shares: the hardware, the budget and the batch."""

    device: str
    on_gpu: bool
    budget_bytes: int
    budget_fraction: float
    parameters: int
    trainable: int
    batch_size: int
    query_tokens: int
    tokens: int
    gradient_checkpointing: bool
    lora_r: int

    @property
    def tokens_in_batch(self) -> int:
        return self.batch_size * (self.query_tokens + self.tokens)


@dataclass
class Plan:
    """One way to hold and train the model: how the base is loaded, the training loop's
    mixed precision, and (once estimated) the bytes per GPU by term."""

    name: str
    dtype: str  # torch dtype of the base's non-quantised parameters as loaded
    quantisation: str | None  # None | int8 | nf4
    mixed_precision: str  # the training loop's: bf16 | fp16 | no
    terms: dict[str, int] = field(default_factory=dict)
    fits: bool | None = None
    why_not: str | None = None  # why it cannot run on this hardware / software at all
    setting: Setting | None = field(default=None, repr=False)
    table: list[Plan] = field(default_factory=list, repr=False)  # every plan, when chosen
    largest_batch: int | None = None  # when chosen on a GPU: the biggest batch that fits it

    @property
    def total_bytes(self) -> int:
        return sum(self.terms.values())

    @property
    def runs(self) -> bool:
        return self.why_not is None

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self.name].format(mp=self.mixed_precision)

    def record(self) -> dict[str, Any]:
        """What a trained captioner keeps of the plan it ran (``Blip2LoraConfig.plan``, the
        model card): ``generation_batch`` reads its memory back to caption the test part."""
        setting = self.setting
        return {
            "name": self.name,
            "description": self.description,
            "device": setting.device if setting else None,
            "estimate_bytes": self.total_bytes,
            "terms_bytes": self.terms,
            "budget_bytes": setting.budget_bytes if setting else None,
            "on_gpu": bool(setting and setting.on_gpu),
            "largest_batch": self.largest_batch,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "dtype": self.dtype,
            "quantisation": self.quantisation,
            "mixed_precision": self.mixed_precision,
            "runs": self.runs,
            "fits": self.fits,
            "why_not": self.why_not,
            "estimate_bytes": self.total_bytes,
            "estimate_gib": round(self.total_bytes / GIB, 2),
            "terms_bytes": self.terms,
        }


def plan_settings(name: str, bf16: bool = True) -> Plan:
    """The loading and loop settings of plan ``name`` (no estimate); ``bf16``: whether the GPU
    supports it (the quantised plans' compute dtype)."""

    half = ("bfloat16", "bf16") if bf16 else ("float16", "fp16")
    dtype, mp, quant = lookup(
        {
            "bf16": ("bfloat16", "bf16", None),
            "fp16": ("float16", "fp16", None),
            "fp32": ("float32", "no", None),
            "int8": (*half, "int8"),
            "nf4": (*half, "nf4"),
        },
        name,
        "precision plan",
    )
    return Plan(name=name, dtype=dtype, quantisation=quant, mixed_precision=mp)


def load_config(base: str | Path | Any):
    """A ``Blip2Config`` from a BLIP-2 directory's config.json (no weight is read), a dict, or
    a config as is."""
    from transformers import Blip2Config

    if isinstance(base, Blip2Config):
        return base
    if isinstance(base, dict):
        return Blip2Config.from_dict(base)
    path = Path(base)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: not a Hugging Face BLIP-2 directory (no config.json)")
    return Blip2Config.from_pretrained(path, local_files_only=True)


def _meta_model(config):
    """The model on the meta device: shapes and module names, no memory, no weights."""
    from accelerate import init_empty_weights
    from transformers import Blip2ForConditionalGeneration

    with init_empty_weights():
        model = Blip2ForConditionalGeneration(config)
    model.tie_weights()  # lm_head shares the input embedding, as after from_pretrained
    return model


def _default_skips(model) -> list[str]:
    """What transformers' bitsandbytes quantisers leave unquantised by default: the output
    embedding, tied weights and the last module."""
    try:
        from transformers.quantizers.base import get_keys_to_not_convert
    except ImportError:  # another transformers layout: the output embedding at least
        out = model.get_output_embeddings()
        return [n for n, m in model.named_modules() if m is out]
    return list(get_keys_to_not_convert(model))


def _quantised(name: str, skips: list[str]) -> bool:
    try:
        from transformers.quantizers.quantizers_utils import should_convert_module
    except ImportError:
        return not any(
            name == s or name.endswith("." + s) or name.startswith(s + ".") for s in skips
        )
    return should_convert_module(name, skips)


def quantisation_skips(config) -> list[str]:
    """Modules bitsandbytes must leave in floating point: its defaults plus the trained
    ``language_projection`` (passed as ``llm_int8_skip_modules``, which replaces the
    defaults, so both are listed)."""
    return sorted({*_default_skips(_meta_model(load_config(config))), *MODULES_TO_SAVE})


@dataclass(frozen=True)
class ModelCounts:
    """Parameter counts of one configuration, from the meta model."""

    parameters: int
    keep_fp32: int  # in _keep_in_fp32_modules: fp32 when loading in fp16
    quantised: int  # nn.Linear weights bitsandbytes quantises
    int8_bytes: int  # those in int8 with their fp32 row scales
    largest_quantised: int
    lora_per_rank: int  # sum of (in + out) over the LoRA-targeted linears
    modules_to_save: int
    hidden: int
    layers: int
    vocab: int
    query_tokens: int

    def trainable(self, lora_r: int) -> int:
        return lora_r * self.lora_per_rank + self.modules_to_save


@lru_cache(maxsize=8)
def _counts(config_json: str) -> ModelCounts:
    import torch
    from transformers import Blip2Config, PreTrainedConfig

    config = Blip2Config.from_dict(json.loads(config_json))
    model = _meta_model(config)
    skips = sorted({*_default_skips(model), *MODULES_TO_SAVE})
    keep = tuple(getattr(model, "_keep_in_fp32_modules", None) or ())
    text = cast(PreTrainedConfig, config.text_config)  # Blip2Config makes it a config
    target = re.compile(lora_target(text.model_type))
    quantised = int8_bytes = largest = lora = 0
    for name, module in model.named_modules():
        if type(module) is torch.nn.Linear:
            if _quantised(name, [*skips, *keep]):
                n = module.weight.numel()
                quantised += n
                int8_bytes += n + INT8_ROW_SCALE * module.out_features
                largest = max(largest, n)
            if target.fullmatch(name):
                lora += module.in_features + module.out_features
    keep_fp32 = to_save = 0
    for name, p in model.named_parameters():
        top = name.split(".")[0]
        keep_fp32 += p.numel() if top in keep else 0
        to_save += p.numel() if top in MODULES_TO_SAVE else 0
    layers = text.num_hidden_layers + (
        getattr(text, "num_decoder_layers", 0) if getattr(text, "is_encoder_decoder", False) else 0
    )
    return ModelCounts(
        parameters=sum(p.numel() for p in model.parameters()),
        keep_fp32=keep_fp32,
        quantised=quantised,
        int8_bytes=int8_bytes,
        largest_quantised=largest,
        lora_per_rank=lora,
        modules_to_save=to_save,
        hidden=text.hidden_size,
        layers=layers,
        vocab=text.vocab_size,
        query_tokens=config.num_query_tokens,
    )


def model_counts(config) -> ModelCounts:
    config = load_config(config)
    return _counts(json.dumps(config.to_dict(), sort_keys=True, default=str))


def estimate(
    counts: ModelCounts,
    plan: Plan,
    batch_size: int,
    tokens: int,
    lora_r: int,
    gradient_checkpointing: bool,
    on_gpu: bool = True,
) -> dict[str, int]:
    """Bytes per GPU by term (see the module docstring) for ``batch_size`` examples of
    ``tokens`` text tokens each (plus the query tokens)."""
    rest = counts.parameters - counts.quantised
    weights: float  # bytes (nf4: a fraction per parameter)
    if plan.quantisation == "int8":
        weights = counts.int8_bytes + 4 * rest
    elif plan.quantisation == "nf4":
        weights = counts.quantised * NF4_BYTES + 4 * rest
    elif plan.dtype == "float16":
        weights = 2 * (counts.parameters - counts.keep_fp32) + 4 * counts.keep_fp32
    else:
        weights = _DTYPE_BYTES[plan.dtype] * counts.parameters
    act = 4 if plan.mixed_precision == "no" else 2
    t, h, layers = batch_size * (counts.query_tokens + tokens), counts.hidden, counts.layers
    if gradient_checkpointing:
        activations = (CHECKPOINT_FACTOR * layers + ACTIVATION_FACTOR) * t * h * act / 2
    else:
        activations = ACTIVATION_FACTOR * t * h * layers * act / 2
    if plan.quantisation == "int8":
        activations *= INT8_ACTIVATION_SCALE
    terms = {
        "weights": int(weights),
        "trainable": TRAINABLE_BYTES * counts.trainable(lora_r),
        "activations": int(activations),
        "logits": t * counts.vocab * (act + LOGIT_BYTES),
    }
    if plan.quantisation:
        terms["dequantised"] = 2 * 2 * counts.largest_quantised
    terms["cuda"] = CUDA_OVERHEAD if on_gpu else 0
    return terms


# Captioning the test part: one ``generate`` call per batch, its time set by the number of
# decoding steps far more than by the images in the call (H200, OPT-6.7B, 3 beams: 0.69 s an
# image at batch 8 in make gpu-check, 0.17 at batch 32 in benchmarks/blip2_step_profile.py);
# a training batch sized for the backward pass is the wrong limit for it
GENERATION_BATCH_CAP = 32
GENERATION_MEMORY_SHARE = 0.5  # of the memory the training terms leave free: allocator slack


def generation_batch(
    config,
    plan: dict | None,
    training_batch: int,
    beams: int,
    new_tokens: int,
    prompt_tokens: int = 0,
    cap: int = GENERATION_BATCH_CAP,
) -> int:
    """Images per ``generate`` call when a trained captioner captions its test part: as many
    as half the memory left beside the weights holds of the language model's key/value cache
    (2 · layers · hidden at 16-bit — 32-bit under fp32 — per token, for ``beams`` ×
    (query + prompt + new) tokens an image; an upper bound where the model shares its keys
    across heads), between the training batch and ``cap``. ``plan`` is what ``train_blip2``
    records (``Blip2LoraConfig.plan``); on CPU (a budget of host RAM, where a call costs
    what its images cost) the training batch."""
    if not plan or not plan.get("on_gpu") or not plan.get("budget_bytes"):
        return training_batch
    if training_batch >= cap:
        return training_batch
    counts = model_counts(config)
    terms = plan["terms_bytes"]
    held = sum(terms.get(k, 0) for k in ("weights", "dequantised", "cuda"))
    free = max(0, plan["budget_bytes"] - held) * GENERATION_MEMORY_SHARE
    width = 4 if plan.get("name") == "fp32" else 2
    per_token = 2 * counts.layers * counts.hidden * width
    per_image = beams * (counts.query_tokens + prompt_tokens + new_tokens) * per_token
    return int(min(cap, max(training_batch, free // per_image)))


def _why_not(name: str, gpu: GpuInfo | None, bitsandbytes: bool) -> str | None:
    if name == "bf16" and gpu is not None and not gpu.bf16:
        return (
            f"needs bf16 (compute capability 8.0+); {gpu.name} is "
            f"{gpu.capability[0]}.{gpu.capability[1]}"
        )
    if name in ("fp16", "int8", "nf4") and gpu is None:
        return "needs a CUDA GPU"
    if name in ("int8", "nf4") and not bitsandbytes:
        return "needs bitsandbytes (pip install bitsandbytes)"
    return None


def evaluate_plans(
    config,
    gpu: GpuInfo | None,
    batch_size: int = 8,
    tokens: int = 32,
    lora_r: int = 16,
    gradient_checkpointing: bool = False,
    bitsandbytes_available: bool | None = None,
    budget_fraction: float = BUDGET_FRACTION,
    host_bytes: int | None = None,
) -> list[Plan]:
    """Every plan with its estimate, whether it fits one GPU's budget (the host's RAM on CPU)
    and why it cannot run here, if it cannot."""
    if batch_size < 1 or tokens < 1 or lora_r < 1:
        raise ValueError("batch size, tokens and LoRA rank must be at least 1")
    counts = model_counts(config)
    bnb = bitsandbytes_installed() if bitsandbytes_available is None else bitsandbytes_available
    if gpu is not None:
        device, total = gpu.describe(), gpu.total_bytes
    else:
        total = host_memory_bytes() if host_bytes is None else host_bytes
        device = f"CPU, no CUDA GPU ({total / GIB:.1f} GiB RAM)"
    budget = int(total * budget_fraction)
    if gpu is not None and gpu.free_bytes is not None:
        # a GPU shared with another process (the served models, a second training) has only
        # what is free now; the CUDA context is counted in the estimate, not here
        budget = min(budget, int(gpu.free_bytes))
        if gpu.free_bytes < gpu.total_bytes * budget_fraction:
            device += f", {gpu.free_bytes / GIB:.1f} GiB free now"
    setting = Setting(
        device=device,
        on_gpu=gpu is not None,
        budget_bytes=budget,
        budget_fraction=budget_fraction,
        parameters=counts.parameters,
        trainable=counts.trainable(lora_r),
        batch_size=batch_size,
        query_tokens=counts.query_tokens,
        tokens=tokens,
        gradient_checkpointing=gradient_checkpointing,
        lora_r=lora_r,
    )
    plans = []
    for name in PLAN_ORDER:
        plan = plan_settings(name, bf16=gpu.bf16 if gpu is not None else True)
        plan.terms = estimate(
            counts, plan, batch_size, tokens, lora_r, gradient_checkpointing, on_gpu=gpu is not None
        )
        plan.fits = plan.total_bytes <= setting.budget_bytes
        plan.why_not, plan.setting = _why_not(name, gpu, bnb), setting
        plans.append(plan)
    return plans


def _auto_order(gpu: GpuInfo | None) -> tuple[str, ...]:
    return PLAN_ORDER if gpu is not None else ("fp32",)  # bf16 on CPU only when asked


def _first(plans: list[Plan], names: tuple[str, ...]) -> Plan | None:
    return next((p for p in plans if p.name in names and p.runs and p.fits), None)


def _advice(
    config,
    gpu: GpuInfo | None,
    batch_size: int,
    tokens: int,
    lora_r: int,
    gradient_checkpointing: bool,
    bnb: bool,
    names: tuple[str, ...],
    budget_fraction: float,
    host_bytes: int | None,
) -> list[str]:
    """What would fit instead: checkpointing, a smaller batch, bitsandbytes, a bigger GPU."""

    def evaluate(b: int, gc: bool, with_bnb: bool = bnb) -> list[Plan]:
        return evaluate_plans(
            config, gpu, b, tokens, lora_r, gc, with_bnb, budget_fraction, host_bytes
        )

    def fits(p: Plan) -> str:
        return f"{p.name} would fit ({p.total_bytes / GIB:.1f} GiB)"

    advice = []
    if not gradient_checkpointing and (p := _first(evaluate(batch_size, True), names)):
        advice.append(f"try --gradient-checkpointing: {fits(p)}")
    for gc in (True,) if gradient_checkpointing else (False, True):
        smaller = next(
            ((b, p) for b in range(batch_size - 1, 0, -1) if (p := _first(evaluate(b, gc), names))),
            None,
        )
        if smaller:
            flag = " --gradient-checkpointing" if gc and not gradient_checkpointing else ""
            advice.append(
                f"try a smaller batch, --batch-size {smaller[0]}{flag}: {fits(smaller[1])}"
            )
            break
    quantised = tuple(n for n in names if n in ("int8", "nf4"))
    if (
        gpu is not None
        and not bnb
        and quantised
        and (p := _first(evaluate(batch_size, gradient_checkpointing, True), quantised))
    ):
        advice.append(f"pip install bitsandbytes: {fits(p)}")
    if gpu is None:
        advice.append("a CUDA GPU adds the fp16, int8 and nf4 plans")
    least = [p for p in evaluate(1, True) if p.name in names and p.runs]
    if least and not any(a.startswith(("try", "pip")) for a in advice):
        smallest = min(least, key=lambda p: p.total_bytes)
        advice.append(
            f"nothing fits this {'GPU' if gpu else 'machine'}: the smallest plan "
            f"({smallest.name}, batch 1, gradient checkpointing) needs "
            f"{smallest.total_bytes / GIB:.1f} GiB, a GPU of at least "
            f"{smallest.total_bytes / budget_fraction / GIB:.1f} GiB"
        )
    return advice


def choose_plan(
    config,
    gpus: GpuInfo | None,
    batch_size: int = 8,
    tokens: int = 32,
    lora_r: int = 16,
    gradient_checkpointing: bool = False,
    bitsandbytes_available: bool | None = None,
    requested: str = "auto",
    budget_fraction: float = BUDGET_FRACTION,
    host_bytes: int | None = None,
) -> Plan:
    """The plan to train with: ``requested`` if it runs here and fits, else (``auto``) the
    first of bf16, fp16, fp32, int8, nf4 that does (fp32 alone on CPU). Raises
    ``PlanRefused`` with the table and what would fit. ``gpus``: ``detect_gpus()`` or a
    description of the GPUs to plan for; ``tokens``: text tokens per example."""

    names = lookup(
        {"auto": _auto_order(gpus), **{n: (n,) for n in PLAN_ORDER}}, requested, "precision"
    )
    bnb = bitsandbytes_installed() if bitsandbytes_available is None else bitsandbytes_available
    plans = evaluate_plans(
        config,
        gpus,
        batch_size,
        tokens,
        lora_r,
        gradient_checkpointing,
        bnb,
        budget_fraction,
        host_bytes,
    )
    chosen = _first(plans, names)
    if chosen is not None:
        largest = (
            _largest_batch(model_counts(config), chosen, tokens, lora_r, gradient_checkpointing)
            if gpus is not None
            else None
        )
        return replace(chosen, table=plans, largest_batch=largest)
    setting = plans[0].setting
    assert setting is not None
    where = (
        f"one GPU's budget of {setting.budget_bytes / GIB:.1f} GiB"
        if gpus is not None
        else f"{setting.budget_bytes / GIB:.1f} GiB of RAM"
    )
    if requested == "auto":
        reason = f"no precision plan fits {where}"
    else:
        plan = next(p for p in plans if p.name == requested)
        reason = (
            f"--precision {requested} cannot run here: {plan.why_not}"
            if not plan.runs
            else f"--precision {requested} needs {plan.total_bytes / GIB:.1f} GiB per "
            f"GPU, more than {where}"
        )
    advice = _advice(
        config,
        gpus,
        batch_size,
        tokens,
        lora_r,
        gradient_checkpointing,
        bnb,
        names,
        budget_fraction,
        host_bytes,
    )
    if requested != "auto" and (auto := _first(plans, _auto_order(gpus))):
        advice.append(
            f"--precision auto would choose {auto.name} ({auto.total_bytes / GIB:.1f} GiB)"
        )
    raise PlanRefused(
        "\n".join([reason, describe(plans), *(f"- {a}" for a in advice)]), plans, advice
    )


def _largest_batch(
    counts: ModelCounts, plan: Plan, tokens: int, lora_r: int, gradient_checkpointing: bool
) -> int:
    """The biggest batch whose estimate fits ``plan``'s budget: the terms grow linearly with
    the batch (activations and logits), the rest is fixed."""
    assert plan.setting is not None

    def total(batch: int) -> int:
        return sum(estimate(counts, plan, batch, tokens, lora_r, gradient_checkpointing).values())

    per_example = total(2) - total(1)
    fixed = total(1) - per_example
    return max(0, int((plan.setting.budget_bytes - fixed) // max(1, per_example)))


_COLUMNS = ("weights", "trainable", "activations", "logits")


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return str(n)


def describe(plans: list[Plan], chosen: Plan | None = None) -> str:
    """The printed table: every plan, whether it runs here and fits, its estimate in GiB by
    term, and why not."""
    setting = plans[0].setting if plans else None
    lines = []
    if setting is not None:
        gc = "on" if setting.gradient_checkpointing else "off"
        lines += [
            f"BLIP-2 precision plans for {setting.device}; budget "
            f"{setting.budget_bytes / GIB:.1f} GiB"
            + (" per GPU (DDP keeps a whole copy on each)" if setting.on_gpu else "")
            + f" = {setting.budget_fraction:.0%} of its memory",
            f"{_count(setting.parameters)} parameters, LoRA r {setting.lora_r}: "
            f"{_count(setting.trainable)} trainable; batch {setting.batch_size} × "
            f"({setting.query_tokens} query + {setting.tokens} text tokens) = "
            f"{setting.tokens_in_batch} tokens; gradient checkpointing {gc}",
        ]
    head = ("plan", "runs", "fits", "GiB", *_COLUMNS, "other", "why not")
    rows: list[tuple[str, ...]] = [head]
    for p in plans:
        other = sum(v for k, v in p.terms.items() if k not in _COLUMNS)
        why = p.why_not or ("" if p.fits else "does not fit")
        mark = "*" if chosen is not None and p.name == chosen.name else ""
        rows.append(
            (
                p.name + mark,
                "yes" if p.runs else "no",
                "yes" if p.fits else "no",
                f"{p.total_bytes / GIB:.1f}",
                *(f"{p.terms.get(k, 0) / GIB:.2f}" for k in _COLUMNS),
                f"{other / GIB:.2f}",
                why,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    ]
    if chosen is not None:
        lines.append(
            f"chosen: {chosen.name}* — {chosen.description}, "
            f"{chosen.total_bytes / GIB:.1f} GiB per "
            f"{'GPU' if setting is None or setting.on_gpu else 'process'}"
        )
        if setting is not None and (chosen.largest_batch or 0) >= 2 * setting.batch_size:
            # a small batch on a big GPU waits on the host's kernel launches (the H200: batch
            # 32 took 0.176 s a step against 0.156-0.205 s at batch 8, docs/benchmarks/gpu.md)
            lines.append(
                f"by this estimate the GPU holds up to batch {chosen.largest_batch} in "
                f"{chosen.name} (--batch-size): on a big GPU a small batch leaves it waiting "
                f"on the host"
            )
    return "\n".join(line.rstrip() for line in lines)
