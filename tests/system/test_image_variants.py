"""The two builds of the medai image, CPU (localhost/medai) and GPU (localhost/medai-gpu), without
building either: what `make image-gpu` runs, what deploy/image/wheelhouse.sh asks pip for, what
deploy/image/check.sh checks. pip and podman are stand-ins that record their calls (the real
build downloads several GB and takes minutes: `make image-gpu`, docs/deploy/helm.md).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import medai
from helpers.paths import ROOT

IMAGE_DIR = ROOT / "deploy" / "image"
TORCH_CUDA = "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl"
TORCH_CPU = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
HOST_PYTHON = "/usr/bin/python3"


def _make_n(target: str) -> list[str]:
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def test_make_image_gpu_builds_and_checks_the_gpu_variant() -> None:
    assert _make_n("image-gpu") == [
        "deploy/image/wheelhouse.sh gpu",
        "SKIP_WHEELHOUSE=1 deploy/image/build.sh gpu",
        "deploy/image/check.sh gpu",
    ]
    assert _make_n("image-gpu-check") == ["deploy/image/check.sh gpu"]
    # the CPU image is built and checked as before
    assert _make_n("image") == [
        "deploy/image/wheelhouse.sh",
        "SKIP_WHEELHOUSE=1 deploy/image/build.sh all",
        "deploy/image/check.sh",
    ]


def test_build_sh_has_one_recipe_for_both_variants() -> None:
    bad = subprocess.run(
        [str(IMAGE_DIR / "build.sh"), "cuda"], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2 and "[medai|gpu|infra|all]" in bad.stderr
    text = (IMAGE_DIR / "build.sh").read_text()
    # one install step, one venv: the variant picks the wheelhouse and the name, nothing else
    assert text.count('pip" install') == 1 and text.count("python3 -m venv") == 1
    assert "gpu) echo localhost/medai-gpu" in text
    assert 'gpu) echo "$dist/wheelhouse-gpu"' in text


# --- wheelhouse.sh with a pip that records what it is asked ------------------------------------

_FAKE_PYTHON = """\
#!{real}
# a stand-in for the build's python: runs Python as the real one, and answers `-m pip` by
# recording the call and writing empty wheels the way pip would
import json, os, pathlib, sys

args = sys.argv[1:]
if args[:2] != ["-m", "pip"]:
    os.execv({real!r}, [{real!r}, *args])
pip = args[2:]
with open(os.environ["FAKE_PIP_LOG"], "a") as log:
    log.write(json.dumps({{"argv": pip, "PIP_FIND_LINKS": os.environ.get("PIP_FIND_LINKS")}}) + "\\n")


def value(flag):
    return pip[pip.index(flag) + 1]


def touch(folder, *names):
    for name in names:
        (pathlib.Path(folder) / name).write_bytes(b"")


if pip[0] == "download":  # the torch wheel
    assert "torch===2.13.0" in pip, pip
    touch(value("-d"), {cuda!r})
elif pip[0] == "wheel":  # medai and its dependencies; a CUDA torch pulls the nvidia-* wheels
    out = value("--wheel-dir")
    touch(out, "medai-{version}-py3-none-any.whl", "numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl")
    torch = next(a for a in pip if "/torch-" in a)
    if "+cpu" not in torch or os.environ.get("FAKE_PIP_CUDA"):
        touch(out, "nvidia_cublas-13.1.1.3-py3-none-manylinux_2_27_x86_64.whl",
              "triton-3.7.1-cp311-cp311-manylinux_2_28_x86_64.whl")
elif pip[0] == "install":  # the offline check: what it would install, from its find-links
    assert "--dry-run" in pip and "--no-index" in pip, pip
    links = [value("--find-links")] + (os.environ.get("PIP_FIND_LINKS") or "").split()
    wheels = [w for d in links for w in pathlib.Path(d).glob("*.whl")]
    cpu = [w for w in wheels if "+cpu" in w.name]
    if cpu:  # 2.13.0+cpu sorts above 2.13.0: pip takes it, and no nvidia-* then
        wheels = [w for w in wheels if not w.name.startswith(("torch-", "nvidia", "triton"))]
        wheels.append(cpu[0])
    report = {{"install": [{{"download_info": {{"url": w.as_uri()}}}} for w in wheels]}}
    pathlib.Path(value("--report")).write_text(json.dumps(report))
elif pip[:2] == ["config", "list"]:
    pass
else:
    sys.exit(f"fake pip: unexpected {{pip}}")
"""


def _wheelhouse(
    tmp_path: Path, *args: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[dict], Path]:
    if not Path(HOST_PYTHON).exists() or not Path(HOST_PYTHON).resolve().name.startswith(
        "python3.11"
    ):
        pytest.skip("wheelhouse.sh needs a CPython 3.11 at /usr/bin/python3 (the image's)")
    tmp_path.mkdir(parents=True, exist_ok=True)
    fake = tmp_path / "python"
    fake.write_text(
        _FAKE_PYTHON.format(real=HOST_PYTHON, cuda=TORCH_CUDA, version=medai.__version__)
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    out, log = tmp_path / "wheelhouse", tmp_path / "pip.jsonl"
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "WHEELHOUSE", "TORCH_"))
    }
    environ |= {"PYTHON": str(fake), "WHEELHOUSE": str(out), "FAKE_PIP_LOG": str(log), **env}
    result = subprocess.run(
        [str(IMAGE_DIR / "wheelhouse.sh"), *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls, out


def test_the_gpu_wheelhouse_asks_for_torchs_cuda_build_and_installs_nothing(
    tmp_path: Path,
) -> None:
    # this host's find-links hold the CPU wheel (2.13.0+cpu also satisfies "==2.13.0")
    links = tmp_path / "links"
    links.mkdir()
    (links / TORCH_CPU).write_bytes(b"")
    result, calls, out = _wheelhouse(tmp_path, "gpu", PIP_FIND_LINKS=str(links))
    assert result.returncode == 0, result.stderr
    downloads = [c["argv"] for c in calls if c["argv"][0] == "download"]
    assert len(downloads) == 1, f"one download of torch's CUDA build, not {downloads}"
    download = downloads[0]
    # the exact version string: never the +cpu wheel; only the wheel, for the image's platform
    assert "torch===2.13.0" in download and "--no-deps" in download
    assert download[download.index("-d") + 1] == str(out)
    assert download[download.index("--platform") + 1] == "manylinux_2_28_x86_64"
    wheel = next(c["argv"] for c in calls if c["argv"][0] == "wheel")
    assert str(out / TORCH_CUDA) in wheel
    # nothing is installed anywhere: the only `pip install` is the offline dry run into a
    # scratch target, with no find-links but the wheelhouse (PIP_FIND_LINKS dropped)
    installs = [c for c in calls if c["argv"][0] == "install"]
    assert len(installs) == 1 and "--dry-run" in installs[0]["argv"]
    assert "--target" in installs[0]["argv"] and installs[0]["PIP_FIND_LINKS"] is None
    assert not any(".venv" in " ".join(c["argv"]) for c in calls)
    code = [
        line
        for line in (IMAGE_DIR / "wheelhouse.sh").read_text().splitlines()
        if not line.lstrip().startswith("#")
    ]
    assert not any(".venv" in line or "VIRTUAL_ENV" in line for line in code)
    # the wheelhouse keeps the CUDA build and its nvidia-* wheels
    names = {p.name for p in out.glob("*.whl")}
    assert TORCH_CUDA in names and TORCH_CPU not in names
    assert any(n.startswith("nvidia_") for n in names)
    assert f"medai-{medai.__version__}-py3-none-any.whl" in names
    assert "torch (gpu)" in result.stderr


def test_the_gpu_wheelhouse_refuses_a_cpu_torch(tmp_path: Path) -> None:
    cpu = tmp_path / TORCH_CPU
    cpu.write_bytes(b"")
    result, calls, _ = _wheelhouse(tmp_path, "gpu", TORCH_WHEEL=str(cpu))
    assert result.returncode != 0
    assert "is not torch 2.13.0's CUDA build" in result.stderr
    assert not any(c["argv"][0] in ("wheel", "install") for c in calls)


def test_the_cpu_wheelhouse_is_unchanged_and_refuses_cuda_wheels(tmp_path: Path) -> None:
    cpu = tmp_path / TORCH_CPU
    cpu.write_bytes(b"")
    result, calls, out = _wheelhouse(tmp_path, TORCH_WHEEL=str(cpu))
    assert result.returncode == 0, result.stderr
    assert not any(c["argv"][0] == "download" for c in calls)
    names = {p.name for p in out.glob("*.whl")}
    assert TORCH_CPU in names and not any(n.startswith(("nvidia", "triton")) for n in names)
    assert out == tmp_path / "wheelhouse"
    # a resolver that brought the CUDA wheels anyway is an error, not a quiet 3 GB image
    result, _, _ = _wheelhouse(tmp_path / "again", TORCH_WHEEL=str(cpu), FAKE_PIP_CUDA="1")
    assert result.returncode != 0 and "CUDA wheels in the wheelhouse" in result.stderr


def test_wheelhouse_refuses_an_unknown_variant(tmp_path: Path) -> None:
    result, calls, _ = _wheelhouse(tmp_path, "cuda")
    assert result.returncode == 2 and "usage:" in result.stderr and "[cpu|gpu]" in result.stderr
    assert calls == []


# --- check.sh: the torch check that the GPU variant adds ---------------------------------------


def test_torch_build_tells_the_cpu_build_from_the_cuda_build() -> None:
    """Run here on this environment's CPU torch: the cpu check passes, the gpu one fails."""
    pytest.importorskip("torch")
    script = IMAGE_DIR / "torch_build.py"
    cpu = subprocess.run(
        [sys.executable, "-", "cpu", "2.13.0"],
        stdin=script.open(),
        capture_output=True,
        text=True,
        check=False,
    )
    gpu = subprocess.run(
        [sys.executable, "-", "gpu", "2.13.0"],
        stdin=script.open(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert cpu.returncode == 0 and cpu.stdout.startswith("torch 2.13.0+cpu"), cpu
    assert gpu.returncode == 1 and "torch.version.cuda None" in gpu.stdout, gpu
    # no GPU here: the GPU check says so instead of failing on it
    assert "torch.cuda.is_available() False (no GPU or driver on this host: accepted)" in gpu.stdout


_FAKE_PODMAN = """\
#!{python}
# a stand-in for podman: an image whose python is this environment's (CPU torch); the
# shell-level checks get empty answers
import json, os, sys

args = sys.argv[1:]
with open(os.environ["FAKE_PODMAN_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[0] == "run" and "/opt/medai/bin/python" in args:
    image = next(a for a in args if a.startswith("localhost/"))
    rest = args[args.index(image) + 1 :]
    os.execv({python!r}, [{python!r}, *rest])
"""


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_check_sh_runs_the_torch_check_of_its_variant(tmp_path: Path, variant: str) -> None:
    pytest.importorskip("torch")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    podman = bin_ / "podman"
    podman.write_text(_FAKE_PODMAN.format(python=sys.executable))
    podman.chmod(podman.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "podman.jsonl"
    env = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}", "FAKE_PODMAN_LOG": str(log)}
    args = [] if variant == "cpu" else ["gpu"]
    result = subprocess.run(
        [str(IMAGE_DIR / "check.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    image = "localhost/medai" if variant == "cpu" else "localhost/medai-gpu"
    assert f"checking {image}:{medai.__version__} ({variant})" in result.stdout
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    torch_run = next(r for r in runs if "/opt/medai/bin/python" in r)
    assert torch_run[-3:] == ["-", variant, "2.13.0"] and "--network" in torch_run
    # the stand-in image carries this environment's CPU torch: right for cpu, wrong for gpu
    if variant == "cpu":
        assert "  ok    torch is the CPU build: torch 2.13.0+cpu" in result.stdout
        assert "  ok    no CUDA libraries" in result.stdout
    else:
        assert "  FAIL  torch is the CUDA build: torch 2.13.0+cpu, torch.version.cuda None" in (
            result.stdout
        )
        assert "  FAIL  the CUDA libraries torch needs (none)" in result.stdout
    assert result.returncode == 1  # the stand-in answers nothing else: other checks fail
