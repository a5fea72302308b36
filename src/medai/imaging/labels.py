"""Unified label spaces by modality, with the synonyms real datasets use.

NIH ChestX-ray14, CheXpert, MIMIC-CXR and COVID-era collections name the same finding
differently ("Pleural Effusion", "Effusion"; "Pneumonia (viral)", "Viral_Pneumonia"). Every
spelling resolves to one canonical label; a label that resolves to nothing is reported by the
readers, never silently treated as negative. The label spaces themselves are the imaging tasks
of the task registry (``imaging/task_definitions.py`` defines them; ``core.task_registry`` holds them).
"""

from __future__ import annotations

from medai.core.task_registry import Task, TaskError, all_tasks, get

LabelSpace = Task


def space(task: str) -> Task:
    """The imaging task's label space; ValueError naming the imaging tasks otherwise."""
    try:
        found = get(task)
    except TaskError:
        found = None
    if found is None or found.kind != "imaging":
        names = sorted(t.name for t in all_tasks("imaging"))
        raise ValueError(f"unknown imaging task {task!r}; choose one of {names}")
    return found


def resolve(task: str, raw: str) -> str | None:
    """Canonical label for any known spelling in the task's label space, else None."""
    return space(task).resolve(raw)


def imaging_tasks() -> dict[str, Task]:
    return {t.name: t for t in all_tasks("imaging")}
