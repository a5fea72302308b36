"""`make gpu-check`'s report, at toy sizes on the CPU (issue 48): every section runs through the
project's real paths (BLIP-2 caption train → predict on a ROCOv2 layout, the imaging
throughput benchmark) and the JSON has the fields docs/benchmarks/gpu.md reads; a machine
without bitsandbytes or a GPU says why the quantised sections were skipped; a short budget
skips rather than cuts; missing packages are named up front."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers.paths import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gpu-check") / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu_check.py"),
            "--size",
            "tiny",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={
            "PATH": "/usr/bin:/bin",
            "OMP_NUM_THREADS": "1",
            "HOME": str(out.parent),
            "MEDAI_HOME": str(out.parent / "home"),
        },
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["sections"] == {
        "imaging": "ok",
        "blip2": "ok",
        "blip2_nf4": "skipped",
        "blip2_int8": "skipped",
        "t4_plan": "ok",
        "step_limit": "ok",
        "mri_series": "ok",
    }
    return json.loads(out.read_text())


def test_the_report_names_the_machine_and_the_versions(report):
    assert report["format"] == gpu_check.FORMAT and report["size"] == "tiny"
    assert report["device"]["kind"] == "cpu" and report["missing"] == []
    for name in ("python", "torch", "transformers", "peft", "accelerate", "monai"):
        assert isinstance(report["versions"][name], str), name
    assert report["versions"]["cuda"] is None and report["elapsed_s"] > 0


def test_the_blip2_section_trains_predicts_and_measures(report):
    b = report["sections"]["blip2"]
    assert b["base"]["parameters"] > 0 and b["base"]["directory_bytes"] > 0
    assert b["parameters"]["trainable"] and b["parameters"]["trainable"] < b["base"]["parameters"]
    assert b["plan"]["name"] == "fp32" and b["plan"]["estimate_bytes"] > 0  # a CPU's plan
    train = b["train"]
    for key in ("step_s", "tokens_per_s", "images_per_s", "tokens_per_step", "train_loss"):
        assert isinstance(train[key], float) and train[key] > 0, key
    assert set(train["pairs"]) == {"train", "validation", "test"}
    # checkpoints hold the adapter's part, far less than the base directory
    assert 0 < b["checkpoint_bytes"]["trained.safetensors"] < b["base"]["directory_bytes"]
    assert b["checkpoint_bytes"]["total"] >= b["checkpoint_bytes"]["optimizer.pt"] > 0
    assert b["adapter_bytes"] > 0
    assert b["generation"]["images"] == train["pairs"]["test"]
    assert b["generation"]["seconds"] >= 0
    assert b["normalisation"] == "imageclef2025"  # a ROCOv2 layout is scored the 2025 way
    assert set(b["scores"]) == {"bleu_4", "rouge_l", "cider"}
    assert b["peak_memory_bytes"] is None  # no CUDA: no GPU peak to report


def test_the_imaging_section_measures_the_ceiling_and_the_pipeline(report):
    m = report["sections"]["imaging"]
    assert m["backbone"] == "densenet121"
    assert m["ceiling"]["images_per_s"] > 0 and m["pipeline"]["images_per_s"] > 0
    assert m["ratio"] == pytest.approx(
        m["pipeline"]["images_per_s"] / m["ceiling"]["images_per_s"], abs=1e-3
    )
    # and through the decoded-image cache: filled once with every distinct film, then read
    assert m["cache_fill"]["images"] == m["distinct_images"] and m["cache_fill"]["bytes"] > 0
    assert m["pipeline_cached"]["images_per_s"] > 0 and m["cpu_ms_per_image_cached"] > 0
    assert m["ratio_cached"] == pytest.approx(
        m["pipeline_cached"]["images_per_s"] / m["ceiling"]["images_per_s"], abs=1e-3
    )


def test_the_t4_section_trains_then_compares_generation_batches(report):
    """Issue 60: on CPU the T4 emulation is not applied (it says why) and the plan is the
    CPU's; the same path trains, captions at the plan's batch, then the same images at batch
    8 and at the plan's batch again, each with images/s and tokens/s."""
    t4 = report["sections"]["t4_plan"]
    assert t4["emulated"] == {"emulates": None, "reason": "no CUDA GPU"}
    assert t4["plan"]["name"] == "fp32" and t4["steps"] == t4["train"]["steps"] > 0
    test_images = t4["train"]["pairs"]["test"]
    assert set(t4["generation_compared"]) == {"plan", "batch_8", "plan_again"}
    for run in t4["generation_compared"].values():
        assert run["images"] == test_images and run["calls"] >= 1
        assert run["images_per_s"] > 0 and run["tokens_per_s"] > 0
    assert t4["generation_compared"]["batch_8"]["batch"] == 8
    assert "does_not_fit" not in t4


def test_the_step_limit_section_times_eager_and_compiled_steps(report):
    s = report["sections"]["step_limit"]
    variants = s["variants"]
    b = s["batch"]
    for key in (f"eager_batch_{b}", f"eager_batch_{2 * b}", f"compiled_batch_{b}"):
        assert variants[key]["step_s"] > 0 and variants[key]["tokens_per_s"] > 0, key
    # every stack of blocks was compiled (the tiny model: one vision, one Q-Former, one OPT)
    assert variants[f"compiled_batch_{b}"]["blocks_compiled"] == 3
    assert s["parameters"]["lm_parameters"] > 0 and s["padded_length"] > 0
    assert s["peak_tflops_measured"] is None  # no GPU: no fraction of a peak


def test_the_mri_series_section_reads_a_series_on_each_device(report):
    m = report["sections"]["mri_series"]
    assert m["slices"] == 6 and m["decode_s"] >= 0
    runs = {(r["device"], r["batch"]) for r in m["runs"]}
    assert runs == {("cpu", 1), ("cpu", 32)}  # no CUDA here: the GPU runs are absent
    for r in m["runs"]:
        assert r["slices_per_s"] > 0 and r["to_decision_s"] >= r["network_s"]
        assert r["decision"] in ("Glioma", "Meningioma", "Pituitary", "No_Tumor")
    # one decision whatever the batch: the same slices, the same rule
    assert len({r["decision"] for r in m["runs"]}) == 1


def test_a_section_stopped_at_the_budget_keeps_what_it_measured(tmp_path, monkeypatch):
    """A section that saved partial numbers and then overran keeps them in the report."""
    script = tmp_path / "slow.py"
    script.write_text(
        "import json, sys, time\n"
        "out = sys.argv[sys.argv.index('--out') + 1]\n"
        "open(out, 'w').write(json.dumps({'status': 'partial', 'eager': 1.5}))\n"
        "time.sleep(30)\n"
    )
    monkeypatch.setattr(gpu_check, "__file__", str(script))
    monkeypatch.setitem(gpu_check.NEEDS_S["tiny"], "mri_series", 0)
    report = {"sections": {}}
    deadline = gpu_check.time.perf_counter() + 2
    gpu_check._section(report, "mri_series", "tiny", tmp_path, deadline)
    got = report["sections"]["mri_series"]
    assert got["status"] == "failed" and got["eager"] == 1.5
    assert "budget" in got["error"]


def test_quantised_sections_say_why_they_were_skipped(report):
    for name in ("blip2_nf4", "blip2_int8"):
        assert report["sections"][name] == {
            "status": "skipped",
            "reason": "quantised bases need a CUDA GPU",
        }


def test_a_spent_budget_skips_sections_and_says_so(tmp_path):
    out = tmp_path / "r.json"
    report = gpu_check.run("tiny", out, budget_s=0, work=tmp_path / "work")
    assert {s["status"] for s in report["sections"].values()} == {"skipped"}
    assert "left of the budget" in report["sections"]["blip2"]["reason"]
    assert json.loads(out.read_text())["sections"] == report["sections"]


def test_missing_packages_are_named_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "NEEDED", (*gpu_check.NEEDED, "no_such_package_medai"))
    out = tmp_path / "r.json"
    assert gpu_check.main(["--size", "tiny", "--out", str(out)]) == 1
    report = json.loads(out.read_text())
    assert report["missing"] == ["no_such_package_medai"] and report["sections"] == {}
    assert "no_such_package_medai" in report["error"]


def _in_a_fresh_process(code: str) -> subprocess.CompletedProcess:
    """``code`` run by a new interpreter with ``benchmarks/`` as its argument (the entry points
    it fakes must be in place before medai is first imported); it must succeed."""
    proc = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "benchmarks")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_a_checkout_that_was_never_installed_knows_the_built_in_tasks():
    """On the GPU machine the checkout runs with ``PYTHONPATH=src``, never installed, so the
    ``medai.tasks`` entry points do not exist: the first H200 run's imaging section failed with
    "unknown imaging task 'cxr'; choose one of []". ``register_checkout_tasks`` registers what
    pyproject.toml declares; here the entry points are hidden from a fresh process."""
    code = """
import importlib.metadata as md
md.entry_points = lambda **kw: []
import sys
sys.path.insert(0, sys.argv[1])
import gpu_check
from medai.imaging.labels import space
try:
    space("cxr")
    raise SystemExit("the tasks were found without the entry points: the test proves nothing")
except ValueError:
    pass
print(gpu_check.register_checkout_tasks())
print(space("cxr").name, sorted(space("mri").labels)[:1])
"""
    proc = _in_a_fresh_process(code)
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "['imaging', 'reporting', 'triage']"
    assert lines[1].startswith("cxr ")


def test_a_hospital_plugin_does_not_hide_the_checkouts_built_in_tasks():
    """An uninstalled checkout beside an installed hospital plugin: the plugin's entry point
    exists, the built-in ones do not — the built-ins are still registered (a check for "any
    entry point" registered none)."""
    code = """
import importlib.metadata as md
plugin = md.EntryPoint("hospital", "gc:collect", "medai.tasks")  # registers nothing
md.entry_points = lambda **kw: [plugin] if kw.get("group") == "medai.tasks" else []
import sys
sys.path.insert(0, sys.argv[1])
import gpu_check
from medai.imaging.labels import space
print(gpu_check.register_checkout_tasks())
print(space("cxr").name)
"""
    proc = _in_a_fresh_process(code)
    assert proc.stdout.strip().splitlines() == ["['imaging', 'reporting', 'triage']", "cxr"]


def test_the_blip2_step_profile_reports_where_a_step_goes(tmp_path):
    """``benchmarks/blip2_step_profile.py`` at toy size on the CPU: the loader alone, the
    step on batches already in place, the trainer's epochs, the profiler's top operators and
    generation at two batch sizes, in one report; a part that cannot run says why."""
    import blip2_step_profile

    out = tmp_path / "profile.json"
    assert (
        blip2_step_profile.main(["--size", "tiny", "--work", str(tmp_path), "--out", str(out)]) == 0
    )
    report = json.loads(out.read_text())
    assert report["format"] == blip2_step_profile.FORMAT and report["plan"] == "fp32"
    assert report["loader"]["batches"] > 0 and report["loader"]["s_per_batch"] > 0
    for name in ("forward_only_autocast", "autocast", "autocast_clip"):
        assert isinstance(report["step_s"][name], float) and report["step_s"][name] > 0, name
    # the tiny set has too few images for batches of 16: said, not timed as nonsense
    assert "at least 3" in report["step_s"]["autocast_clip_batch_16"]["error"]
    assert [e["epoch"] for e in report["trainer"]] == [1, 2]
    assert all(e["step_s"] > 0 and e["tokens_per_s"] > 0 for e in report["trainer"])
    assert report["profile"]["steps"] == 3 and report["profile"]["top"]
    assert [(g["images"], g["beams"]) for g in report["generation"]] == [(8, 3), (32, 3), (32, 1)]
    assert all(g["seconds"] > 0 and g["new_tokens"] > 0 for g in report["generation"])
