"""BLIP-2 precision plans (``reporting.captioning.blip2_plan``): memory estimated from config.json
alone, the plan chosen for H200, A100, 2 × T4, 8 GB and 2 GB GPUs and the CPU, refusals that name
what would fit, and ``medai caption plan``. Fast: no weight is loaded (the meta device)."""

import json

import pytest
from typer.testing import CliRunner

from helpers.blip2 import make_tiny_blip2
from medai.cli import app
from medai.reporting.captioning.blip2_plan import (
    GIB,
    GpuInfo,
    PlanRefused,
    choose_plan,
    describe,
    evaluate_plans,
    load_config,
    model_counts,
    quantisation_skips,
)

H200 = GpuInfo("NVIDIA H200", 150_754_820_096, bf16=True, capability=(9, 0))
A100_40 = GpuInfo("NVIDIA A100-SXM4-40GB", 42_505_273_344, bf16=True, capability=(8, 0))
T4 = GpuInfo("Tesla T4", 15_843_721_216, bf16=False, capability=(7, 5), count=2)
RTX_8GB = GpuInfo("NVIDIA GeForce RTX 3070", 8_589_934_592, bf16=True, capability=(8, 6))
TINY_GPU = GpuInfo("a 2 GB GPU", 2 * GIB, bf16=False, capability=(6, 1))
# the one real run: batch 8 with ~483 tokens in the batch = 8 × (32 query + ~28 text tokens)
BATCH, TEXT = 8, 28


@pytest.fixture(scope="module")
def opt67b():
    """BLIP-2-OPT-6.7B's configuration (ViT-g, the default Q-Former, OPT-6.7B), in code."""
    from transformers import Blip2Config, Blip2QFormerConfig, Blip2VisionConfig, OPTConfig

    text = OPTConfig(
        hidden_size=4096,
        ffn_dim=16384,
        num_hidden_layers=32,
        num_attention_heads=32,
        vocab_size=50272,
        max_position_embeddings=2048,
        word_embed_proj_dim=4096,
    )
    return Blip2Config(
        vision_config=Blip2VisionConfig().to_dict(),
        qformer_config=Blip2QFormerConfig().to_dict(),
        text_config=text.to_dict(),
        num_query_tokens=32,
    )


def _plan(config, gpu, **kw):
    kw = {
        "batch_size": BATCH,
        "tokens": TEXT,
        "lora_r": 16,
        "gradient_checkpointing": False,
        "bitsandbytes_available": True,
        **kw,
    }
    return choose_plan(config, gpu, **kw)


def test_opt67b_estimates_match_the_h200_run(opt67b):
    counts = model_counts(opt67b)
    assert counts.parameters == pytest.approx(7.75e9, rel=0.01)
    assert counts.trainable(16) == pytest.approx(19.9e6, rel=0.01)  # q/k/v/out + projection
    plans = {p.name: p for p in evaluate_plans(opt67b, H200, BATCH, TEXT, 16, False, True)}
    assert plans["bf16"].terms["weights"] == 2 * counts.parameters
    assert plans["fp32"].terms["weights"] == 4 * counts.parameters
    assert plans["bf16"].setting.tokens_in_batch == pytest.approx(483, abs=5)
    # measured: peak 17.5 GiB; 15.5 GiB with gradient checkpointing
    assert plans["bf16"].total_bytes / GIB == pytest.approx(17.5, rel=0.15)
    checkpointed = {p.name: p for p in evaluate_plans(opt67b, H200, BATCH, TEXT, 16, True, True)}
    assert 15.5 <= checkpointed["bf16"].total_bytes / GIB <= 16.5
    # the quantised bases are smaller, nf4 the smallest; fp16 keeps the Q-Former fp32
    sizes = {n: p.terms["weights"] for n, p in plans.items()}
    assert sizes["nf4"] < sizes["int8"] < sizes["bf16"] < sizes["fp16"] < sizes["fp32"]


def test_bitsandbytes_leaves_the_trained_projection_and_the_output_embedding(opt67b):
    skips = quantisation_skips(opt67b)
    assert "language_projection" in skips and "language_model.lm_head" in skips
    counts = model_counts(opt67b)
    # everything but the embeddings, the Q-Former, the projection and the norms is quantised
    assert 0.9 * counts.parameters < counts.quantised < counts.parameters - 0.3e9


def test_h200_and_a100_train_in_bf16(opt67b):
    assert _plan(opt67b, H200).name == "bf16"
    plan = _plan(opt67b, A100_40)
    assert plan.name == "bf16" and plan.mixed_precision == "bf16" and plan.fits
    assert "bf16*" in describe(plan.table, plan)


def test_estimates_cover_the_gpu_check_run(opt67b):
    """``make gpu-check`` on an H200 (docs/benchmarks/gpu.md): batch 8 × (32 query + 8 text
    tokens), peaks 16.47 GiB (bf16), 7.80 (nf4), 12.54 (int8). No estimate may read low by
    more than 2 % (a plan chosen on a low estimate runs out of memory midway), nor high by
    more than 10 %. The int8 estimate before that run read 11.2 GiB: 11 % low."""
    plans = {p.name: p for p in evaluate_plans(opt67b, H200, BATCH, 8, 16, False, True)}
    for name, peak in {"bf16": 16.47, "nf4": 7.80, "int8": 12.54}.items():
        estimate = plans[name].total_bytes / GIB
        assert 0.98 * peak <= estimate <= 1.10 * peak, (name, estimate, peak)


def test_t4_takes_int8_at_batch_4_and_nf4_at_batch_8(opt67b):
    plan = _plan(opt67b, T4, batch_size=4)
    assert plan.name == "int8" and plan.quantisation == "int8"
    assert plan.mixed_precision == "fp16" and plan.dtype == "float16"  # no bf16 on a T4
    table = {p.name: p for p in plan.table}
    assert table["fp16"].runs and not table["fp16"].fits  # 15.5 GB of fp16 weights
    assert table["fp16"].terms["weights"] > T4.total_bytes * 0.9
    assert not table["bf16"].runs and "bf16" in table["bf16"].why_not
    # batch 8: int8's activations (kept twice, as measured) no longer fit 13.8 GiB
    bigger = _plan(opt67b, T4)
    assert bigger.name == "nf4" and bigger.quantisation == "nf4"
    assert bigger.mixed_precision == "fp16" and bigger.dtype == "float16"  # compute dtype
    assert not {p.name: p for p in bigger.table}["int8"].fits
    assert _plan(opt67b, T4, batch_size=4, budget_fraction=0.7).name == "nf4"  # less room


def test_t4_without_bitsandbytes_is_refused_naming_it(opt67b):
    with pytest.raises(PlanRefused) as err:
        _plan(opt67b, T4, bitsandbytes_available=False)
    message = str(err.value)
    assert "bitsandbytes" in message and "pip install bitsandbytes: nf4 would fit" in message
    assert all(name in message for name in ("bf16", "fp16", "fp32", "int8", "nf4"))
    assert "14.8 GiB" in message  # the GPU's memory
    assert isinstance(err.value, ValueError)


def test_8gb_gpu_needs_nf4_with_checkpointing(opt67b):
    with pytest.raises(PlanRefused, match="--gradient-checkpointing: nf4 would fit"):
        _plan(opt67b, RTX_8GB)
    plan = _plan(opt67b, RTX_8GB, gradient_checkpointing=True)
    assert plan.name == "nf4" and plan.mixed_precision == "bf16"  # bf16 compute on Ampere


def test_2gb_gpu_is_refused_with_every_plan_listed(opt67b):
    with pytest.raises(PlanRefused) as err:
        _plan(opt67b, TINY_GPU, gradient_checkpointing=True)
    message = str(err.value)
    assert message.startswith("no precision plan fits one GPU's budget of 1.8 GiB")
    assert all(f"\n{name} " in message for name in ("bf16", "fp16", "fp32", "int8", "nf4"))
    assert "nothing fits this GPU" in message and "a GPU of at least" in message
    assert len(err.value.plans) == 5 and not any(p.fits for p in err.value.plans)


def test_a_requested_plan_the_gpu_cannot_run_or_fit_is_refused(opt67b):
    with pytest.raises(PlanRefused, match="--precision bf16 cannot run here: needs bf16") as e:
        _plan(opt67b, T4, requested="bf16")
    assert "--precision auto would choose nf4" in str(e.value)
    with pytest.raises(PlanRefused, match=r"--precision fp32 needs 3[0-9.]+ GiB per GPU"):
        _plan(opt67b, T4, requested="fp32")
    assert _plan(opt67b, H200, requested="nf4").name == "nf4"  # asked for: honoured
    with pytest.raises(ValueError, match="unknown precision 'fp8'; choose one of: auto, bf16"):
        _plan(opt67b, H200, requested="fp8")


def test_cpu_trains_in_fp32_or_bf16_when_asked(opt67b):
    ram = 128 * GIB
    assert _plan(opt67b, None, host_bytes=ram).name == "fp32"
    plan = _plan(opt67b, None, host_bytes=ram, requested="bf16")
    assert plan.name == "bf16" and plan.terms["cuda"] == 0
    with pytest.raises(PlanRefused, match="needs a CUDA GPU"):
        _plan(opt67b, None, host_bytes=ram, requested="fp16")
    with pytest.raises(PlanRefused, match=r"no precision plan fits 14\.7 GiB of RAM"):
        _plan(opt67b, None, host_bytes=16 * GIB)


@pytest.fixture(scope="module")
def tiny_config_only(tmp_path_factory):
    base = make_tiny_blip2(tmp_path_factory.mktemp("blip2plan") / "base")
    for weights in base.glob("*.safetensors"):
        weights.unlink()  # the plan reads config.json alone
    return base


def test_tiny_blip2_estimates_without_weights(tiny_config_only):
    plan = choose_plan(
        load_config(tiny_config_only), None, batch_size=4, tokens=28, lora_r=4, host_bytes=8 * GIB
    )
    assert plan.name == "fp32" and plan.fits
    counts = model_counts(tiny_config_only)
    assert counts.query_tokens == 4 and counts.trainable(4) > 0
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        load_config(tiny_config_only / "missing")


def test_caption_plan_command(tiny_config_only):
    runner = CliRunner()
    r = runner.invoke(
        app,
        [
            "caption",
            "plan",
            "--base",
            str(tiny_config_only),
            "--gpu-memory-gb",
            "15",
            "--no-bf16",
            "--gpus",
            "2",
            "--batch-size",
            "8",
            "--no-bitsandbytes",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["chosen"] == "fp16" and out["gpu"]["count"] == 2 and not out["gpu"]["bf16"]
    assert out["largest_batch"] >= out["batch_size"]  # the chosen plan's biggest batch
    assert [p["name"] for p in out["plans"]] == ["bf16", "fp16", "fp32", "int8", "nf4"]
    assert {"runs", "fits", "estimate_bytes", "terms_bytes", "why_not"} <= set(out["plans"][0])
    assert out["tokens_in_batch"] == 8 * (4 + 32)

    r = runner.invoke(
        app,
        ["caption", "plan", "--base", str(tiny_config_only), "--gpu-memory-gb", "0.5", "--json"],
    )
    assert r.exit_code == 2
    out = json.loads(r.stdout)
    assert out["error_type"] == "PlanRefused" and out["chosen"] is None and out["plans"]
    assert out["largest_batch"] is None

    r = runner.invoke(
        app,
        [
            "caption",
            "plan",
            "--base",
            str(tiny_config_only),
            "--gpu-memory-gb",
            "15",
            "--no-bf16",
            "--precision",
            "bf16",
        ],
    )
    assert r.exit_code == 2 and "cannot run here" in r.stdout and "fp16" in r.stdout


def test_a_gpu_shared_with_another_process_budgets_what_is_free(opt67b):
    """A training started beside the served models (or another training) plans with the
    memory free now, not the card's total: a plan that fits an empty H200 may not fit one
    that holds 130 GiB already."""
    busy = GpuInfo("NVIDIA H200", H200.total_bytes, True, (9, 0), free_bytes=10 * GIB)
    plan = _plan(opt67b, busy)
    assert plan.name == "nf4" and plan.setting.budget_bytes == 10 * GIB
    assert "10.0 GiB free now" in plan.setting.device
    with pytest.raises(PlanRefused):
        _plan(opt67b, busy, bitsandbytes_available=False)
    assert _plan(opt67b, H200).name == "bf16"  # the same card, empty


def test_bitsandbytes_cast_warning_is_said_once_per_process(caplog):
    """LLM.int8() logs its fp16 cast at every matrix product (thousands of lines an epoch on
    the GPU check); the int8 plan lets the first through and drops the repeats, nothing else."""
    import logging

    from medai.reporting.captioning.blip2 import _once_per_process

    logger = logging.getLogger("test.bitsandbytes.autograd")
    _once_per_process(logger, "MatMul8bitLt")
    _once_per_process(logger, "MatMul8bitLt")  # a second plan in the process adds nothing
    with caplog.at_level(logging.WARNING, logger=logger.name):
        for _ in range(3):
            logger.warning("MatMul8bitLt: inputs will be cast from %s to float16", "bf16")
        logger.warning("something else")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["MatMul8bitLt: inputs will be cast from bf16 to float16", "something else"]
    assert len(logger.filters) == 1


def _recorded(plan) -> dict:
    """What ``train_blip2`` records of a chosen plan (``Blip2LoraConfig.plan``)."""
    return plan.record()


def test_the_test_part_is_captioned_in_batches_the_memory_left_allows(opt67b):
    """Generation's time goes with its decoding steps, not its images (H200: 0.69 s an image
    at batch 8, 0.17 at 32), so the test part is captioned in bigger batches than training's
    where the memory beside the weights holds their key/value cache — and never bigger."""
    from medai.reporting.captioning.blip2_plan import GENERATION_BATCH_CAP, generation_batch

    h200 = _recorded(_plan(opt67b, H200))
    assert generation_batch(opt67b, h200, 8, beams=3, new_tokens=60) == GENERATION_BATCH_CAP
    t4 = _recorded(_plan(opt67b, T4))  # nf4: 5.1 GB of weights (+1.3 GB) in a 14.6 GB budget
    assert t4["name"] == "nf4"
    # half of the 8.1 GB left, at 145 MB an image (below)
    assert generation_batch(opt67b, t4, 8, beams=3, new_tokens=60) == 27
    # 3 beams × (32 + 60) tokens × 32 layers × 2 × 4096 × 2 B = 145 MB an image: on a GPU
    # with 2 GiB beside the weights, half of it holds 7 — the training batch of 4 rises to 7
    tight = {**h200, "budget_bytes": sum(h200["terms_bytes"][k] for k in ("weights", "cuda"))}
    tight["budget_bytes"] += 2 * GIB
    assert generation_batch(opt67b, tight, 4, beams=3, new_tokens=60) == 7
    assert generation_batch(opt67b, tight, 8, beams=3, new_tokens=60) == 8  # never below it
    assert generation_batch(opt67b, tight, 4, beams=6, new_tokens=60) == 4  # more beams: less
    # on CPU (no GPU budget) and for a batch already at the cap: the training batch
    cpu = _recorded(_plan(opt67b, None, requested="fp32", host_bytes=64 * GIB))
    assert cpu["budget_bytes"] > 50 * GIB and not cpu["on_gpu"]  # host RAM, not a GPU
    assert generation_batch(opt67b, cpu, 8, 3, 60) == 8
    assert generation_batch(opt67b, None, 8, 3, 60) == 8
    assert generation_batch(opt67b, h200, 48, 3, 60) == 48


def test_the_plan_says_how_big_a_batch_the_gpu_holds(opt67b):
    """On an H200 batch 8 uses 17 of 128 GiB and a step waits on the host's kernel launches
    (docs/benchmarks/gpu.md): the printed plan names the biggest batch that fits, where it is
    at least twice the one asked for."""
    plan = _plan(opt67b, H200)
    counts = model_counts(opt67b)
    assert plan.largest_batch is not None and plan.largest_batch > 100
    at = {
        p.name: p for p in evaluate_plans(opt67b, H200, plan.largest_batch, TEXT, 16, False, True)
    }
    over = {
        p.name: p
        for p in evaluate_plans(opt67b, H200, plan.largest_batch + 1, TEXT, 16, False, True)
    }
    assert at["bf16"].fits and not over["bf16"].fits  # exactly the edge
    assert counts.parameters and f"holds up to batch {plan.largest_batch} in bf16" in describe(
        plan.table, plan
    )
    t4 = _plan(opt67b, T4)  # nf4 at batch 8: 25 would fit, said; at 16 it is not twice that
    assert t4.largest_batch == 25 and "holds up to batch 25 in nf4" in describe(t4.table, t4)
    fuller = _plan(opt67b, T4, batch_size=16)
    assert fuller.name == "nf4" and "holds up to batch" not in describe(fuller.table, fuller)
    assert _plan(opt67b, None, requested="fp32", host_bytes=64 * GIB).largest_batch is None
