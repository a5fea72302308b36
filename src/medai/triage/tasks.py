"""The triage task: a Turkish complaint → one of the departments (``triage/departments.py``)."""

from __future__ import annotations

from medai.core.tasks import Task, loader_from, register


def register_tasks() -> None:
    """Entry point ``medai.tasks``: triage."""
    from medai.triage.departments import DEPARTMENTS

    register(Task(name="triage", kind="triage",
                  loader=loader_from("medai.triage.predict:load_predictor"),
                  labels=tuple(d.id for d in DEPARTMENTS), modality="text",
                  display={"tr": "Şikâyet triyajı", "en": "Complaint triage"},
                  label_names={d.id: (d.name_en, d.name_tr) for d in DEPARTMENTS}))
