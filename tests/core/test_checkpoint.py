"""Checkpoints hold what training changes and resume exactly (issue 48).

A model with a frozen "base" and a small trained part stands in for BLIP-2 + LoRA: the
checkpoint must hold the trained tensors, optimizer, scheduler and generators — never the
frozen base — and a run interrupted (cancelled mid-epoch, or crashed after an epoch) and
resumed must end with the very weights and history of an uninterrupted run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers.trainer import TinyAdapter
from medai.core import checkpoint
from medai.core.trainer import LoopConfig, TrainingCancelled, fit


class FrozenBaseNet(torch.nn.Module):
    """A frozen 'base' (big, never trained) under a small trained head with dropout and a
    batch norm: dropout draws from the generators, the batch norm's running statistics are
    buffers that training changes."""

    def __init__(self) -> None:
        super().__init__()
        self.base = torch.nn.Sequential(
            torch.nn.Linear(4, 1024), torch.nn.Tanh(), torch.nn.Linear(1024, 64)
        )
        self.base.requires_grad_(False)
        self.norm = torch.nn.BatchNorm1d(64)
        self.drop = torch.nn.Dropout(0.3)
        self.head = torch.nn.Linear(64, 1)

    def forward(self, x):
        return self.head(self.drop(self.norm(self.base(x))))


class Adapter(TinyAdapter):
    """``test_trainer``'s adapter (its loss, best-weights save and load) on this model."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(72, 4, generator=g)
        self.y = self.x.sum(1, keepdim=True) * 2 - 1

    def build(self):
        return FrozenBaseNet()

    def optimizer(self, model):
        return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.02)

    def loaders(self):
        ds = torch.utils.data.TensorDataset(self.x, self.y)
        return (
            torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True),
            torch.utils.data.DataLoader(ds, batch_size=36),
        )

    def validate(self, model, loader, acc):
        model.eval()  # dropout and the batch norm as they predict
        with torch.no_grad():
            total = sum(float(((model(x) - y) ** 2).sum()) for x, y in loader)
        return {"val_loss": total / 72}


def _cfg(**kw) -> LoopConfig:
    return LoopConfig(
        **{"epochs": 4, "patience": 10, "schedule": "cosine", "progress": False, "seed": 7, **kw}
    )


def _last_state(work: Path) -> dict:
    """The model as the run left it (its last checkpoint), not the best epoch's."""
    return load_file(str(work / "checkpoints" / "last" / checkpoint.TRAINED_FILE))


def _uninterrupted(tmp_path: Path):
    model, history = fit(Adapter(), _cfg(), tmp_path / "straight")
    return model, history, _last_state(tmp_path / "straight")


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_a_checkpoint_holds_the_trained_part_never_the_frozen_base(tmp_path):
    fit(Adapter(), _cfg(epochs=1), tmp_path)
    last = tmp_path / "checkpoints" / "last"
    saved = load_file(str(last / checkpoint.TRAINED_FILE))
    assert set(saved) == {
        "norm.weight",
        "norm.bias",
        "norm.running_mean",
        "norm.running_var",
        "norm.num_batches_tracked",
        "head.weight",
        "head.bias",
    }
    assert not any(k.startswith("base.") for k in saved)
    files = {p.name for p in last.iterdir()}
    assert {
        "optimizer.pt",
        "scheduler.pt",
        "position.json",
        "rng-0.safetensors",
        "rng-0.json",
    } <= files
    assert "model.safetensors" not in files  # Accelerate's whole-model state is gone
    size = sum(p.stat().st_size for p in last.iterdir())
    base_bytes = sum(p.numel() * 4 for p in FrozenBaseNet().base.parameters())
    assert size < base_bytes / 2, (size, base_bytes)
    position = json.loads((last / "position.json").read_text())
    assert position["epoch"] == 1 and position["batches"] == 0
    assert position["bytes"]["trained.safetensors"] > 0


def test_a_run_cancelled_mid_epoch_resumes_exactly(tmp_path):
    _, straight_history, straight = _uninterrupted(tmp_path)
    calls = {"n": 0}

    def cancel_in_epoch_three() -> bool:
        calls["n"] += 1
        return calls["n"] == 2 * 9 + 4  # 9 batches an epoch: after batch 4 of epoch 3

    work = tmp_path / "cancelled"
    with pytest.raises(TrainingCancelled, match="epoch 3 after batch 4"):
        fit(Adapter(), _cfg(), work, cancel=cancel_in_epoch_three)
    assert json.loads((work / "checkpoints/last/position.json").read_text())["batches"] == 4
    _, history = fit(Adapter(), _cfg(resume=True), work)
    _same(_last_state(work), straight)
    assert history == straight_history


def test_a_run_that_died_after_an_epoch_resumes_exactly(tmp_path):
    _, straight_history, straight = _uninterrupted(tmp_path)

    def die_at_epoch_three(model, epoch):
        if epoch == 3:
            raise KeyboardInterrupt  # the process killed between epochs

    work = tmp_path / "died"
    with pytest.raises(KeyboardInterrupt):
        fit(Adapter(), _cfg(), work, on_epoch=die_at_epoch_three)
    _, history = fit(Adapter(), _cfg(resume=True), work)
    _same(_last_state(work), straight)
    assert history == straight_history


def test_resuming_into_another_model_is_refused(tmp_path):
    fit(Adapter(), _cfg(epochs=1), tmp_path)

    class Wider(Adapter):
        def build(self):
            net = FrozenBaseNet()
            net.head = torch.nn.Linear(64, 2)
            return net

        def loss(self, model, batch):
            x, y = batch
            return ((model(x)[:, :1] - y) ** 2).sum(), len(x)

    with pytest.raises(checkpoint.CheckpointMismatchError, match="another shape"):
        fit(Wider(), _cfg(epochs=2, resume=True), tmp_path)


def test_no_room_for_a_checkpoint_is_named_before_training(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(
        checkpoint.shutil, "disk_usage", lambda _p: usage(10**9, 10**9 - 1000, 1000)
    )
    with pytest.raises(checkpoint.CheckpointSpaceError, match=r"checkpoint_space.*free"):
        fit(Adapter(), _cfg(epochs=1), tmp_path)
    assert not (tmp_path / "checkpoints" / "last").exists()
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", shutil.disk_usage)


def test_the_disk_filling_up_mid_run_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    real = shutil.disk_usage
    usage = namedtuple("usage", "total used free")
    state = {"full": False}

    def disk_usage(path):
        return usage(10**9, 10**9, 0) if state["full"] else real(path)

    def fill_disk_at_epoch_two(model, epoch):
        state["full"] = epoch == 2

    monkeypatch.setattr(checkpoint.shutil, "disk_usage", disk_usage)
    with pytest.raises(checkpoint.CheckpointSpaceError):
        fit(Adapter(), _cfg(epochs=3), tmp_path, on_epoch=fill_disk_at_epoch_two)
    position = json.loads((tmp_path / "checkpoints/last/position.json").read_text())
    assert position["epoch"] == 1  # the epoch-1 checkpoint, whole
    assert not (tmp_path / "checkpoints" / "last.tmp").exists()


def test_throughput_is_reported_per_epoch_with_the_adapters_unit(tmp_path):
    class Counted(Adapter):
        throughput_unit = "images"

        def batch_samples(self, batch):
            return len(batch[0])

    ticks = iter(range(0, 1000, 2))  # a fake clock: 2 s per reading
    lines: list[str] = []
    _, history = fit(
        Counted(), _cfg(epochs=2), tmp_path, log=lines.append, clock=lambda: float(next(ticks))
    )
    assert history[0]["images_per_s"] == 36.0  # 72 images between two readings 2 s apart
    assert any("images_per_s=36.0" in line for line in lines)
    assert any(line.startswith("checkpoint: ") for line in lines)


def test_a_run_killed_between_the_renames_resumes_from_the_previous_checkpoint(tmp_path):
    """``save`` renames the old checkpoint aside, then the new one in: killed in between, the
    run has ``last.old`` and no ``last``; resuming takes the old one back, not epoch 1."""
    _, straight_history, straight = _uninterrupted(tmp_path)
    work = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        fit(
            Adapter(),
            _cfg(),
            work,
            on_epoch=lambda m, e: (_ for _ in ()).throw(KeyboardInterrupt) if e == 3 else None,
        )
    last = work / "checkpoints" / "last"
    last.rename(last.with_name("last.old"))
    (work / "checkpoints" / "last.tmp").mkdir()  # the new one, half-written
    lines: list[str] = []
    _, history = fit(Adapter(), _cfg(resume=True), work, log=lines.append)
    assert any(line.startswith("resuming at epoch 3") for line in lines)
    _same(_last_state(work), straight)
    assert history == straight_history


def test_resume_with_nothing_to_resume_says_so(tmp_path):
    lines: list[str] = []
    fit(Adapter(), _cfg(epochs=1, resume=True), tmp_path, log=lines.append)
    assert any(line.startswith("no checkpoint to resume") for line in lines)


def _adamw_after_a_step(fused: bool):
    import torch

    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    optimizer = torch.optim.AdamW([weight], lr=0.1, fused=fused)
    (weight**2).sum().backward()
    optimizer.step()
    optimizer.zero_grad()
    return weight, optimizer


@pytest.mark.parametrize("saved_fused", [False, True])
def test_a_resumed_optimizer_keeps_its_own_kernel_under_a_gradient_scaler(saved_fused):
    """A checkpoint from before AdamW was fused (or from a CPU) resumed by a fused optimizer,
    and the reverse: the kernel stays this machine's, and fp16's gradient scaler steps it
    (loaded as is, the plain flag replaced the fused one while the scaler still handed the
    step its grad_scale: AssertionError). Both continue as the saved run would."""
    import torch

    from medai.core.checkpoint import load_optimizer_state

    saved_weight, saved = _adamw_after_a_step(fused=saved_fused)
    weight, optimizer = _adamw_after_a_step(fused=not saved_fused)
    load_optimizer_state(optimizer, saved.state_dict())
    assert bool(optimizer.param_groups[0]["fused"]) is (not saved_fused)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**4)
    for w, opt, scale in ((weight, optimizer, scaler), (saved_weight, saved, None)):
        loss = (w**2).sum()
        if scale is None:
            loss.backward()
            opt.step()
        else:
            scale.scale(loss).backward()
            scale.step(opt)
            scale.update()
    assert torch.allclose(weight, saved_weight, atol=5e-4)  # the two kernels round apart
