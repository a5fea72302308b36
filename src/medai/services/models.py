"""Process-wide model handles: each configured model is loaded once, by one thread, and then
shared read-only by every request (no per-call hooks or state on a shared model)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medai.core import registry


def served_tasks() -> tuple[str, ...]:
    """Triage and every imaging task of the registry."""
    from medai.core import tasks

    return ("triage", *tasks.names("imaging"))


class ModelUnavailable(RuntimeError):
    """A configured model that cannot be loaded (missing directory, broken files)."""


@dataclass
class _Slot:
    predictor: Any = None
    error: str | None = None
    path: str | None = None
    load_s: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class ModelHandles:
    """Lazily loaded predictors for triage and every imaging task (``cxr``, ``mri``, …).

    ``refs``: a directory or registered name per task (None: the configured or bundled
    default). ``threads``: intra-op threads each imaging call may use (see runtime.plan_cpu).
    """

    def __init__(self, refs: dict[str, str | None] | None = None, threads: int | None = None,
                 imaging_runtime: str = "auto") -> None:
        self.tasks = served_tasks()
        self.refs = {task: (refs or {}).get(task) for task in self.tasks}
        self.threads, self.imaging_runtime = threads, imaging_runtime
        self._slots = {task: _Slot() for task in self.tasks}

    def get(self, task: str) -> Any:
        """The task's predictor; raises ModelUnavailable with the reason (cached: a broken
        model is not re-read on every request; ``reload`` retries)."""
        if task not in self._slots:
            raise KeyError(f"unknown task {task!r}; served tasks: {', '.join(self.tasks)}")
        slot = self._slots[task]
        if slot.predictor is None and slot.error is None:
            with slot.lock:
                if slot.predictor is None and slot.error is None:
                    self._load(task, slot)
        if slot.predictor is None:
            raise ModelUnavailable(f"no {task} model available: {slot.error}")
        return slot.predictor

    def _load(self, task: str, slot: _Slot) -> None:
        start = time.perf_counter()
        try:
            path = registry.resolve_model(self.refs[task], task)
            slot.path = str(path)
            options: dict[str, Any] = {}
            if task != "triage":
                options = {"runtime": self.imaging_runtime, "threads": self.threads}
            predictor = registry.load(path, **options)
            card_task = getattr(getattr(predictor, "card", None), "task", task)
            if card_task != task:
                raise registry.ModelLoadError(f"{path} is a {card_task} model, not {task}")
            slot.predictor = predictor
        except Exception as exc:  # any load failure is reported by readiness, not raised
            slot.error = f"{type(exc).__name__}: {exc}"
        slot.load_s = round(time.perf_counter() - start, 3)

    def reload(self, task: str) -> None:
        slot = self._slots[task]
        with slot.lock:
            slot.predictor, slot.error = None, None

    def readiness(self) -> dict[str, Any]:
        """Loads every served model; per task: ready or the error, with the model identity."""
        report: dict[str, Any] = {}
        for task in self.tasks:
            try:
                predictor = self.get(task)
            except ModelUnavailable:
                slot = self._slots[task]
                report[task] = {"ready": False, "path": slot.path, "error": slot.error}
                continue
            report[task] = {"ready": True, "path": self._slots[task].path,
                            "model": predictor.identity.model_dump(),
                            "runtime": getattr(predictor, "runtime", "python"),
                            "load_s": self._slots[task].load_s}
        return report

    def cards(self) -> dict[str, Any]:
        """Each served model's readiness with its card (what it was trained on, its metrics,
        thresholds, intended use and licence notes), for the people who run the models."""
        report = self.readiness()
        for task, entry in report.items():
            card = getattr(self._slots[task].predictor, "card", None)
            if entry["ready"] and card is not None:
                entry["card"] = {k: v for k, v in card.to_dict().items()
                                 if k not in ("training_command",)}
        return report

    def paths(self) -> dict[str, Path | None]:
        return {t: Path(s.path) if s.path else None for t, s in self._slots.items()}
