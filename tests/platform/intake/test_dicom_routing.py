"""Routing by DICOM attributes: each task's own rule (Task.reads_dicom, declared in the task
registration) decides which model reads a study; anything no rule claims goes to no model."""

from __future__ import annotations

import pytest

from medai.core.task_registry import Task, TaskError, loader_from
from medai.platform.dicom.identity import DicomIdentity
from medai.platform.intake.routing import route


def ident(
    modality: str, body_part: str = "", view: str = "", description: str = "", **more
) -> DicomIdentity:
    return DicomIdentity(
        modality=modality,
        body_part=body_part,
        view_position=view,
        series_description=description,
        **more,
    )


@pytest.mark.parametrize(
    ("identity", "task", "basis"),
    [
        (ident("CR", "CHEST", "PA"), "cxr", "body_part"),
        (ident("DX", "chest", "ap"), "cxr", "body_part"),
        (ident("DX", "", "", "PA Chest 2 views"), "cxr", "description"),
        (ident("CR", "", "", protocol_name="Akciğer PA"), "cxr", "description"),
        (ident("MR", "BRAIN"), "mri", "body_part"),
        (ident("MR", "", "", "T1 AX BRAIN post"), "mri", "description"),
        (ident("MR", "HEAD", "", "knee"), "mri", "body_part"),  # a body part, when given, decides
    ],
)
def test_chest_radiographs_and_brain_mri_reach_their_model(identity, task, basis):
    got = route(identity)
    assert (got.task, got.basis) == (task, basis)
    assert got.reason == ""


@pytest.mark.parametrize(
    "identity",
    [
        ident("US", "ABDOMEN"),  # no model reads ultrasound
        ident("CR", "HAND", "PA"),  # a radiograph of another body part
        ident("CR", "CHEST", "LL"),  # a lateral view: the CXR model reads frontal ones only
        ident("CR", "CHEST", "LATERAL"),
        ident("CR"),  # says nothing of what it shows
        ident("MR", "KNEE"),
        ident("MR", "", "", "sag T2 lumbar spine"),
        ident("CT", "CHEST"),  # a chest, but not a radiograph
        ident(""),
    ],
)
def test_anything_else_is_given_to_no_model(identity):
    got = route(identity)
    assert got.task is None and got.basis == "none"
    assert got.reason.startswith("no AI model for this study")


def _task(name: str, **rule) -> Task:
    return Task(
        name=name,
        kind="imaging",
        loader=loader_from("x:y"),
        labels=("A", "N"),
        normal="N",
        mentions_en={"A": "aaa"},
        mentions_tr={"A": "aaa"},
        phrases={"A": ("a", "a")},
        **rule,
    )


def test_a_rule_is_declared_by_the_task_and_checked_when_it_registers():
    knee = _task("knee", dicom_modalities=("CR", "DX"), dicom_body_parts=("KNEE",))
    assert knee.reads_dicom("DX", "KNEE", "AP") == "body_part"
    assert knee.reads_dicom("DX", "CHEST") is None
    anything_mg = _task("mammo", dicom_modalities=("MG",))
    assert anything_mg.reads_dicom("MG") == "modality"  # no anatomy declared: the modality
    assert _task("none").reads_dicom("CR", "CHEST") is None  # no DICOM modalities: never
    with pytest.raises(TaskError, match="dicom_description"):
        _task("bad", dicom_modalities=("CR",), dicom_description="(unclosed").validate()
    with pytest.raises(TaskError, match="dicom_description"):
        _task("bad", dicom_modalities=("CR",), dicom_description=".*").validate()


def test_two_tasks_claiming_a_study_equally_give_it_to_neither(monkeypatch):
    from medai.core import task_registry

    twin = _task("cxr2", dicom_modalities=("CR",), dicom_body_parts=("CHEST",))
    monkeypatch.setitem(task_registry._TASKS, "cxr2", twin)
    got = route(ident("CR", "CHEST", "PA"))
    assert (got.task, got.basis) == (None, "ambiguous")
    assert "equally" in got.reason
    # a stronger claim still wins: the body part over a description
    monkeypatch.setitem(
        task_registry._TASKS,
        "cxr2",
        _task("cxr2", dicom_modalities=("CR",), dicom_description=r"\bchest\b"),
    )
    assert route(ident("CR", "CHEST", "PA")).task == "cxr"
