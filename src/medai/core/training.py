"""Task-agnostic training helpers: class weights, early stopping, training history."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


def balanced_class_weights(y: Sequence[int], n_classes: int) -> np.ndarray:
    """n / (k * count_c), the reference system's class weighting; absent classes get 0."""
    counts = np.bincount(np.asarray(y, dtype=int), minlength=n_classes).astype(float)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


@dataclass
class EarlyStopping:
    """Stop when the validation loss has not improved by ``min_delta`` for ``patience`` epochs."""

    patience: int = 2
    min_delta: float = 1e-4
    best: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict] = field(default_factory=list)

    def update(self, epoch: int, record: dict) -> bool:
        """Record an epoch; True when it is the new best (save a checkpoint then)."""
        self.history.append(dict(record, epoch=epoch))
        loss = record["val_loss"]
        if loss < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = float(loss), epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> EarlyStopping:
        return cls(**json.loads(path.read_text()))


def auto_mixed_precision() -> str:
    """bf16 where the GPU supports it (fp16 overflows more easily), fp16 on older GPUs, else no."""
    import torch

    if not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def default_workers(cap: int = 16) -> int:
    """DataLoader workers per training process: the CPUs this process may use, shared among
    the processes of this machine (``LOCAL_WORLD_SIZE``), one left for the training loop, at
    most ``cap``. Decoding a 1024² PNG costs ~10 ms of a core, so a GPU at ~1,500 images/s
    needs about that many; 0 (decode in the training process) on a one-CPU machine."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    per_process = cpus // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(0, min(cap, per_process - 1))
