"""The task registry: one place defines a task; a definition that would leave a label
unchecked is refused; string options list the valid values."""

import pytest

from medai.core import options, task_registry
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
        options.lookup({"a": 1, "b": 2}, "c", "backend")


def test_one_default_task_per_kind(monkeypatch):
    """The task a form or command gets when it names none is a field of the task (cxr as
    shipped); a second default of one kind is refused, a kind with one task needs none."""
    assert task_registry.default_task("imaging").name == "cxr"
    assert task_registry.default_task("triage").name == "triage"  # the only one of its kind
    monkeypatch.setattr(task_registry, "_TASKS", dict(task_registry._TASKS))
    with pytest.raises(TaskError, match="'cxr' is already the default imaging task"):
        task_registry.register(_imaging(default=True))
    task_registry.register(_imaging())  # not the default: cxr stays it
    assert task_registry.default_task("imaging").name == "cxr"
    task_registry.unregister("cxr")
    with pytest.raises(TaskError, match="no default imaging task"):
        task_registry.default_task("imaging")
    task_registry.register(_imaging(default=True))
    assert task_registry.default_task("imaging").name == "knee"
    task_registry.unregister("knee")
    task_registry.unregister("knee")  # not registered: nothing to do
    assert "knee" not in task_registry.names()


def test_what_a_draft_and_training_need_of_a_task_are_its_fields():
    """The draft's own sentences and whether training may mirror an image live in the task:
    a chest radiograph is never flipped (the heart's side), a brain MRI slice may be; a task
    that says nothing is not flipped and gets the generic sentences."""
    from medai.core.task_registry import DraftWords

    cxr, mri = task_registry.get("cxr"), task_registry.get("mri")
    assert (cxr.flip_augment, mri.flip_augment, _imaging().flip_augment) == (False, True, False)
    assert cxr.draft.get("technique_with_view", "tr") == "{view} akciğer grafisi."
    assert mri.draft.get("technique", "en") == "Brain MRI (single slice)."
    assert _imaging().draft == DraftWords() and _imaging().draft.get("normal", "en") == ""
    with pytest.raises(TaskError, match=r"draft.technique_with_view needs \{view\}"):
        _imaging(
            draft=DraftWords(technique_with_view=("Knee radiograph.", "Diz grafisi."))
        ).validate()
    with pytest.raises(TaskError, match=r"draft.indeterminate needs \{candidates\}"):
        _imaging(draft=DraftWords(indeterminate=("Could not decide.", "{candidates}"))).validate()


def test_how_a_server_serves_a_task_is_a_field_of_the_task():
    """Whether the server keeps a task's model, the red-flag engine its loader takes, its
    warm-up and the outcomes staff record of it live in the task, so that no caller compares
    a task's name: an imaging task is served unless it says otherwise, a task of any other
    kind only when it says so (triage does; a captioner and the red-flag tasks do not)."""
    triage = task_registry.get("triage")
    assert triage.served and triage.reads_red_flags and triage.recorded_outcomes
    assert callable(triage.warm)
    assert all(t.served for t in task_registry.all_tasks("imaging"))
    for name in ("caption", "red_flags", "red_flag_classifier", "cxr", "mri"):
        task = task_registry.get(name)
        assert (task.reads_red_flags, task.warm, task.recorded_outcomes) == (False, None, False)
        assert task.served == (task.kind == "imaging")
    assert _imaging().served and not _imaging(served=False).served
    complaint = Task(name="complaint", kind="complaint", loader=loader_from("x:y"), labels=("a",))
    assert not complaint.served and Task(**{**vars(complaint), "served": True}).served


def test_the_label_hierarchy_gives_each_label_its_ancestors_and_subtypes():
    """What a positive label implies and what a bare one leaves unknown, read from the task's
    ``parents`` (the dataset readers use it, for every task that declares a hierarchy)."""
    cxr = task_registry.get("cxr")
    assert cxr.ancestors("COVID-19") == ["Viral_Pneumonia", "Pneumonia"]
    assert cxr.ancestors("Pneumonia") == [] and cxr.ancestors("Effusion") == []
    assert set(cxr.subtypes("Pneumonia")) == {"Viral_Pneumonia", "Bacterial_Pneumonia", "COVID-19"}
    assert cxr.subtypes("Viral_Pneumonia") == ["COVID-19"] and cxr.subtypes("COVID-19") == []
    knee = _imaging(
        labels=("Fracture", "Tibial_Fracture", "Normal"), parents={"Tibial_Fracture": "Fracture"}
    )
    assert knee.ancestors("Tibial_Fracture") == ["Fracture"]
    assert knee.subtypes("Fracture") == ["Tibial_Fracture"]
