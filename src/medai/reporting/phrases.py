"""How the template drafter names each label, in English and Turkish (noun phrases): read from
the imaging tasks' definitions (``imaging/tasks.py``), the one place a label is described."""

from __future__ import annotations

from medai.imaging.labels import imaging_tasks

PHRASES: dict[str, tuple[str, str]] = {
    lab: pair for task in imaging_tasks().values() for lab, pair in task.phrases.items()
}
NORMAL = {task.normal for task in imaging_tasks().values() if task.normal}


def phrase(label: str, lang: str) -> str:
    en, tr = PHRASES.get(label, (label.replace("_", " ").lower(),) * 2)
    return tr if lang == "tr" else en
