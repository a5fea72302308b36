"""Training checkpoints that hold what training changes, and nothing it does not.

The first real-size BLIP-2 run (7.75 B parameters, LoRA r 16) wrote, at every epoch, the whole
frozen model through Accelerate's ``save_state``: a 15.6 GB ``model.safetensors`` beside a 73 MB
adapter, 16–35 s per epoch, and a second run on the same 64 GB disk died with "No space left on
device" half-way through a write. A checkpoint here is instead:

- ``trained.safetensors``: the parameters that train (``requires_grad``, now or earlier in the
  run — a recipe may freeze a part it trained before) and the buffers of the modules that own
  them (a trainable batch norm's running statistics), under their ``state_dict`` names. The
  frozen base is rebuilt by the adapter as it was built the first time (same files, same seed),
  never copied;
- ``optimizer.pt``, ``scheduler.pt``, ``scaler.pt`` (fp16 only): their ``state_dict``;
- ``rng-{rank}.safetensors`` + ``position.json``: every random generator a step draws from
  (Python, NumPy, torch CPU and CUDA, per process) and where the run stands (epoch, batches done
  in it, the epoch's loss sums, Accelerate's accumulation counter), so a resumed run continues
  the exact sequence an uninterrupted one would have taken.

Its size is computed before anything is written and checked against the free space of the
disk (``CheckpointSpaceError`` names both), and it is written beside the previous one and
swapped in by renames, so a run stopped mid-write still has its last good checkpoint.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from medai.core.errors import MedaiError

TRAINED_FILE = "trained.safetensors"
POSITION_FILE = "position.json"
FORMAT = "medai-checkpoint/1"
# Kept free beyond the checkpoint itself: the disk also holds logs, the best weights and
# whatever else the machine writes while a checkpoint is being written.
FREE_SPACE_MARGIN = 256 * 2**20


class CheckpointSpaceError(MedaiError, OSError):
    """The disk cannot hold the next checkpoint; raised before a byte of it is written."""

    code = "storage_full"


class CheckpointMismatchError(MedaiError, ValueError):
    """A checkpoint that does not fit the model rebuilt to resume it (other base, other
    trainable parts): resuming would silently train something else."""

    code = "checkpoint_mismatch"


@dataclass
class Position:
    """Where a run stands: ``batches`` of ``epoch`` are done (0: the epoch is complete)."""

    epoch: int
    batches: int = 0
    accumulation_step: int = 0
    early_stopping: dict = field(default_factory=dict)
    trained: list[str] = field(default_factory=list)
    bytes: dict[str, int] = field(default_factory=dict)
    format: str = FORMAT


def trained_names(model: Any, before: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """``state_dict`` names of what training changes: parameters that require a gradient,
    the buffers of the modules that own them, and ``before`` (trained earlier in the run)."""
    names = set(before)
    for prefix, module in model.named_modules():
        own = list(module.named_parameters(recurse=False))
        if not any(p.requires_grad for _, p in own):
            continue
        dot = f"{prefix}." if prefix else ""
        names.update(dot + n for n, p in own if p.requires_grad)
        names.update(dot + n for n, _ in module.named_buffers(recurse=False))
    keys = set(model.state_dict(keep_vars=True))
    return sorted(names & keys)


def _tensor_bytes(obj: Any) -> int:
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def trained_state(model: Any, names: list[str]) -> dict[str, Any]:
    """The named tensors on the CPU, each its own storage (safetensors refuses shared ones)."""
    state = model.state_dict(keep_vars=True)
    return {name: state[name].detach().to("cpu", copy=True).contiguous() for name in names}


def estimate_bytes(model: Any, names: list[str], optimizer: Any) -> dict[str, int]:
    """A checkpoint's size by part, before it is written. Before the first optimizer step an
    optimizer holds no state yet: its share is then taken as two fp32 tensors per trained
    parameter (AdamW's moments), the most the optimizers used here keep."""
    state = model.state_dict(keep_vars=True)
    trained = sum(_tensor_bytes(state[n]) for n in names)
    opt = _tensor_bytes(optimizer.state_dict().get("state", {}))
    if opt == 0:
        opt = 2 * sum(
            state[n].numel() * 4 for n in names if getattr(state[n], "requires_grad", False)
        )
    return {"trained": trained, "optimizer": opt}


def check_space(directory: Path, needed: int, agree: Callable[[bool], bool] | None = None) -> int:
    """Raise ``CheckpointSpaceError`` unless ``directory``'s disk has ``needed`` bytes free
    beyond a margin; returns the free bytes. ``agree`` (every process calls it) makes all
    processes raise when one disk is short, instead of the others waiting at a barrier."""
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    ok = free >= needed + FREE_SPACE_MARGIN
    if agree is not None:
        ok = agree(ok)
    if not ok:
        raise CheckpointSpaceError(
            f"checkpoint_space: the next checkpoint needs {human_size(needed)} in {directory} "
            f"and only {human_size(free)} is free (keeping {human_size(FREE_SPACE_MARGIN)} in "
            "reserve); free some space or point the run's output at a bigger disk"
        )
    return free


def human_size(n: float) -> str:
    """Bytes in decimal units, as disks are sold and ``df -H`` prints them."""
    if n < 1000:
        return f"{int(n)} B"
    for unit in ("KB", "MB"):
        n /= 1000
        if n < 1000:
            return f"{n:.1f} {unit}"
    return f"{n / 1000:.1f} GB"


# --- random generators ------------------------------------------------------------------


def rng_snapshot() -> dict[str, Any]:
    """Every generator a training step may draw from, as tensors and JSON-able values."""
    import torch

    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    version, internal, gauss = random.getstate()
    # the legacy (default) form of the global MT19937 state is this tuple, never the dict
    state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    kind, keys, pos, has_gauss, cached = state
    meta = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }
    return {"tensors": tensors, "meta": meta}


def rng_restore(snapshot: dict[str, Any]) -> None:
    import torch

    tensors, meta = snapshot["tensors"], snapshot["meta"]
    torch.set_rng_state(tensors["torch"])
    cuda = [
        tensors[k]
        for k in sorted((k for k in tensors if k.startswith("cuda")), key=lambda k: int(k[4:]))
    ]
    if cuda and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            import warnings

            warnings.warn(
                f"the checkpoint holds the generators of {len(cuda)} GPUs and this "
                f"machine has {torch.cuda.device_count()}: CUDA generators start "
                "afresh, so dropout on the GPU will not repeat the interrupted run",
                stacklevel=2,
            )
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


# --- writing and reading ----------------------------------------------------------------


def save(
    directory: Path,
    *,
    model: Any,
    names: list[str],
    optimizer: Any,
    scheduler: Any,
    scaler: Any,
    position: Position,
    rank: int,
    is_main: bool,
    barrier: Callable[[], None],
    local: dict | None = None,
    agree: Callable[[bool], bool] | None = None,
    say: Callable[[str], None] | None = None,
) -> Position:
    """Write the checkpoint at ``directory`` (``…/last``), replacing the previous one only
    once the new one is complete. Every process calls it: each writes its generators and
    ``local`` (what differs per process, e.g. its share of the epoch's loss sums)."""
    import torch
    from safetensors.torch import save_file

    tmp = directory.with_name(directory.name + ".tmp")
    sizes = estimate_bytes(model, names, optimizer)
    check_space(directory.parent, sum(sizes.values()), agree)  # every process, together
    if is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file(trained_state(model, names), str(tmp / TRAINED_FILE))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        if scaler is not None:
            torch.save(scaler.state_dict(), tmp / "scaler.pt")
        position.trained = list(names)
        position.bytes = {p.name: p.stat().st_size for p in tmp.iterdir()}
    barrier()
    snapshot = rng_snapshot()
    save_file(snapshot["tensors"], str(tmp / f"rng-{rank}.safetensors"))
    (tmp / f"rng-{rank}.json").write_text(json.dumps({**snapshot["meta"], "local": local or {}}))
    barrier()
    if is_main:
        (tmp / POSITION_FILE).write_text(json.dumps(asdict(position), indent=1))
        old = directory.with_name(directory.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if directory.exists():
            directory.rename(old)
        tmp.rename(directory)
        shutil.rmtree(old, ignore_errors=True)
        total = sum(p.stat().st_size for p in directory.iterdir())
        if say is not None:
            say(
                f"checkpoint: {human_size(total)} at {directory} ({len(names)} trained tensors, "
                f"{human_size(position.bytes.get(TRAINED_FILE, 0))}; optimizer "
                f"{human_size(position.bytes.get('optimizer.pt', 0))}); "
                f"{human_size(shutil.disk_usage(directory).free)} free"
            )
    barrier()
    return position


def recover(directory: Path) -> None:
    """A run killed between the two renames of ``save`` left the previous checkpoint as
    ``last.old`` and no ``last``: put it back (``last.tmp``, possibly incomplete, is never
    used)."""
    old = directory.with_name(directory.name + ".old")
    if not directory.exists() and (old / POSITION_FILE).is_file():
        old.rename(directory)


def read_position(directory: Path) -> Position | None:
    file = directory / POSITION_FILE
    if not file.is_file():
        return None
    raw = json.loads(file.read_text())
    if raw.get("format") != FORMAT:
        raise CheckpointMismatchError(
            f"{directory}: not a {FORMAT} checkpoint ({raw.get('format')!r})"
        )
    return Position(**raw)


def load(
    directory: Path, *, model: Any, optimizer: Any, scheduler: Any, scaler: Any, rank: int
) -> Position:
    """Put the checkpoint's trained tensors into the rebuilt ``model`` and restore the
    optimizer, scheduler and scaler; the generators are restored by ``restore_rng`` at the
    point of the loop where they were taken."""
    import torch
    from safetensors.torch import load_file

    position = read_position(directory)
    if position is None:
        raise CheckpointMismatchError(f"{directory}: no {POSITION_FILE}")
    trained = load_file(str(directory / TRAINED_FILE))
    own = model.state_dict(keep_vars=True)
    unknown = sorted(set(trained) - set(own))
    wrong = sorted(k for k in set(trained) & set(own) if own[k].shape != trained[k].shape)
    if unknown or wrong:
        raise CheckpointMismatchError(
            f"{directory}: the checkpoint does not fit the model rebuilt to resume it "
            f"({len(unknown)} tensors it does not have, e.g. {unknown[:3]}; {len(wrong)} of "
            f"another shape, e.g. {wrong[:3]}): was the base or the recipe changed?"
        )
    with torch.no_grad():
        for name, value in trained.items():
            own[name].copy_(value.to(own[name].device, own[name].dtype))
    load_optimizer_state(
        optimizer, torch.load(directory / "optimizer.pt", weights_only=True, map_location="cpu")
    )
    scheduler.load_state_dict(torch.load(directory / "scheduler.pt", weights_only=True))
    if scaler is not None and (directory / "scaler.pt").is_file():
        scaler.load_state_dict(torch.load(directory / "scaler.pt", weights_only=True))
    return position


def load_optimizer_state(optimizer, state: dict) -> None:
    """``optimizer.load_state_dict(state)``, keeping the optimizer's own kernel. AdamW's
    ``fused``/``foreach`` travel in the saved groups and would replace the ones this machine
    chose (``trainer.adamw``): a checkpoint written on a CPU, or before AdamW was fused,
    turned a fused optimizer plain while the gradient scaler still handed it fp16's
    ``grad_scale`` (an AssertionError at the first step), and a GPU's checkpoint resumed on a
    CPU stayed fused. A fused optimizer's step counters live beside their parameters."""
    import torch

    kernels = [{k: g[k] for k in ("fused", "foreach") if k in g} for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, kernel in zip(optimizer.param_groups, kernels, strict=True):
        group.update(kernel)
        if group.get("fused"):
            for param in group["params"]:
                step = optimizer.state.get(param, {}).get("step")
                if isinstance(step, torch.Tensor):
                    optimizer.state[param]["step"] = step.to(torch.float32).to(param.device)


def restore_rng(directory: Path, rank: int) -> None:
    """This process's generators as they were when the checkpoint was taken."""
    from safetensors.torch import load_file

    tensors = load_file(str(directory / f"rng-{rank}.safetensors"))
    meta = json.loads((directory / f"rng-{rank}.json").read_text())
    rng_restore({"tensors": tensors, "meta": meta})


def local_state(directory: Path, rank: int) -> dict:
    """What this process saved of its own (``save``'s ``local``)."""
    return json.loads((directory / f"rng-{rank}.json").read_text()).get("local", {})
