"""The triage tasks: a Turkish complaint → one of the departments (``triage/departments.py``),
and the red-flag engine (a sealed folder, ``triage/red_flags/identity.py``) with its learned
classifier."""

from __future__ import annotations

from medai.core.task_registry import Task, loader_from, register
from medai.triage.departments import DEPARTMENTS


def register_tasks() -> None:
    """Entry point ``medai.tasks``: triage, red_flags, red_flag_classifier."""

    register(
        Task(
            name="triage",
            kind="triage",
            loader=loader_from("medai.triage.predict:load_predictor"),
            labels=tuple(d.id for d in DEPARTMENTS),
            modality="text",
            display={"tr": "Şikâyet triyajı", "en": "Complaint triage"},
            label_names={d.id: (d.name_en, d.name_tr) for d in DEPARTMENTS},
            served=True,  # the complaint screen and the kiosks ask the server
            reads_red_flags=True,  # triage never serves without its red flags
            warm=warm,
            recorded_outcomes=True,  # the department a patient was actually sent to
        )
    )
    flags = _bundled_flags()
    names = {f["id"]: (f["name_en"], f["name_tr"]) for f in flags}
    register(
        Task(
            name="red_flags",
            kind="red_flags",
            loader=loader_from("medai.triage.red_flags.engine:load_engine"),
            labels=tuple(names),
            modality="text",
            label_names=names,
            display={"tr": "Acil uyarı işaretleri", "en": "Urgent red flags"},
        )
    )
    register(
        Task(
            name="red_flag_classifier",
            kind="red_flags",
            loader=loader_from("medai.triage.red_flags.classifier:load_classifier_dir"),
            labels=("none", *names),
            modality="text",
            label_names={"none": ("No red flag", "Acil uyarı yok"), **names},
            display={"tr": "Acil uyarı sınıflandırıcısı", "en": "Red-flag classifier"},
        )
    )


def warm(predictor) -> None:
    """Load what the first complaint would otherwise wait for (the red-flag engine, e5)."""
    predictor.flag_engine.check("başım ağrıyor")


def _bundled_flags() -> list[dict]:
    """id and names of the bundled flags (flags.yaml, without building the rules)."""
    import yaml

    from medai.triage.red_flags.words import DATA_DIR

    raw = yaml.safe_load((DATA_DIR / "flags.yaml").read_text(encoding="utf-8"))
    return raw["flags"]
