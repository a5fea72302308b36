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
