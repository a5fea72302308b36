"""Every process serves its task's active model, and follows the registry without a restart.

On start (``adopt``) the registry is the source of truth: a task with no active model yet
registers the one this process was configured with (``models`` / MEDAI_MODELS / ``serve
--model TASK=DIR``, else the bundled default: ``core.model_dir.resolve_model``, the one place
that decides) as active — the first start; a configured model that differs from the
active one is registered as a ``candidate`` (a warning says so) and the active one serves.
Then ``ModelWatcher`` polls the active version of every task in the database and hot-swaps the
process's model handle when it changes (``ModelHandles.swap``): promotion and rollback reach
every ``medai serve`` process, Celery worker and DICOM node within one poll interval, and a
job that holds the old model finishes with it.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from medai.core import model_dir as model_dirs
from medai.platform.access.audit import Actor
from medai.platform.lifecycle import model_registry
from medai.platform.records.tables import RegisteredModel

if TYPE_CHECKING:
    from medai.platform.context import Platform

log = logging.getLogger("medai.platform.lifecycle")
SYSTEM = Actor(name="medai")


def _is_bundled(path: Path) -> bool:
    return path.resolve().is_relative_to(model_dirs.bundled_models_dir().resolve())


def adopt(p: Platform) -> None:
    """Register what needs registering and pin every task to its active model's stored copy
    (before anything is loaded): the pin becomes the task's folder in the handles' mapping,
    which ``resolve_model`` reads like any configured one."""
    for task in p.models.tasks:
        try:
            configured = p.models.configured_path(task)
        except model_dirs.ModelLoadError:
            configured = None  # no model for the task: readiness says so when it is asked
        row = _adopt_task(p, task, configured)
        if row is not None:
            p.models.pin(task, p.home / row.path)


def _adopt_task(p: Platform, task: str, configured: Path | None) -> RegisteredModel | None:
    for _ in range(3):
        try:
            return _adopt_once(p, task, configured)
        except IntegrityError:
            # a sibling process (this node's worker or DICOM node, another node's serve)
            # registered it at the same moment: its row is read in a new transaction (on
            # PostgreSQL the failed one can only be rolled back, never committed)
            continue
    return None


def _adopt_once(p: Platform, task: str, configured: Path | None) -> RegisteredModel | None:
    with p.db.session() as db:
        current = model_registry.active(db, task)
        if configured is None:
            return current
        bundled = _is_bundled(configured)
        state = "candidate" if current is not None else "active"
        reason = (
            "first start: the model this server was configured with"
            if current is None
            else "configured at start; not the active model"
        )
        try:
            row, _ = model_registry.register(
                db,
                p.home,
                configured,
                SYSTEM,
                task=task,
                source="bundled" if bundled else None,
                state=state,
                reason=reason,
                edited_card="existing",
            )
        except model_registry.LifecycleError as exc:
            log.warning(
                "model registry: %s model at %s not registered (%s); it is served unregistered",
                task,
                configured,
                exc,
            )
            return current
        if current is None:
            log.info(
                "model registry: %s model %s (%s) registered and active",
                task,
                row.name,
                row.content_hash[:19],
            )
            return row
        if row.id != current.id:
            log.warning(
                "model registry: the configured %s model %s (%s) is registered "
                "as %s %s; the active model %s (%s) is served (promote it to "
                "serve it)",
                task,
                row.name,
                row.content_hash[:19],
                row.state,
                row.id,
                current.name,
                current.content_hash[:19],
            )
        return current


class ModelWatcher:
    """Polls the registry's active models and swaps this process's handles to them."""

    def __init__(self, p: Platform, every_s: float) -> None:
        self.p, self.every_s = p, every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._failed: dict[str, str] = {}  # task -> a path that did not load (not retried)

    def poll_once(self) -> dict[str, str]:
        """Swap every task whose active model changed; returns {task: path} swapped."""
        with self.p.db.session() as db:
            rows = db.execute(
                select(
                    RegisteredModel.task, RegisteredModel.path, RegisteredModel.content_hash
                ).where(RegisteredModel.state == "active")
            ).all()
        swapped: dict[str, str] = {}
        with self._lock:  # one swap of a task at a time in this process
            for task, relative, content_hash in rows:
                if task not in self.p.models.tasks:
                    continue
                path = str(self.p.home / relative)
                if self.p.models.served_path(task) == path or self._failed.get(task) == path:
                    continue
                if self.p.models.swap(task, Path(path)):
                    self._failed.pop(task, None)
                    swapped[task] = path
                    log.info("model registry: %s now serves %s", task, content_hash[:19])
                else:
                    self._failed[task] = path
                    log.error(
                        "model registry: the active %s model %s did not load; the "
                        "previous one goes on serving",
                        task,
                        content_hash[:19],
                    )
        return swapped

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.poll_once()
            except Exception as exc:  # broad: the poll thread outlives any poll's failure (logged)
                log.error("model registry poll failed: %s", type(exc).__name__)

    def start(self) -> ModelWatcher:
        self._thread = threading.Thread(target=self._run, name="medai-model-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def watch(p: Platform, every_s: float | None = None) -> ModelWatcher:
    """Follow the registry's active models in this process (promotion and rollback without a
    restart); started once by each long-running process (``p.stop_watching`` ends it)."""
    if p.watcher is None:
        p.watcher = ModelWatcher(p, every_s or p.settings.serving.model_watch_s).start()
    return p.watcher
