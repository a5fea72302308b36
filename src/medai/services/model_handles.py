"""Process-wide model handles: each configured model is loaded once, by one thread, and then
shared read-only by every request (no per-call hooks or state on a shared model).

A handle can be swapped while it serves (``swap``: the model registry's promotion and rollback,
``platform.lifecycle``): the new model loads beside the old one, then one assignment makes it
the one ``get`` returns. A request or job that already holds the old predictor finishes with
it; nothing waits and nothing fails during the swap. A new model that does not load leaves the
old one serving, and readiness says so."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medai.core import model_dir, task_registry
from medai.core.errors import MedaiError
from medai.core.task_kinds import kind_of
from medai.services.triage import red_flag_options
from medai.settings import get_settings


def served_tasks() -> tuple[str, ...]:
    """Every task of the registry the server keeps a model of (``Task.served``): those of
    their own kinds first (triage), then the imaging tasks, each by name."""
    served = [t for t in task_registry.all_tasks() if t.served]
    return tuple(
        t.name for t in sorted(served, key=lambda t: (kind_of(t.kind).serve_order, t.name))
    )


def configured_models() -> dict[str, Path]:
    """``MEDAI_MODELS`` (``medai serve --model TASK=DIR`` adds to it): the model folder this
    installation names for each task, every task checked against the task registry. A
    command's ``--model`` goes before it and the bundled default after it
    (``core.model_dir.resolve_model`` decides)."""

    models = dict(get_settings().models.models)
    model_dir.check_tasks(models, "MEDAI_MODELS")
    return models


def model_folder(ref: str | Path | None, task: str) -> Path:
    """The folder a command uses for ``task``: its ``--model`` (``ref``: a folder, or a name
    found under MEDAI_MODELS_DIR too), else the task's folder in MEDAI_MODELS, else the
    bundled default — ``model_dir.resolve_model`` with this installation's settings."""

    return model_dir.resolve_model(
        ref, task, configured_models(), models_dir=get_settings().storage.models_dir
    )


class ModelUnavailable(MedaiError, RuntimeError):
    """A configured model that cannot be loaded (missing directory, broken files)."""

    status, code = 503, "unavailable"


@dataclass
class _Slot:
    predictor: Any = None
    error: str | None = None
    path: str | None = None
    load_s: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    swap_error: str | None = None  # the last swap that did not load (the old model serves)


def _warm_up(task: str) -> Callable[[Any], None] | None:
    """The task's warm-up (``Task.warm``); None when it has none or is no longer registered
    (a hospital package withdrawn while its model still serves)."""
    try:
        return task_registry.get(task).warm
    except task_registry.TaskError:
        return None


def _warm(task: str, predictor: Any) -> None:
    """A swapped-in model answers its first request as fast as its hundredth."""
    try:
        hook = _warm_up(task)
        if hook is not None:
            hook(predictor)
    except Exception as exc:  # broad: a cold first answer is slower, not wrong (logged)
        logging.getLogger("medai.services").warning(
            "%s warm-up after a swap failed: %s", task, type(exc).__name__
        )


class ModelHandles:
    """Lazily loaded predictors for every served task registered when it is made
    (``Task.served``: ``triage``, ``cxr``, ``mri``, a hospital's own …).

    ``models``: a folder or registered model name per task, over ``MEDAI_MODELS``; a task
    named by neither serves its bundled default (``model_dir.resolve_model`` decides, for the
    first load, a registry pin and a swap alike). ``threads``: intra-op threads each imaging
    call may use (see runtime.plan_cpu).
    """

    def __init__(
        self,
        models: Mapping[str, str | Path | None] | None = None,
        threads: int | None = None,
        imaging_runtime: str = "auto",
    ) -> None:

        given = {task: str(ref) for task, ref in (models or {}).items() if ref}
        model_dir.check_tasks(given, "models")
        self.models_dir = get_settings().storage.models_dir  # where a model name is looked up
        self.tasks = served_tasks()
        # what serves each task: configured at start, then pinned or swapped by the registry
        self.models: dict[str, str] = {
            **{task: str(folder) for task, folder in configured_models().items()},
            **given,
        }
        self.threads, self.imaging_runtime = threads, imaging_runtime
        self._slots = {task: _Slot() for task in self.tasks}
        self._previous: dict[str, _Slot] = {}  # the model each swap replaced, per task

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

    def _load(self, task: str, slot: _Slot, ref: Path | None = None) -> None:
        start = time.perf_counter()
        try:
            path = model_dir.resolve_model(ref, task, self.models, self.models_dir)
            slot.path = str(path)
            predictor = model_dir.load(path, **self._load_options(task_registry.get(task)))
            card_task = getattr(getattr(predictor, "card", None), "task", task)
            if card_task != task:
                raise model_dir.ModelLoadError(f"{path} is a {card_task} model, not {task}")
            slot.predictor = predictor
        except Exception as exc:  # broad: readiness reports it (ModelUnavailable)
            slot.error = f"{type(exc).__name__}: {exc}"
        slot.load_s = round(time.perf_counter() - start, 3)

    def _load_options(self, spec: task_registry.Task) -> dict[str, Any]:
        """What the task's loader takes beside the folder: an imaging model the configured
        runtime and this process's threads, a task that reads red flags the configured
        red-flag engine."""
        options: dict[str, Any] = {}
        if kind_of(spec.kind).reads_images:
            options.update(runtime=self.imaging_runtime, threads=self.threads)
        if spec.reads_red_flags:
            options["flag_options"] = red_flag_options()
        return options

    def warm(self, task: str) -> None:
        """Run the task's warm-up (``Task.warm``) on its served predictor, loading it first;
        nothing for a task that has none. What the warm-up raises is the caller's to log."""
        hook = _warm_up(task)
        if hook is not None:
            hook(self.get(task))

    def red_flag_reader(self) -> Any:
        """The served predictor that carries the red-flag engine (``Task.reads_red_flags``:
        triage's), which reads a study's clinical question for urgent signs;
        ModelUnavailable when no served task has one or its model does not load."""
        for spec in task_registry.all_tasks():
            if spec.reads_red_flags and spec.name in self._slots:
                return self.get(spec.name)
        raise ModelUnavailable("no served task reads red flags")

    def reload(self, task: str) -> None:
        slot = self._slots[task]
        with slot.lock:
            slot.predictor, slot.error = None, None

    def configured_path(self, task: str) -> Path:
        """The directory this process was configured with for ``task`` (the ``models`` given,
        ``MEDAI_MODELS`` or the bundled default); ModelLoadError when there is none."""
        return model_dir.resolve_model(None, task, self.models, self.models_dir)

    def served_path(self, task: str) -> str | None:
        """The directory ``get`` serves (or will load) for ``task``."""
        return self._slots[task].path

    def pin(self, task: str, path: Path) -> None:
        """Serve ``path`` for ``task`` from the first load on (before anything was loaded)."""
        slot = self._slots[task]
        with slot.lock:
            if slot.predictor is None:
                slot.path, slot.error = str(path), None
                self.models[task] = str(path)

    def swap(self, task: str, path: Path) -> bool:
        """Load ``path`` beside the model serving ``task`` and make it the served one; False
        (the old one goes on serving, readiness names the error) when it does not load. The
        caller serialises swaps of one task (one watcher per process)."""
        old = self._slots[task]
        if old.path == str(path) and old.swap_error is None and old.predictor is not None:
            return True
        if old.predictor is None and old.error is None:  # nothing loaded yet: load it lazily
            self.pin(task, path)
            return True
        fresh = self._previous.pop(task, None)  # a rollback to the model just replaced
        if fresh is None or fresh.path != str(path):
            fresh = _Slot()
            self._load(task, fresh, Path(path))
            if fresh.predictor is None:
                old.swap_error = f"{path}: {fresh.error}"
                return False
            _warm(task, fresh.predictor)
        self.models[task] = str(path)
        self._slots[task] = fresh  # one assignment: get() sees the old or the new, never none
        if old.predictor is not None:
            old.swap_error = None
            self._previous[task] = old  # kept loaded: rolling back is instant
        return True

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
            slot = self._slots[task]
            report[task] = {
                "ready": True,
                "path": slot.path,
                "model": predictor.identity.model_dump(),
                "runtime": getattr(predictor, "runtime", "python"),
                "load_s": slot.load_s,
            }
            engine = getattr(predictor, "flag_engine", None)
            if engine is not None:  # which red-flag engine reads every complaint (triage's)
                report[task]["red_flag_engine"] = {**engine.identity, "detectors": engine.detectors}
            if slot.swap_error:
                report[task]["swap_error"] = slot.swap_error
        return report

    def cards(self) -> dict[str, Any]:
        """Each served model's readiness with its card (what it was trained on, its metrics,
        thresholds, intended use and licence notes), for the people who run the models."""
        report = self.readiness()
        for task, entry in report.items():
            card = getattr(self._slots[task].predictor, "card", None)
            if entry["ready"] and card is not None:
                entry["card"] = {
                    k: v for k, v in card.to_dict().items() if k not in ("training_command",)
                }
        return report

    def paths(self) -> dict[str, Path | None]:
        return {t: Path(s.path) if s.path else None for t, s in self._slots.items()}
