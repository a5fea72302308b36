"""Shared by the tests of several files (moved from core/test_trainer.py)."""

from __future__ import annotations

from pathlib import Path

import torch


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
