"""The one training loop every model family uses (imaging, the triage transformer, BLIP-2 LoRA).

A task supplies a small adapter (how to build the model and optimizer, its data loaders, the
loss of a batch, validation, and how to save/load the best weights); the loop owns everything
else, the same way for all: seeding, Accelerate (mixed precision, several processes or GPUs),
gradient accumulation, gradient clipping, the learning-rate schedule, the training loss averaged
across processes, early stopping on validation loss with the best weights restored, resuming
from the last epoch, progress bars, and a cancel hook the job queue uses to stop a run cleanly
(its state is saved first, so ``resume`` continues it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from medai.core.tasks import lookup
from medai.core.training import EarlyStopping, auto_mixed_precision

SCHEDULES = ("cosine", "linear_warmup", "constant")


class TrainingCancelled(RuntimeError):
    """The cancel hook asked the run to stop; the last state is saved for ``resume``."""


@dataclass
class LoopConfig:
    epochs: int
    patience: int = 3
    grad_accum: int = 1
    clip_grad_norm: float | None = 1.0
    mixed_precision: str = "auto"  # auto | no | bf16 | fp16
    seed: int = 13
    resume: bool = False
    schedule: str = "cosine"  # per optimizer step: cosine | linear_warmup | constant
    warmup_ratio: float = 0.0
    find_unused_parameters: bool = False  # DDP, when parts are frozen for some epochs
    progress: bool = True


class Adapter(Protocol):
    def build(self) -> Any: ...  # the model (called after seeding)
    def optimizer(self, model: Any) -> Any: ...
    def loaders(self) -> tuple[Any, Any]: ...  # train, validation
    def loss(self, model: Any, batch: Any) -> tuple[Any, Any]: ...  # (sum, count) of the batch
    def validate(self, model: Any, loader: Any, acc: Any) -> dict: ...  # has "val_loss"
    def save_best(self, model: Any, directory: Path) -> None: ...  # the unwrapped model
    def load_best(self, directory: Path) -> Any: ...


def _schedule(name: str, optimizer, total_steps: int, warmup_ratio: float):
    import torch

    def cosine(step: int) -> float:
        return 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / max(1, total_steps)))

    def linear_warmup(step: int) -> float:
        warm = int(warmup_ratio * total_steps)
        if step < warm:
            return (step + 1) / max(1, warm)
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    factor = lookup({"cosine": cosine, "linear_warmup": linear_warmup,
                     "constant": lambda _step: 1.0}, name, "learning-rate schedule")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def fit(adapter: Adapter, cfg: LoopConfig, work_dir: Path,
        cancel: Callable[[], bool] | None = None,
        on_epoch: Callable[[Any, int], dict | None] | None = None,
        log: Callable[[str], None] | None = None,
        progress: Callable[[float], None] | None = None) -> tuple[Any, list[dict]]:
    """Train with early stopping; returns the best model (``adapter.load_best``) and the
    per-epoch history. ``on_epoch(model, epoch)`` runs before each epoch (e.g. to change what
    is trainable) and may return fields for the history; ``progress(fraction)`` after each
    batch (a job's progress bar)."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, set_seed
    from tqdm.auto import tqdm

    mp = auto_mixed_precision() if cfg.mixed_precision == "auto" else cfg.mixed_precision
    handlers = ([DistributedDataParallelKwargs(find_unused_parameters=True)]
                if cfg.find_unused_parameters else [])
    acc = Accelerator(mixed_precision=mp, gradient_accumulation_steps=cfg.grad_accum,
                      cpu=not torch.cuda.is_available(), kwargs_handlers=handlers)
    say = log or acc.print
    set_seed(cfg.seed)
    model = adapter.build()
    optimizer = adapter.optimizer(model)
    train_dl, val_dl = adapter.loaders()
    steps_per_epoch = math.ceil(len(train_dl) / max(1, acc.num_processes) / cfg.grad_accum)
    scheduler = _schedule(cfg.schedule, optimizer, max(1, steps_per_epoch * cfg.epochs),
                          cfg.warmup_ratio)
    model, optimizer, train_dl, val_dl, scheduler = acc.prepare(model, optimizer, train_dl,
                                                                val_dl, scheduler)
    ckpt = Path(work_dir) / "checkpoints"
    last, best_dir, state_file = ckpt / "last", ckpt / "best", ckpt / "trainer_state.json"
    stopper, start = EarlyStopping(patience=cfg.patience), 1
    if cfg.resume and state_file.is_file() and last.is_dir():
        acc.load_state(str(last))
        stopper = EarlyStopping.load(state_file)
        start = stopper.history[-1]["epoch"] + 1 if stopper.history else 1
        say(f"resuming after epoch {start - 1} (best val loss {stopper.best:.4f})")

    def save_state() -> None:
        acc.wait_for_everyone()
        ckpt.mkdir(parents=True, exist_ok=True)
        acc.save_state(str(last))
        if acc.is_main_process:
            stopper.save(state_file)
        acc.wait_for_everyone()

    for epoch in range(start, cfg.epochs + 1):
        if stopper.should_stop:
            break
        extra = (on_epoch(acc.unwrap_model(model), epoch) if on_epoch else None) or {}
        model.train()
        sums = torch.zeros(2, device=acc.device)
        bar = tqdm(train_dl, desc=f"epoch {epoch}/{cfg.epochs}",
                   disable=not (cfg.progress and acc.is_local_main_process))
        for i, batch in enumerate(bar):
            with acc.accumulate(model):
                loss_sum, n = adapter.loss(model, batch)
                n = torch.as_tensor(n, dtype=torch.float32, device=acc.device)
                loss = loss_sum / n.clamp(min=1)
                if not math.isfinite(float(loss.detach())):
                    raise RuntimeError(f"training loss became {float(loss.detach())} at epoch "
                                       f"{epoch}; lower the learning rate or use fp32/bf16")
                acc.backward(loss)
                if cfg.clip_grad_norm and acc.sync_gradients:
                    acc.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            sums += torch.stack([loss_sum.detach().float(), n])
            bar.set_postfix(loss=f"{float(sums[0] / sums[1].clamp(min=1)):.4f}")
            if progress is not None:
                progress((epoch - 1 + (i + 1) / max(1, len(train_dl))) / cfg.epochs)
            if cancel is not None and cancel():
                save_state()
                raise TrainingCancelled(f"cancelled during epoch {epoch}; its state is saved "
                                        "and a resumed run starts that epoch again")
        sums = acc.reduce(sums, "sum")  # the training loss over every process's batches
        record = {"train_loss": float(sums[0] / sums[1].clamp(min=1)),
                  **adapter.validate(model, val_dl, acc), **extra}
        improved = stopper.update(epoch, record)
        say(f"epoch {epoch}: " + ", ".join(
            f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
        acc.wait_for_everyone()
        if improved and acc.is_main_process:
            best_dir.mkdir(parents=True, exist_ok=True)
            adapter.save_best(acc.unwrap_model(model), best_dir)
        save_state()
    acc.end_training()
    return adapter.load_best(best_dir), stopper.history
