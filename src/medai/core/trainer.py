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

import contextvars
import gc
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from medai.core import checkpoint
from medai.core.errors import MedaiError
from medai.core.options import lookup

# Task-agnostic helpers: class weights, early stopping, the default number of loader workers.


def balanced_class_weights(y: Sequence[int], n_classes: int) -> np.ndarray:
    """n / (k * count_c), the reference system's class weighting; absent classes get 0."""
    counts = np.bincount(np.asarray(y, dtype=int), minlength=n_classes).astype(float)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


# fp16's gradient scaler with a fused AdamW: the optimizer's step is always called, so
# Accelerate never sees a skipped step and advances the learning-rate schedule on every
# overflow (huggingface/accelerate#4242) — warm-up spent on the scaler's first overflows.
# ``fit`` turns fusing off while an fp16 run builds its optimizer.
_FUSED_ADAMW: contextvars.ContextVar[bool] = contextvars.ContextVar("fused_adamw", default=True)


def adamw(params, **options):
    """AdamW as every adapter builds it: the fused CUDA kernel where training runs on a GPU
    (one launch a step instead of several per tensor; on the H200 a BLIP-2 step is bound by
    launches, docs/benchmarks/gpu.md), the plain loop on CPU, so CPU results are unchanged,
    and under fp16 (above). A checkpoint resumes with either (``checkpoint.load`` keeps the
    optimizer's own kernel). A torch that refuses the fused kernel for these parameters (a
    release before 2.4 with parameters still on the CPU until Accelerate moves them) gets
    the plain one."""
    import torch

    params = list(params)
    if torch.cuda.is_available() and _FUSED_ADAMW.get():
        try:
            return torch.optim.AdamW(params, fused=True, **options)
        except (RuntimeError, TypeError, ValueError):
            pass
    return torch.optim.AdamW(params, **options)


def build_optimizer(adapter: Adapter, model, mixed_precision: str):
    """The adapter's optimizer as ``fit`` builds it: ``adamw`` plain under fp16 (above)."""
    token = _FUSED_ADAMW.set(mixed_precision != "fp16")
    try:
        return adapter.optimizer(model)
    finally:
        _FUSED_ADAMW.reset(token)


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


SCHEDULES = ("cosine", "linear_warmup", "constant")


class TrainingCancelled(MedaiError, RuntimeError):
    """The cancel hook asked the run to stop; the last state is saved for ``resume``."""

    code = "training_cancelled"


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

    factor = lookup(
        {"cosine": cosine, "linear_warmup": linear_warmup, "constant": lambda _step: 1.0},
        name,
        "learning-rate schedule",
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _throughput_counter(adapter: Adapter) -> Callable[[Any], dict[str, int]] | None:
    """What an adapter counts per batch for the per-epoch throughput line: ``throughput(batch)``
    → ``{"images": n, "tokens": t}``, or ``batch_samples(batch)`` → n in its
    ``throughput_unit`` ("samples" unless it says)."""
    if hasattr(adapter, "throughput"):
        return adapter.throughput
    if hasattr(adapter, "batch_samples"):
        unit = getattr(adapter, "throughput_unit", "samples")
        return lambda batch: {unit: adapter.batch_samples(batch)}
    return None


def _shown(key: str, value: Any) -> str:
    """An epoch line's value as a person reads it: losses to 4 decimals, rates to 1, the
    learning rate in 3 significant digits."""
    if not isinstance(value, float):
        return str(value)
    if key.endswith("_per_s"):
        return f"{value:.1f}"
    if key == "lr":
        return f"{value:.3g}"
    if key.endswith("_gb"):
        return f"{value:.2f}"
    return f"{value:.4f}"


def _any_process(acc: Any, flag: Any) -> bool:
    """True when ``flag`` holds on any process, decided together: a stop one process took
    alone (a cancel, a non-finite loss) left the others waiting in DDP's gradient exchange."""
    import torch

    if acc.num_processes == 1:
        return bool(flag)
    value = torch.as_tensor(flag, dtype=torch.float32, device=acc.device).reshape(1)
    return bool(acc.reduce(value, "sum").item() > 0)


def _agreement(acc: Any) -> Callable[[bool], bool]:
    """``ok`` on every process (a collective: each process must call it)."""
    return lambda ok: not _any_process(acc, not ok)


@dataclass
class _Run:
    """One training run as ``fit`` drives it: the Accelerator, the prepared model, optimizer,
    loaders and schedule, where its checkpoints go, its early stopping and where it starts
    (the epoch, and the batch within it a resumed run continues at)."""

    acc: Any
    model: Any
    optimizer: Any
    train_dl: Any
    val_dl: Any
    scheduler: Any
    ckpt: Path
    say: Callable[[str], None]
    stopper: EarlyStopping = field(default_factory=EarlyStopping)
    position: checkpoint.Position = field(default_factory=lambda: checkpoint.Position(epoch=1))
    trained_before: set[str] = field(default_factory=set)

    @property
    def last(self) -> Path:  # the state a resumed run continues from
        return self.ckpt / "last"

    @property
    def best_dir(self) -> Path:  # the best epoch's weights (``adapter.save_best``)
        return self.ckpt / "best"

    def save_state(self, epoch: int, batches: int, sums) -> None:
        """Checkpoint the run after ``batches`` of ``epoch`` (0: the whole epoch), with this
        process's loss sums so far."""
        acc = self.acc
        acc.wait_for_everyone()
        names = checkpoint.trained_names(acc.unwrap_model(self.model), self.trained_before)
        self.trained_before.update(names)
        done = checkpoint.Position(
            epoch=epoch,
            batches=batches,
            accumulation_step=acc.step,
            early_stopping=asdict(self.stopper),
        )
        checkpoint.save(
            self.last,
            model=acc.unwrap_model(self.model),
            names=names,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=acc.scaler,
            position=done,
            rank=acc.process_index,
            is_main=acc.is_main_process,
            barrier=acc.wait_for_everyone,
            agree=_agreement(acc),
            say=self.say,
            local={"loss_sums": [float(v) for v in sums]},
        )


def fit(
    adapter: Adapter,
    cfg: LoopConfig,
    work_dir: Path,
    cancel: Callable[[], bool] | None = None,
    on_epoch: Callable[[Any, int], dict | None] | None = None,
    log: Callable[[str], None] | None = None,
    progress: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> tuple[Any, list[dict]]:
    """Train with early stopping; returns the best model (``adapter.load_best``) and the
    per-epoch history. ``on_epoch(model, epoch)`` runs before each epoch (e.g. to change what
    is trainable) and may return fields for the history; ``progress(fraction)`` after each
    batch (a job's progress bar); ``clock`` times the epochs' throughput (a fake one in tests).

    Resuming is exact: the shuffle order is a function of (seed, epoch) (Accelerate's seedable
    sampler; a dataset with ``set_epoch`` is told the epoch before its iterator starts), and a
    checkpoint restores the trained tensors, optimizer, scheduler, scaler and generators at the
    batch where it was taken (``core.checkpoint``)."""
    clock = clock or time.perf_counter
    run = _prepare(adapter, cfg, work_dir, log)
    _start(run, cfg)
    count = _throughput_counter(adapter)
    for epoch in range(run.position.epoch, cfg.epochs + 1):
        if run.stopper.should_stop:
            break
        extra = (on_epoch(run.acc.unwrap_model(run.model), epoch) if on_epoch else None) or {}
        tally = _train_epoch(run, adapter, cfg, epoch, count, clock, progress, cancel)
        record = _epoch_record(run, adapter, tally, extra)
        _end_epoch(run, adapter, epoch, record)
    _release(run)
    return adapter.load_best(run.best_dir), run.stopper.history


def _prepare(
    adapter: Adapter, cfg: LoopConfig, work_dir: Path, log: Callable[[str], None] | None
) -> _Run:
    """Seed, then build the adapter's model, optimizer and loaders and the learning-rate
    schedule over the whole run, all prepared by Accelerate."""
    from accelerate.utils import set_seed

    mp = auto_mixed_precision() if cfg.mixed_precision == "auto" else cfg.mixed_precision
    acc = _accelerator(cfg, mp)
    say = log or acc.print
    set_seed(cfg.seed)
    model = adapter.build()
    optimizer = build_optimizer(adapter, model, mp)
    train_dl, val_dl = adapter.loaders()
    # Accelerate steps a prepared scheduler once per process at each optimizer step (the
    # processes together see num_processes batches), so its length counts every process's
    # steps: per-process steps alone ended a cosine at 1/N of the run on N GPUs
    steps_per_epoch = math.ceil(len(train_dl) / max(1, acc.num_processes) / cfg.grad_accum)
    scheduler = _schedule(
        cfg.schedule,
        optimizer,
        max(1, steps_per_epoch * acc.num_processes * cfg.epochs),
        cfg.warmup_ratio,
    )
    model, optimizer, train_dl, val_dl, scheduler = acc.prepare(
        model, optimizer, train_dl, val_dl, scheduler
    )
    return _Run(
        acc, model, optimizer, train_dl, val_dl, scheduler, Path(work_dir) / "checkpoints", say
    )


def _accelerator(cfg: LoopConfig, mixed_precision: str):
    """The run's Accelerator: its precision, gradient accumulation and DDP options."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs

    handlers = (
        [DistributedDataParallelKwargs(find_unused_parameters=True)]
        if cfg.find_unused_parameters
        else []
    )
    return Accelerator(
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=cfg.grad_accum,
        cpu=not torch.cuda.is_available(),
        kwargs_handlers=handlers,
        # the batch's copy to the GPU overlaps the step before it (loaders pin
        # their memory on CUDA); the order of an epoch is a function of the seed
        dataloader_config=DataLoaderConfiguration(
            use_seedable_sampler=True, data_seed=cfg.seed, non_blocking=torch.cuda.is_available()
        ),
    )


def _start(run: _Run, cfg: LoopConfig) -> None:
    """Where the run starts: its last checkpoint when it resumes and has one, else epoch 1
    (saying how large each checkpoint will be, and that the disk holds it)."""
    run.stopper = EarlyStopping(patience=cfg.patience)
    # early stopping's state now travels in the checkpoint; this file is read only to resume
    # a checkpoint written before medai-checkpoint/1
    state_file = run.ckpt / "trainer_state.json"
    if cfg.resume:
        checkpoint.recover(run.last)
        if not run.last.is_dir():
            run.say(f"no checkpoint to resume at {run.last}: starting from epoch 1")
    if cfg.resume and checkpoint.read_position(run.last) is not None:
        _resume(run, cfg)
    elif cfg.resume and state_file.is_file() and run.last.is_dir():
        # a checkpoint written before medai-checkpoint/1 (Accelerate's whole-model state)
        run.acc.load_state(str(run.last))
        run.stopper = EarlyStopping.load(state_file)
        run.position = checkpoint.Position(
            epoch=(run.stopper.history[-1]["epoch"] + 1 if run.stopper.history else 1)
        )
        run.say(f"resuming an older checkpoint at epoch {run.position.epoch}")
    else:
        acc = run.acc
        names = checkpoint.trained_names(acc.unwrap_model(run.model))
        sizes = checkpoint.estimate_bytes(acc.unwrap_model(run.model), names, run.optimizer)
        free = checkpoint.check_space(run.ckpt, sum(sizes.values()), agree=_agreement(acc))
        run.say(
            f"checkpoints will hold {len(names)} trained tensors: about "
            f"{checkpoint.human_size(sum(sizes.values()))} each "
            f"({checkpoint.human_size(free)} free at {run.ckpt})"
        )


def _resume(run: _Run, cfg: LoopConfig) -> None:
    """Continue from the last checkpoint: its tensors, optimizer, schedule, scaler, early
    stopping and position (a complete epoch resumes at the next one)."""
    acc = run.acc
    position = checkpoint.load(
        run.last,
        model=acc.unwrap_model(run.model),
        optimizer=run.optimizer,
        scheduler=run.scheduler,
        scaler=acc.scaler,
        rank=acc.process_index,
    )
    run.stopper = EarlyStopping(**{**position.early_stopping, "patience": cfg.patience})
    run.trained_before = set(position.trained)
    acc.step = position.accumulation_step
    if position.batches == 0:  # a complete epoch: the generators as they were after it
        checkpoint.restore_rng(run.last, acc.process_index)
        position = checkpoint.Position(epoch=position.epoch + 1, trained=position.trained)
    run.position = position
    run.say(
        f"resuming at epoch {position.epoch}, batch {position.batches} "
        f"(best val loss {run.stopper.best:.4f})"
    )


@dataclass
class _Tally:
    """What one epoch's training counted: this process's loss sums (sum, count), what the
    adapter counts per batch (None: it counts nothing), the seconds it took and the batches a
    resumed run skipped."""

    sums: Any
    seen: dict[str, int] | None
    elapsed: float
    skipped: int


def _train_epoch(
    run: _Run,
    adapter: Adapter,
    cfg: LoopConfig,
    epoch: int,
    count: Callable[[Any], dict[str, int]] | None,
    clock: Callable[[], float],
    progress: Callable[[float], None] | None,
    cancel: Callable[[], bool] | None,
) -> _Tally:
    """One epoch's batches (from where a resumed run stopped), with its progress bar, the
    non-finite loss check, the job's progress and its cancel hook."""
    import torch

    acc, n_batches = run.acc, len(run.train_dl)
    skip, sums, bar = _epoch_batches(run, cfg, epoch)
    bad = torch.zeros((), dtype=torch.bool, device=acc.device)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats(acc.device)
    seen: dict[str, int] | None = None if count is None else {}
    started = clock()
    restored = not skip
    for i, batch in enumerate(bar, start=skip):
        if not restored:  # mid-epoch resume: the generators as they were at the
            # checkpoint, once the loader's iterator has drawn its own seed
            checkpoint.restore_rng(run.last, acc.process_index)
            restored = True
        _step(run, adapter, cfg, batch, sums, bad)
        if count is not None and seen is not None:
            for key, value in count(batch).items():
                seen[key] = seen.get(key, 0) + int(value)
        # reading a value off the GPU waits for it: only every few batches, so the
        # device is never idle while the host checks
        if i % 20 == 0 or i == n_batches - 1:
            if _any_process(acc, bad):
                raise RuntimeError(
                    f"training loss became non-finite at epoch {epoch}; "
                    "lower the learning rate or use fp32/bf16"
                )
            bar.set_postfix(loss=f"{float(sums[0] / sums[1].clamp(min=1)):.4f}")
        if progress is not None:
            progress((epoch - 1 + (i + 1) / max(1, n_batches)) / cfg.epochs)
        if cancel is not None and acc.sync_gradients and _any_process(acc, cancel()):
            run.save_state(epoch, i + 1, sums)
            raise TrainingCancelled(
                f"cancelled during epoch {epoch} after batch {i + 1}; "
                "its state is saved and a resumed run continues from "
                "there"
            )
    if not restored:  # the checkpoint was taken after the epoch's last batch
        checkpoint.restore_rng(run.last, acc.process_index)
    return _Tally(sums, seen, clock() - started, skip)


def _epoch_batches(run: _Run, cfg: LoopConfig, epoch: int):
    """The epoch's batches behind its progress bar, after the ones a resumed run already
    trained (how many, and this process's loss sums over them)."""
    import torch
    from tqdm.auto import tqdm

    acc, train_dl = run.acc, run.train_dl
    run.model.train()
    train_dl.set_epoch(epoch)
    dataset = getattr(train_dl, "dataset", None)
    if dataset is not None and hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    skip = run.position.batches if epoch == run.position.epoch else 0
    sums = torch.zeros(2, device=acc.device)
    if skip:  # this process's share of the epoch's loss before the checkpoint
        sums += torch.tensor(
            checkpoint.local_state(run.last, acc.process_index)["loss_sums"], device=acc.device
        )
    batches = acc.skip_first_batches(train_dl, skip) if skip else train_dl
    bar = tqdm(
        batches,
        desc=f"epoch {epoch}/{cfg.epochs}",
        initial=skip,
        total=len(train_dl),
        disable=not (cfg.progress and acc.is_local_main_process),
    )
    return skip, sums, bar


def _step(run: _Run, adapter: Adapter, cfg: LoopConfig, batch: Any, sums, bad) -> None:
    """One batch: its loss (averaged over its items), backward, clipping, the optimizer and
    schedule steps (Accelerate applies them at the accumulation's last batch); the batch's
    loss goes into ``sums`` and a non-finite one sets ``bad``, both in place."""
    import torch

    acc, model, optimizer = run.acc, run.model, run.optimizer
    with acc.accumulate(model):
        loss_sum, n = adapter.loss(model, batch)
        n = torch.as_tensor(n, dtype=torch.float32, device=acc.device)
        loss = loss_sum / n.clamp(min=1)
        bad |= ~torch.isfinite(loss.detach())
        acc.backward(loss)
        if cfg.clip_grad_norm and acc.sync_gradients:
            acc.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
        optimizer.step()
        run.scheduler.step()
        optimizer.zero_grad()
    sums += torch.stack([loss_sum.detach().float(), n])


def _epoch_record(run: _Run, adapter: Adapter, tally: _Tally, extra: dict) -> dict:
    """The epoch's line of the history: the training loss over every process, validation,
    ``on_epoch``'s fields, the learning rate, throughput and peak GPU memory."""
    import torch

    acc = run.acc
    sums = acc.reduce(tally.sums, "sum")  # the training loss over every process's batches
    record = {
        "train_loss": float(sums[0] / sums[1].clamp(min=1)),
        **adapter.validate(run.model, run.val_dl, acc),
        **extra,
        "lr": float(run.scheduler.get_last_lr()[0]),
    }  # the first group's, at the end
    if tally.seen is not None and tally.elapsed > 0:  # this process's batches, timed; all alike
        for key, value in tally.seen.items():
            record[f"{key}_per_s"] = round(value * acc.num_processes / tally.elapsed, 1)
        record["step_s"] = round(tally.elapsed / max(1, len(run.train_dl) - tally.skipped), 4)
    if torch.cuda.is_available():  # this process's GPU, training and validation
        record["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated(acc.device) / 2**30, 2)
    return record


def _end_epoch(run: _Run, adapter: Adapter, epoch: int, record: dict) -> None:
    """Record the epoch for early stopping, say its line, keep its weights when it is the
    best so far and checkpoint the run after it."""
    import torch

    improved = run.stopper.update(epoch, record)
    run.say(f"epoch {epoch}: " + ", ".join(f"{k}={_shown(k, v)}" for k, v in record.items()))
    run.acc.wait_for_everyone()
    if improved and run.acc.is_main_process:
        run.best_dir.mkdir(parents=True, exist_ok=True)
        adapter.save_best(run.acc.unwrap_model(run.model), run.best_dir)
    run.save_state(epoch, 0, torch.zeros(2))


def _release(run: _Run) -> None:
    """End the run and free what it held before the best model is loaded."""
    import torch

    run.acc.end_training()
    # Accelerate's autocast wrapper makes the prepared model refer to itself: without this the
    # trained model, its gradients and the optimizer's moments stayed on the GPU beside the
    # model loaded next (BLIP-2's reload for captioning the test part)
    run.acc.free_memory()
    run.model = run.optimizer = run.scheduler = run.train_dl = run.val_dl = None  # the last refs
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
