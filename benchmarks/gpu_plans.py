"""`make gpu-check`'s sections for the cards hospitals have and the limits of the one at hand
(issue 60): the T4-class plan under a 15 GiB cap, generation at the plan's batch against
batch 8, a BLIP-2 step near its hardware limit (batch 32, regional ``torch.compile``), and a
200-slice MRI series read on the GPU against the CPU path.

Each function is one section of ``gpu_check`` (run in a process of its own there) and returns
its numbers; ``--size tiny`` runs each at toy size on any machine (the report's format is
tested on CPU), ``--size full`` is the real check.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import gpu_common  # benchmarks/ is on the path (gpu_common puts src/ there too)

GIB = 2**30
# a 16 GB T4 as torch sees it: 15,360 MiB, compute capability 7.5, no bf16
T4 = {"name": "Tesla T4", "total_gib": 15.0, "capability": (7, 5)}
# dense bf16 tensor-core peak by the vendor's sheet (no sparsity), TFLOP/s
SPEC_BF16_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L4": 121.0, "T4": 65.0}


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


# --- the T4-class plan ------------------------------------------------------------------------


def emulate_t4(total_gib: float = T4["total_gib"]) -> dict:
    """Make this process see a T4: the caching allocator capped at ``total_gib``
    (``set_per_process_memory_fraction``: an allocation beyond it fails as it would on the
    card), no bf16 (the plans and the loader's dtype fall back to fp16) and the plan asked for
    one 15 GiB GPU. Returns what was set. The CUDA context lives outside the allocator, so the
    cap is, if anything, slightly kinder than a real T4 (~0.3-0.5 GiB of context there)."""
    import torch

    from medai.reporting.captioning import blip2, blip2_plan

    cap = int(total_gib * GIB)
    total = int(torch.cuda.get_device_properties(0).total_memory)
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total), 0)

    def t4_gpus() -> blip2_plan.GpuInfo:
        return blip2_plan.GpuInfo(
            name=f"{T4['name']} (emulated: {torch.cuda.get_device_name(0)} capped)",
            total_bytes=cap,
            bf16=False,
            capability=T4["capability"],
            count=1,
            free_bytes=cap - int(torch.cuda.memory_reserved(0)),
        )

    blip2_plan.detect_gpus = t4_gpus
    blip2.detect_gpus = t4_gpus
    torch.cuda.is_bf16_supported = lambda *a, **k: False  # type: ignore[assignment]
    return {
        "emulates": T4["name"],
        "cap_bytes": cap,
        "card_bytes": total,
        "memory_fraction": round(cap / total, 4),
        "bf16": False,
    }


def _count_generation(captioner, log: list):
    """Wrap ``captioner.model.generate`` to record each call: images, non-pad tokens out,
    seconds (synchronised). Returns the unwrapped method, to put back."""
    model = captioner.model
    inner = model.generate
    pad = getattr(captioner.processor.tokenizer, "pad_token_id", None)

    def generate(*args, **kwargs):
        _sync()
        started = time.perf_counter()
        ids = inner(*args, **kwargs)
        _sync()
        tokens = int((ids != pad).sum()) if pad is not None else int(ids.numel())
        log.append(
            {"images": int(ids.shape[0]), "tokens": tokens, "s": time.perf_counter() - started}
        )
        return ids

    model.generate = generate
    return inner


def _generation_summary(calls: list[dict], batch: int) -> dict:
    images = sum(c["images"] for c in calls)
    seconds = sum(c["s"] for c in calls)
    tokens = sum(c["tokens"] for c in calls)
    return {
        "batch": batch,
        "calls": len(calls),
        "images": images,
        "seconds": round(seconds, 3),
        "images_per_s": round(images / seconds, 2) if seconds else None,
        "tokens_per_s": round(tokens / seconds, 1) if seconds else None,
        "s_per_image": round(seconds / images, 4) if images else None,
    }


def t4_plan_section(work: Path, size: dict) -> dict:
    """BLIP-2 on a T4-sized budget through the project's own path: the base is built first
    (its bf16 build is 15.5 GB, more than the cap), then the cap is set, ``train_blip2_captioner``
    chooses its plan for that GPU (``--precision auto``), trains (≥ 50 steps at full size) and
    captions the test part at ``blip2_plan.generation_batch``; the same captioner then captions
    the same images at batch 8 and at the plan's batch again (issue 60, parts 2 and 3). A step
    that does not fit is named with the memory it had."""
    import torch

    from medai.reporting import pipeline

    gpu_common.blip2_base(work, size)  # before the cap
    gpu_common._peak_reset()
    cuda = torch.cuda.is_available()
    emulated = emulate_t4() if cuda else {"emulates": None, "reason": "no CUDA GPU"}
    generation: dict[str, dict] = {}
    original = pipeline.score_captioner
    phase = {"now": "training"}

    def score_both(captioner, ds, idx, **kwargs):
        """The pipeline's own scoring at the plan's batch, then the same images at batch 8
        and at the plan's batch again (the first call carries the generation set-up)."""
        plan_batch = int(kwargs.get("batch_size") or 8)
        runs = [("plan", plan_batch), ("batch_8", 8), ("plan_again", plan_batch)]
        first = None
        for name, batch in runs:
            calls: list[dict] = []
            inner = _count_generation(captioner, calls)
            phase["now"] = f"generation at batch {batch}"
            try:
                metrics = original(captioner, ds, idx, **{**kwargs, "batch_size": batch})
            except torch.cuda.OutOfMemoryError as exc:
                generation[name] = {"batch": batch, "error": _oom(exc)}
                continue
            finally:
                captioner.model.generate = inner
            generation[name] = _generation_summary(calls, batch)
            first = first or metrics
        if first is None:
            raise RuntimeError("no generation run fitted the budget")
        return first

    pipeline.score_captioner = score_both
    result: dict = {"emulated": emulated}
    try:
        trained = gpu_common.blip2_section(work, size, "auto", out_name="captioner-t4")
        result.update(trained)
    except torch.cuda.OutOfMemoryError as exc:
        result["does_not_fit"] = {"phase": phase["now"], "error": _oom(exc)}
    finally:
        pipeline.score_captioner = original
    steps = (result.get("train") or {}).get("steps")
    result["generation_compared"] = generation
    result["steps"] = steps
    if cuda:
        result["peak_memory_whole_section_bytes"] = int(torch.cuda.max_memory_allocated())
    return result


def _oom(exc: BaseException) -> dict:
    import torch

    return {
        "message": str(exc).split("\n")[0][:400],
        "allocated_bytes": int(torch.cuda.memory_allocated()),
        "reserved_bytes": int(torch.cuda.memory_reserved()),
        "peak_bytes": int(torch.cuda.max_memory_allocated()),
    }


# --- the step near its limit ------------------------------------------------------------------


def bf16_matmul_tflops(n: int = 8192, repeats: int = 20) -> float | None:
    """The card's bf16 matrix rate as measured here (n³ products), TFLOP/s; None on CPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    _sync()
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync()
    seconds = time.perf_counter() - started
    del a, b
    return round(2 * n**3 * repeats / seconds / 1e12, 1)


def spec_tflops(name: str) -> float | None:
    return next((v for k, v in SPEC_BF16_TFLOPS.items() if k in name), None)


def _same_length(batches: list[dict], pad_id: int) -> list[dict]:
    """Every batch padded on the right to the longest one's text length: one shape, so a
    compiled step is compiled once, not once per length (eager gets the same batches)."""
    import torch

    longest = max(b["input_ids"].shape[1] for b in batches)
    out = []
    for b in batches:
        extra = longest - b["input_ids"].shape[1]
        if extra:
            b = dict(b)
            for key, fill in (("input_ids", pad_id), ("attention_mask", 0), ("labels", -100)):
                t = b[key]
                pad = torch.full((t.shape[0], extra), fill, dtype=t.dtype, device=t.device)
                b[key] = torch.cat([t, pad], dim=1)
        out.append(b)
    return out


def regional_compile(model) -> int:
    """``torch.compile`` each block of every stack of identical blocks (ViT-g's 39 layers,
    the Q-Former's, OPT's 32 decoder layers): one compiled graph serves every block of a stack,
    so it compiles in a fraction of the whole model's time and fuses the elementwise work
    (LoRA casts, norms, activations) that makes a step launch-bound. Returns blocks compiled."""
    import torch

    for name in ("cache_size_limit", "recompile_limit", "accumulated_cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(256, getattr(torch._dynamo.config, name)))
    # inductor on the GPU; on CPU (the toy-size test) dynamo and AOT autograd without code
    # generation, which would take minutes of C++ compilation on a small machine
    backend = "inductor" if torch.cuda.is_available() else "aot_eager"
    blocks = 0
    for name, module in model.named_modules():
        # Hugging Face's stacks: ``encoder.layers`` (ViT), ``encoder.layer`` (Q-Former),
        # ``decoder.layers`` (OPT)
        if (
            isinstance(module, torch.nn.ModuleList)
            and name.rsplit(".", 1)[-1]
            in (
                "layers",
                "layer",
            )
            and len({type(m) for m in module}) == 1
        ):
            for block in module:
                block.compile(backend=backend)
                blocks += 1
    return blocks


def _flops(counts, tokens_per_step: float, images_per_step: int, vision: dict) -> dict:
    """FLOPs a training step by the issue's count: 4·N a language-model token (forward 2N,
    backward to the activations 2N; the frozen weights take no gradient), N the language
    model's parameters; the frozen vision encoder's forward (2·N_v a patch token) beside it."""
    lm = 4 * counts["lm_parameters"] * tokens_per_step
    vis = 2 * vision["parameters"] * vision["tokens_per_image"] * images_per_step
    return {"lm": lm, "vision_forward": vis}


def _param_counts(model) -> dict:
    lm = sum(p.numel() for n, p in model.named_parameters() if "language_model" in n)
    vis = sum(p.numel() for n, p in model.named_parameters() if "vision_model" in n)
    return {"lm_parameters": lm, "vision_parameters": vis}


def step_limit_section(work: Path, size: dict, batch: int | None = None, steps: int = 6) -> dict:
    """The bf16 LoRA step on batches already on the GPU at ``batch`` (32 at full size):
    eager as the trainer runs it (fp32 adapter under autocast), the same with the adapter in
    bf16 and no autocast (the 0.133 s loop's setting, to test the regression's suspect), twice
    the batch, and the blocks compiled (regional ``torch.compile``); each with its fraction of
    the card's bf16 peak (measured and by the sheet)."""
    import torch

    import blip2_step_profile as prof
    from medai.reporting.captioning.blip2 import Blip2LoraConfig, _Blip2Adapter, training_plan

    gpu_common.blip2_base(work, size)
    batch = batch or (32 if size["blip2"] == "opt-6.7b" else 4)
    train, val, base, _built = prof._datasets(work, size)
    cfg = Blip2LoraConfig(base=str(base), batch_size=batch, epochs=1)
    plan = training_plan(cfg)
    adapter = _Blip2Adapter(cfg, train, val)
    adapter.plan = plan
    started = time.perf_counter()
    model = adapter.build()
    result: dict = {
        "plan": plan.name,
        "load_s": round(time.perf_counter() - started, 1),
        "batch": batch,
    }
    device = next(model.parameters()).device
    cuda = device.type == "cuda"
    half = torch.bfloat16
    pad = adapter.processor.tokenizer.pad_token_id or 0
    batches = _same_length(prof._big_batches(adapter, train, batch, steps + 2, device), pad)
    doubled = _same_length(prof._big_batches(adapter, train, 2 * batch, steps + 2, device), pad)
    counts = _param_counts(model)
    vision = {
        "parameters": counts["vision_parameters"],
        "tokens_per_image": (
            model.config.vision_config.image_size // model.config.vision_config.patch_size
        )
        ** 2
        + 1,
    }
    tokens = sum(b["n_tokens"] for b in batches) / len(batches)
    tokens2 = sum(b["n_tokens"] for b in doubled) / len(doubled)
    name = torch.cuda.get_device_name(0) if cuda else "cpu"
    result.update(
        {
            "parameters": counts,
            "tokens_per_step": tokens,
            "padded_length": int(batches[0]["input_ids"].shape[1]),
            "peak_tflops_measured": bf16_matmul_tflops() if cuda else None,
            "peak_tflops_spec": spec_tflops(name),
            "variants": {},
        }
    )

    def record(key: str, seconds, n_tokens: float, images: int, extra: dict | None = None):
        if not isinstance(seconds, float):
            result["variants"][key] = seconds  # an error record
            return
        flops = _flops(counts, n_tokens, images, vision)
        row = {
            "step_s": seconds,
            "tokens_per_s": round(n_tokens / seconds, 1),
            "images_per_s": round(images / seconds, 1),
            "lm_tflops": round(flops["lm"] / seconds / 1e12, 1),
            "lm_plus_vision_tflops": round(
                (flops["lm"] + flops["vision_forward"]) / seconds / 1e12, 1
            ),
        }
        for ref in ("peak_tflops_measured", "peak_tflops_spec"):
            if result.get(ref):
                row[f"of_{ref[5:]}"] = round(row["lm_tflops"] / result[ref], 3)
        if cuda:
            row["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated())
        result["variants"][key] = {**row, **(extra or {})}
        gpu_common.save_partial(result)

    def timed(batches_, autocast_dtype, clip=True):
        gpu_common._peak_reset()
        return prof._guarded(prof._steps, adapter, model, batches_, autocast_dtype, clip=clip)

    record(f"eager_batch_{batch}", timed(batches, half), tokens, batch)
    record(f"eager_batch_{2 * batch}", timed(doubled, half), tokens2, 2 * batch)
    # the suspect of 0.133 -> 0.204 s: the adapter in fp32 under autocast (cast at every call)
    # (only where the base is bf16: an fp32 base cannot take a bf16 adapter's outputs)
    if plan.torch_dtype == torch.bfloat16:
        trainables = [p for p in model.parameters() if p.requires_grad]
        for p in trainables:
            p.data = p.data.to(torch.bfloat16)
        key = f"eager_bf16_adapter_no_autocast_batch_{batch}"
        record(key, timed(batches, None), tokens, batch)
        for p in trainables:
            p.data = p.data.float()
    # regional compile: the first step carries the compilation
    try:
        blocks = regional_compile(model)
        gpu_common._peak_reset()
        started = time.perf_counter()
        prof._steps(adapter, model, batches[:3], half, clip=True)  # 2 untimed + 1 (compiles)
        compile_s = round(time.perf_counter() - started, 1)
        record(
            f"compiled_batch_{batch}",
            timed(batches, half),
            tokens,
            batch,
            {"blocks_compiled": blocks, "compile_and_first_steps_s": compile_s},
        )
        record(f"compiled_batch_{2 * batch}", timed(doubled, half), tokens2, 2 * batch)
    except Exception as exc:  # reported, the section's other numbers stand
        result["variants"]["compiled"] = {"error": f"{type(exc).__name__}: {str(exc)[:400]}"}
    return result


# --- a series on the GPU -----------------------------------------------------------------------


def _mri_predictor(work: Path):
    """The bundled MRI model where the checkout has it, else the same network
    (EfficientNet-Lite0, 4 classes) with random weights: the speed is the network's."""
    from medai.core.model_dir import read_card
    from medai.imaging.predict import ImagingPredictor, load_predictor
    from medai.imaging.train import ImagingTrainConfig

    bundled = gpu_common.ROOT / "src" / "medai" / "assets" / "models" / "mri-default"
    if (bundled / "model.safetensors").is_file():
        return load_predictor(bundled, read_card(bundled), runtime="torch"), "mri-default"
    from medai.core.model_dir import ModelCard
    from medai.imaging.networks import ImagingNet

    labels = ["Glioma", "Meningioma", "Pituitary", "No_Tumor"]
    net = ImagingNet("efficientnet-lite0", len(labels), pretrained=False).eval()
    cfg = ImagingTrainConfig(task="mri", backbone="efficientnet-lite0", labels=labels)
    card = ModelCard(task="mri", model_type="imaging", labels=labels, name="random-lite0")
    return ImagingPredictor(net, cfg, card, None), "efficientnet-lite0 (random weights)"


def write_series(directory: Path, slices: int, side: int = 512, seed: int = 0) -> list[Path]:
    """``slices`` MR DICOM files of one series (16-bit, ``side``², positions along z), as a
    scanner sends them."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    yy, xx = np.mgrid[:side, :side]
    head = ((yy - side / 2) ** 2 + (xx - side / 2) ** 2) < (side * 0.4) ** 2
    paths = []
    for i in range(slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.Modality, ds.PatientID, ds.InstanceNumber = "MR", "GPU-BENCH", i + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(i)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.Rows = ds.Columns = side
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        arr = (head * (800 + 600 * np.sin(i / 20)) + rng.normal(0, 40, (side, side))).clip(0, 4095)
        ds.PixelData = arr.astype(np.uint16).tobytes()
        path = directory / f"slice-{i:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def mri_series_section(work: Path, size: dict) -> dict:
    """A ``slices``-slice MR series from DICOM files to one study decision: every slice
    decoded and resized on the CPU, then the network on the CPU (slice by slice, as one image
    is read today, and batched) and on the GPU (batched, fp32 and bf16 autocast); slices/s of
    the network and the time from the first file read to the decision (issue 60, part 5)."""
    import numpy as np
    import torch

    from medai.imaging.io import load_image
    from medai.imaging.networks import to_tensor

    slices = 200 if size["blip2"] == "opt-6.7b" else 6
    paths = write_series(work / "mri-series", slices, side=512 if slices == 200 else 64)
    predictor, which = _mri_predictor(work)
    result: dict = {"slices": slices, "model": which, "cpu_threads": torch.get_num_threads()}

    started = time.perf_counter()
    images = [load_image(p).pixels for p in paths]
    decoded_s = time.perf_counter() - started
    started = time.perf_counter()
    tensor = torch.stack([to_tensor(p, predictor.cfg.image_size) for p in images])
    resized_s = time.perf_counter() - started
    result["decode_s"], result["resize_s"] = round(decoded_s, 3), round(resized_s, 3)
    prepare_s = decoded_s + resized_s

    def run(device: str, batch: int, autocast: bool = False) -> dict:
        model = predictor.torch_model.to(device)
        x_all = tensor.to(device)
        ctx = torch.autocast(device, dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        with torch.no_grad(), ctx:
            model.logits_and_features(x_all[: min(batch, slices)])  # untimed warm-up
            _sync()
            started = time.perf_counter()
            probs = []
            for i in range(0, slices, batch):
                logits, _ = model.logits_and_features(x_all[i : i + batch])
                probs.append(torch.softmax(logits.float(), dim=1).cpu())
            _sync()
        seconds = time.perf_counter() - started
        p = torch.cat(probs).numpy()
        decision = int(np.argmax(p.mean(axis=0)))  # the mean rule; series reading chooses its own
        return {
            "device": device,
            "batch": batch,
            "autocast_bf16": autocast,
            "network_s": round(seconds, 4),
            "slices_per_s": round(slices / seconds, 1),
            "to_decision_s": round(prepare_s + seconds, 3),
            "decision": predictor.labels[decision],
        }

    runs = [run("cpu", 1), run("cpu", 32)]
    if torch.cuda.is_available():
        runs += [run("cuda", 64), run("cuda", slices), run("cuda", slices, autocast=True)]
    predictor.torch_model.to("cpu")
    result["runs"] = runs
    result["note"] = (
        "to_decision_s = decoding and resizing every slice on one CPU thread "
        f"({round(prepare_s, 2)} s) + the network; the decision is the mean of the slices' "
        "probabilities"
    )
    return result
