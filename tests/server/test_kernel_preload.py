"""The kernel's preload warms every served task that has a warm-up (``Task.warm``), each
asked by its name: none is special-cased, and one that fails to warm is logged by name while
the others are still warmed."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from medai.server import kernel


class Handles:
    def __init__(self, ready: dict[str, bool], failing: tuple[str, ...] = ()) -> None:
        self.ready, self.failing, self.warmed = ready, failing, []

    def readiness(self) -> dict:
        return {task: {"ready": ok} for task, ok in self.ready.items()}

    def warm(self, task: str) -> None:
        if task in self.failing:
            raise OSError("no e5")
        self.warmed.append(task)


def test_preload_warms_each_ready_task_and_logs_a_failure_by_name(caplog):
    handles = Handles({"complaint": True, "triage": True, "cxr": True, "mri": False}, ("triage",))
    app = SimpleNamespace(state=SimpleNamespace(models=handles, preloaded=False))
    with caplog.at_level(logging.INFO, logger="medai.server"):
        kernel._preload(app)
    assert handles.warmed == ["complaint", "cxr"]  # mri is not ready: not warmed
    assert "triage warm-up failed: OSError" in caplog.text
    assert app.state.preloaded
