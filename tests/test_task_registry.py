"""The task registry: one place defines a task; a definition that would leave a label
unchecked is refused; string options list the valid values."""

import pytest

from medai.core import task_registry
from medai.core.task_registry import Task, TaskError, loader_from


def test_bundled_tasks_are_discovered_through_entry_points():
    assert {"triage", "cxr", "mri", "caption", "red_flags", "red_flag_classifier"} <= set(
        task_registry.names()
    )
    assert task_registry.names("imaging") == ["cxr", "mri"]
    cxr = task_registry.get("cxr")
    assert cxr.normal == "No Finding" and "COVID-19" in cxr.exclusive
    assert cxr.resolve("pleural effusion") == "Effusion"
    with pytest.raises(
        TaskError, match="known tasks: caption, cxr, mri, red_flag_classifier, red_flags, triage"
    ):
        task_registry.get("ct")


def _imaging(**overrides):
    base = dict(
        name="knee",
        kind="imaging",
        loader=loader_from("x:y"),
        labels=("Fracture", "Normal"),
        normal="Normal",
        mentions_en={"Fracture": r"fractur\w*"},
        mentions_tr={"Fracture": r"kırık"},
        phrases={"Fracture": ("fracture", "kırık")},
    )
    return Task(**{**base, **overrides})


def test_a_label_without_patterns_or_phrases_is_refused():
    _imaging().validate()
    with pytest.raises(TaskError, match="no Turkish mention pattern for \\['Fracture'\\]"):
        _imaging(mentions_tr={}).validate()
    with pytest.raises(TaskError, match="report phrase"):
        _imaging(phrases={}).validate()
    with pytest.raises(TaskError, match="empty or matches everything"):
        _imaging(mentions_en={"Fracture": r".*"}).validate()
    with pytest.raises(TaskError, match="not among its labels"):
        _imaging(synonyms={"broken": "Fractured"}).validate()


def test_a_registered_task_is_served_and_checked_everywhere(monkeypatch):
    """Adding a task touches its definition only: label lookup, the draft safety check's
    patterns and the server's routes all see it."""
    monkeypatch.setattr(task_registry, "_TASKS", dict(task_registry._TASKS))
    task_registry.register(_imaging())
    from medai.imaging.labels import resolve, space

    assert space("knee").labels == ("Fracture", "Normal")
    assert resolve("knee", "fracture") == "Fracture"
    from medai.services.model_handles import served_tasks

    assert "knee" in served_tasks()


def test_string_options_fail_with_the_valid_values():
    with pytest.raises(ValueError, match="choose one of: a, b"):
        task_registry.lookup({"a": 1, "b": 2}, "c", "backend")
