"""The one training loop on a tiny adapter: early stopping restores the best epoch, a cancelled
run saves its state and a resumed one continues, one seed gives one result."""

from pathlib import Path

import pytest
import torch

from medai.core.trainer import LoopConfig, TrainingCancelled, fit


class TinyAdapter:
    """y = 2x + 1 with a linear model; validation on fixed points."""

    def __init__(self, lr: float = 0.05) -> None:
        self.lr = lr
        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(64, 1, generator=g)
        self.y = 2 * self.x + 1

    def build(self):
        return torch.nn.Linear(1, 1)

    def optimizer(self, model):
        return torch.optim.SGD(model.parameters(), lr=self.lr)

    def loaders(self):
        ds = torch.utils.data.TensorDataset(self.x, self.y)
        return (
            torch.utils.data.DataLoader(
                ds, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(1)
            ),
            torch.utils.data.DataLoader(ds, batch_size=32),
        )

    def loss(self, model, batch):
        x, y = batch
        return ((model(x) - y) ** 2).sum(), len(x)

    def validate(self, model, loader, acc):
        with torch.no_grad():
            total = sum(float(((model(x) - y) ** 2).sum()) for x, y in loader)
        return {"val_loss": total / 64}

    def save_best(self, model, directory: Path):
        torch.save(model.state_dict(), directory / "w.pt")

    def load_best(self, directory: Path):
        model = self.build()
        model.load_state_dict(torch.load(directory / "w.pt", weights_only=True))
        return model


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
