"""Where a BLIP-2 + LoRA training step's time goes (issue 48): the loader alone, the step on
batches already on the device (with and without autocast and gradient clipping), the
project's trainer on the same model, a profiler's top operators, and generation at two batch
sizes — one model load, one JSON report.

``make gpu-check`` measured 0.348 s a step (batch 8, ~305 tokens) through the trainer on one
H200 where a hand-written loop had taken 0.133 s (483 tokens); this says which part differs.
Built on ``gpu_common``'s synthetic ROCOv2 pairs and random-weight BLIP-2 (``--size full``:
OPT-6.7B; ``--size tiny`` runs anywhere in seconds — its format is tested on CPU).

    PYTHONPATH=src python3 benchmarks/blip2_step_profile.py --size full --work /tmp/gc \
        --out build/blip2-step-profile.json
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu_common  # benchmarks/ is on the path (above); it puts src/ there too

FORMAT = "medai-blip2-step-profile/1"


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _to_device(batch: dict, device) -> dict:
    import torch

    return {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
        for k, v in batch.items()
    }


def _datasets(work: Path, size: dict):
    """The synthetic pairs as train / validation ``CaptionImages`` (every eighth for validation)
    and the built base's directory."""
    from medai.reporting.captioning.caption_stream import CaptionImages

    spec = gpu_common.BLIP2_SPECS[size["blip2"]]
    data, images, words = gpu_common.synthetic_roco(
        work / "roco", size["pairs"], max(64, spec["image_size"])
    )
    base = work / f"blip2-{size['blip2']}"
    built_file = work / "built.json"
    if not built_file.is_file():
        built_file.write_text(json.dumps(gpu_common.build_blip2(base, size["blip2"], words)))
    with data.open(newline="") as f:
        rows = list(csv.DictReader(f))
    paths = [images / f"{r['ID']}.png" for r in rows]
    captions = [r["Caption"] for r in rows]
    val = [i for i in range(len(rows)) if i % 8 == 7]
    train = [i for i in range(len(rows)) if i % 8 != 7]
    return (
        CaptionImages([paths[i] for i in train], [captions[i] for i in train]),
        CaptionImages([paths[i] for i in val], [captions[i] for i in val]),
        base,
        json.loads(built_file.read_text()),
    )


def _steps(
    adapter,
    model,
    batches,
    autocast_dtype,
    clip: bool,
    backward: bool = True,
    fused: bool | None = None,
) -> float:
    """Seconds a step over ``batches`` (already on the device), the first two untimed;
    ``fused``: AdamW's fused kernel on (True) or off (False) instead of the adapter's choice."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = (
        adapter.optimizer(model)
        if fused is None
        else torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01, fused=fused)
    )
    device_type = "cuda" if torch.cuda.is_available() else "cpu"
    warm, timed = batches[:2], batches[2:]
    if not timed:
        raise ValueError(f"{len(batches)} batches: at least 3 are needed (2 untimed)")
    model.train()
    started = 0.0
    for i, batch in enumerate(warm + timed):
        if i == len(warm):
            _sync()
            started = time.perf_counter()
        ctx = (
            torch.autocast(device_type, dtype=autocast_dtype)
            if autocast_dtype is not None
            else contextlib.nullcontext()
        )
        if not backward:
            with torch.no_grad(), ctx:
                adapter.loss(model, batch)
            continue
        with ctx:
            loss_sum, n = adapter.loss(model, batch)
        (loss_sum / max(1, n)).backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    _sync()
    del optimizer
    return round((time.perf_counter() - started) / max(1, len(timed)), 4)


def _profile(adapter, model, batches, autocast_dtype, rows: int = 15) -> dict:
    """torch.profiler over a few steps: the operators taking the most device (or CPU) time,
    and how busy the device was."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.cuda.is_available()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    device_type = "cuda" if cuda else "cpu"
    optimizer = adapter.optimizer(model)
    model.train()
    _sync()
    started = time.perf_counter()
    with profile(activities=activities) as prof:
        for batch in batches:
            with torch.autocast(device_type, dtype=autocast_dtype):
                loss_sum, n = adapter.loss(model, batch)
            (loss_sum / max(1, n)).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        _sync()
    wall = time.perf_counter() - started

    def device_us(e) -> float:
        for name in ("self_device_time_total", "self_cuda_time_total"):
            if hasattr(e, name):
                return float(getattr(e, name))
        return 0.0

    events = prof.key_averages()
    key = device_us if cuda else (lambda e: float(e.self_cpu_time_total))
    top = sorted(events, key=key, reverse=True)[:rows]
    busy_us = _kernel_us(prof) if cuda else None
    return {
        "steps": len(batches),
        "wall_s": round(wall, 3),
        "device_busy_s": round(busy_us / 1e6, 3) if busy_us is not None else None,
        "top": [
            {
                "op": e.key,
                "calls": int(e.count),
                "self_device_ms": round(device_us(e) / 1e3, 2),
                "self_cpu_ms": round(float(e.self_cpu_time_total) / 1e3, 2),
            }
            for e in top
        ],
    }


def _kernel_us(prof) -> float:
    """Microseconds of GPU kernels: the device's own events only. Summing every row of the
    averages counts a kernel twice (its own row and the operator that launched it) and the
    user annotations (``Optimizer.step#…``) once more — the 2026-11-27 H200 report's
    ``device_busy_s`` (0.285 s for 3 steps) was that sum."""
    from torch.autograd import DeviceType

    return sum(
        e.time_range.elapsed_us()
        for e in prof.events()
        if e.device_type == DeviceType.CUDA and not getattr(e, "is_user_annotation", False)
    )


def _generation(adapter, model, dataset, batch: int, beams: int) -> dict:
    """One ``generate`` over ``batch`` images as ``Blip2Captioner.caption_pixels`` does."""
    import torch

    from medai.reporting.captioning.blip2 import GENERATION, _rgb_image

    images = [_rgb_image(dataset[i % len(dataset)][1]) for i in range(batch)]
    enc = adapter.processor(images=images, return_tensors="pt").to(model.device)
    enc["pixel_values"] = enc["pixel_values"].to(next(model.parameters()).dtype)
    model.eval()
    device_type = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.no_grad(), torch.autocast(device_type, dtype=torch.bfloat16):
        warm = {k: v[:2] for k, v in enc.items()}  # untimed: the first call's set-up
        model.generate(**warm, **{**GENERATION, "max_new_tokens": 5, "num_beams": beams})
    _sync()
    started = time.perf_counter()
    # the training model's trainables are fp32 beside a 16-bit base: autocast joins them (a
    # saved adapter is loaded in the base's dtype by ``Blip2Captioner``)
    with torch.no_grad(), torch.autocast(device_type, dtype=torch.bfloat16):
        ids = model.generate(**enc, **{**GENERATION, "num_beams": beams})
    _sync()
    seconds = time.perf_counter() - started
    return {
        "images": batch,
        "beams": beams,
        "seconds": round(seconds, 3),
        "s_per_image": round(seconds / batch, 4),
        "new_tokens": int(ids.shape[-1]),
    }


def _big_batches(adapter, dataset, batch_size: int, n: int, device) -> list[dict]:
    """``n`` batches of ``batch_size`` from the adapter's own collate, on the device."""
    from medai.reporting.captioning.blip2 import _Collate
    from medai.reporting.captioning.caption_stream import loader

    collate = _Collate(adapter.processor, adapter.cfg.max_length, adapter.image_token)
    out = []
    for batch in loader(dataset, batch_size, collate, shuffle=True, persistent=False):
        out.append(_to_device(batch, device))
        if len(out) == n:
            break
    return out


def _guarded(fn, *args, **kwargs):
    """``fn``'s result, or its error as a record: one failing part never loses the others."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # reported in the JSON, the run goes on
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}


def measure(work: Path, size_name: str = "full", steps: int = 12) -> dict:
    import torch

    from medai.core.trainer import LoopConfig, fit
    from medai.reporting.captioning.blip2 import Blip2LoraConfig, _Blip2Adapter, training_plan

    size = gpu_common.SIZES[size_name]
    work.mkdir(parents=True, exist_ok=True)
    train, val, base, built = _datasets(work, size)
    cfg = Blip2LoraConfig(base=str(base), batch_size=size["batch_size"], epochs=1)
    plan = training_plan(cfg)
    adapter = _Blip2Adapter(cfg, train, val)
    adapter.plan = plan
    started = time.perf_counter()
    model = adapter.build()
    load_s = time.perf_counter() - started
    device = next(p for p in model.parameters()).device
    train_dl, _ = adapter.loaders()

    # (a) the loader alone: an epoch of decoded, processed batches, nothing on the device
    started = time.perf_counter()
    first_s, cpu_batches = None, []
    for batch in train_dl:
        if first_s is None:
            first_s = time.perf_counter() - started
        cpu_batches.append(batch)
    loader_s = time.perf_counter() - started
    loader = {
        "batches": len(cpu_batches),
        "workers": train_dl.num_workers,
        "first_batch_s": round(first_s or 0.0, 3),
        "s_per_batch": round(loader_s / max(1, len(cpu_batches)), 4),
        "s_per_batch_after_first": round(
            (loader_s - (first_s or 0.0)) / max(1, len(cpu_batches) - 1), 4
        ),
    }
    n = min(len(cpu_batches), steps + 2)
    batches = [_to_device(cpu_batches[i % len(cpu_batches)], device) for i in range(n)]
    tokens = sum(b["n_tokens"] for b in batches) / max(1, len(batches))

    # (b) steps on batches already on the device
    half = plan.torch_dtype if plan.torch_dtype != torch.float32 else None
    if not torch.cuda.is_available():
        half = torch.bfloat16
    # (no variant without autocast: the fp32 trainables, the language projection among them,
    # cannot take a bf16 model's activations without it)
    step = {
        name: _guarded(_steps, adapter, model, batches, half, clip=clip, backward=backward)
        for name, clip, backward in (
            ("forward_only_autocast", False, False),
            ("autocast", False, True),
            ("autocast_clip", True, True),
        )
    }
    cuda = torch.cuda.is_available()
    for name, fused in (
        ("autocast_clip_foreach_adamw", False),
        ("autocast_clip_fused_adamw", True),
    ):
        if cuda:  # the fused kernel is CUDA's
            step[name] = _guarded(_steps, adapter, model, batches, half, clip=True, fused=fused)
    # a bigger batch: the same step, four times the images (host overhead per step is fixed)
    big = _guarded(_big_batches, adapter, train, 4 * cfg.batch_size, 6, device)
    if isinstance(big, list):
        step[f"autocast_clip_batch_{4 * cfg.batch_size}"] = _guarded(
            _steps, adapter, model, big, half, clip=True
        )
        step[f"tokens_per_batch_{4 * cfg.batch_size}"] = sum(b["n_tokens"] for b in big) / len(big)
        del big

    # (c) the project's trainer on the same model (its loader, autocast, clipping, counting)
    adapter.build = lambda: model  # type: ignore[method-assign]  (loaded once, above)
    # two epochs: the first starts the loader's workers, the second reuses them
    loop = LoopConfig(
        epochs=2,
        patience=2,
        clip_grad_norm=1.0,
        mixed_precision=plan.mixed_precision,
        seed=13,
        progress=False,
    )
    history = _guarded(lambda: fit(adapter, loop, work / "profile-fit", log=lambda _: None)[1])
    trainer = (
        [
            {k: r.get(k) for k in ("epoch", "step_s", "tokens_per_s", "images_per_s")}
            for r in history
        ]
        if isinstance(history, list)
        else history
    )

    # (d) the profiler's view of three steps with autocast
    prof = _guarded(_profile, adapter, model, batches[:3], half or torch.bfloat16)

    # (e) generation: the captioner's settings at two batch sizes, and greedy
    gen = [
        _guarded(_generation, adapter, model, val, b, beams)
        for b, beams in ((8, 3), (32, 3), (32, 1))
    ]
    return {
        "format": FORMAT,
        "size": size_name,
        "device": gpu_common.device(),
        "versions": gpu_common.versions(),
        "base": built,
        "plan": plan.name,
        "load_s": round(load_s, 2),
        "batch_size": cfg.batch_size,
        "tokens_per_batch": round(tokens, 1),
        "loader": loader,
        "step_s": step,
        "trainer": trainer,
        "profile": prof,
        "generation": gen,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(gpu_common.SIZES), default="full")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("build/blip2-step-profile.json"))
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args(argv)
    gpu_common.register_checkout_tasks()
    report = measure(args.work, args.size, args.steps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps({k: report[k] for k in ("step_s", "trainer", "loader")}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
