"""How the server serves a task is the task's to say (issue 61, "triage is a task like the
others"): a complaint task registered from outside medai, with triage's serving fields, is
served, loaded with the configured red-flag engine, warmed after a swap and asked for a
study's clinical question exactly as triage is; an imaging task gets the imaging runtime.
No caller compares a task's name."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from medai.core import task_registry
from medai.core.model_dir import ModelCard, save_card
from medai.core.task_registry import Task
from medai.services import model_handles
from medai.services.model_handles import ModelHandles, served_tasks
from medai.services.triage import red_flag_options


@dataclass
class ToyPredictor:
    card: ModelCard
    directory: Path
    options: dict[str, Any]
    warmed: list[str] = field(default_factory=list)


def load_toy(directory, card, **options) -> ToyPredictor:
    return ToyPredictor(card, Path(directory), options)


def warm_toy(predictor: ToyPredictor) -> None:
    predictor.warmed.append("warm")


def toy_dir(directory: Path, task: str, version: str = "1") -> Path:
    directory.mkdir(parents=True)
    (directory / "weights.txt").write_text(version)
    save_card(directory, ModelCard(task=task, model_type="toy", labels=["a"], version=version))
    return directory


@pytest.fixture()
def tasks(monkeypatch):
    """A complaint task served like triage and an imaging task with no labels to check."""
    monkeypatch.setattr(task_registry, "_TASKS", dict(task_registry._TASKS))
    complaint = Task(
        name="complaint",
        kind="complaint",
        loader=load_toy,
        labels=("a",),
        served=True,
        reads_red_flags=True,
        warm=warm_toy,
        recorded_outcomes=True,
    )
    scan = Task(name="scan", kind="imaging", loader=load_toy, labels=("ok",), normal="ok")
    for task in (complaint, scan):
        task_registry.register(task)
    return complaint, scan


def test_a_task_served_like_triage_is_served_like_triage(tasks, tmp_path):
    assert served_tasks()[:2] == ("complaint", "triage")  # their own kinds, then imaging
    assert {"scan", "cxr", "mri"} <= set(served_tasks()[2:])
    handles = ModelHandles(
        {
            "complaint": str(toy_dir(tmp_path / "c1", "complaint")),
            "scan": str(toy_dir(tmp_path / "s", "scan")),
        },
        threads=3,
        imaging_runtime="python",
    )
    complaint = handles.get("complaint")
    # the loader gets the configured red-flag engine and no imaging runtime
    assert complaint.options == {"flag_options": red_flag_options()}
    assert handles.get("scan").options == {"runtime": "python", "threads": 3}
    # the study's clinical question is read by the served task that reads red flags
    assert handles.red_flag_reader() is complaint  # first by name: complaint, then triage
    handles.warm("complaint")
    handles.warm("scan")  # no warm-up: nothing happens
    assert complaint.warmed == ["warm"]
    # a swapped-in model is warmed before it serves
    assert handles.swap("complaint", toy_dir(tmp_path / "c2", "complaint", version="2"))
    fresh = handles.get("complaint")
    assert fresh is not complaint and fresh.warmed == ["warm"]


def test_a_failing_warm_up_after_a_swap_leaves_the_new_model_serving(tasks, tmp_path, caplog):
    complaint, _ = tasks

    def broken(predictor):
        raise OSError("e5 missing")

    task_registry.register(Task(**{**vars(complaint), "warm": broken}))
    handles = ModelHandles({"complaint": str(toy_dir(tmp_path / "c1", "complaint"))})
    handles.get("complaint")
    assert handles.swap("complaint", toy_dir(tmp_path / "c2", "complaint", version="2"))
    assert handles.served_path("complaint") == str(tmp_path / "c2")
    assert "complaint warm-up after a swap failed: OSError" in caplog.text


def test_no_served_task_reads_red_flags(tasks, monkeypatch):
    """Without a red-flag reader a study's question raises no flag (the upload goes on)."""
    handles = ModelHandles({})
    monkeypatch.setattr(model_handles.task_registry, "all_tasks", lambda kind=None: [])
    with pytest.raises(model_handles.ModelUnavailable, match="no served task reads red flags"):
        handles.red_flag_reader()
