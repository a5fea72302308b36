"""The one training loop on a tiny adapter: early stopping restores the best epoch, a cancelled
run saves its state and a resumed one continues, one seed gives one result."""

import pytest
import torch

from helpers.trainer import TinyAdapter
from medai.core.trainer import LoopConfig, TrainingCancelled, fit


def test_fit_learns_and_restores_the_best_epoch(tmp_path):
    model, history = fit(
        TinyAdapter(),
        LoopConfig(epochs=6, patience=3, schedule="constant", progress=False),
        tmp_path,
    )
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    best = min(history, key=lambda h: h["val_loss"])
    with torch.no_grad():
        restored = float(((model(TinyAdapter().x) - TinyAdapter().y) ** 2).mean())
    assert restored == pytest.approx(best["val_loss"], rel=1e-4)


def test_cancel_saves_state_and_resume_continues(tmp_path):
    calls = {"n": 0}

    def cancel_in_epoch_two() -> bool:
        calls["n"] += 1
        return calls["n"] == 12  # 8 batches an epoch: during epoch 2

    cfg = LoopConfig(epochs=4, patience=10, schedule="cosine", progress=False)
    with pytest.raises(TrainingCancelled, match="epoch 2"):
        fit(TinyAdapter(), cfg, tmp_path, cancel=cancel_in_epoch_two)
    cfg.resume = True
    _, history = fit(TinyAdapter(), cfg, tmp_path)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]


def test_one_seed_one_result(tmp_path):
    runs = [
        fit(TinyAdapter(), LoopConfig(epochs=2, seed=5, progress=False), tmp_path / str(i))
        for i in range(2)
    ]
    assert torch.equal(runs[0][0].weight, runs[1][0].weight)


def test_adamw_is_fused_on_a_gpu_and_plain_where_torch_refuses_it(monkeypatch):
    """Every adapter's optimizer: the fused kernel where training runs on CUDA (one launch a
    step, where a BLIP-2 step on an H200 is bound by launches), the plain loop on CPU (CPU
    results unchanged), and the plain loop where a torch refuses fused for these parameters."""
    import torch

    from medai.core.trainer import adamw

    params = [torch.nn.Parameter(torch.zeros(3))]
    assert not adamw(params, lr=1e-3).defaults["fused"]  # this machine: no CUDA
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    fused = adamw(params, lr=1e-3, weight_decay=0.01)
    assert fused.defaults["fused"] and fused.defaults["weight_decay"] == 0.01
    real = torch.optim.AdamW

    def old_torch(*args, fused=None, **kw):
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be CUDA tensors")
        return real(*args, **kw)

    monkeypatch.setattr(torch.optim, "AdamW", old_torch)
    plain = adamw(iter(params), lr=1e-3)  # a generator of parameters is read once
    assert not plain.defaults["fused"] and plain.param_groups[0]["params"] == params


@pytest.mark.parametrize(("precision", "fused"), [("fp16", False), ("bf16", True), ("no", True)])
def test_an_fp16_run_builds_a_plain_adamw(monkeypatch, precision, fused):
    """fp16's gradient scaler with a fused AdamW: Accelerate cannot see a skipped step and
    advances the schedule on every overflow (huggingface/accelerate#4242), so ``fit`` has
    adapters build the plain kernel under fp16 and the fused one otherwise (on a GPU)."""
    from medai.core.trainer import adamw, build_optimizer

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    class Adamw(TinyAdapter):
        def optimizer(self, model):
            return adamw(model.parameters(), lr=0.05)

    adapter = Adamw()
    optimizer = build_optimizer(adapter, adapter.build(), precision)
    assert bool(optimizer.defaults["fused"]) is fused
    assert adamw([torch.nn.Parameter(torch.zeros(2))], lr=0.1).defaults["fused"]  # reset after
