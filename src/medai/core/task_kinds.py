"""What a *kind* of task is, so that no caller compares kind names.

A task (``core.task_registry.Task``) names its kind: ``imaging`` (an image or a series in,
findings out), ``triage`` (a complaint in, a department out), ``red_flags`` (the urgent-sign
rules beside triage), ``caption`` (an image in, a caption out), or a hospital's own. What the
platform must know of a kind — whether its input is an image (studies, DICOM routing, the
imaging runtime, a label space), whether the server keeps a model of each of its tasks and in
which order they load, whether its labels are findings a page names, how a site's data of it
is exported for training — is an attribute here, read through ``kind_of``. A new kind is one
``register_kind`` call in the package that defines its tasks; a kind nobody registered reads
as a plain one (nothing served, no images)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

Export = Literal["images", "texts"]


@dataclass(frozen=True)
class TaskKind:
    name: str
    reads_images: bool = False
    """Its input is an image or a series: its tasks are study tasks (upload, DICOM routing,
    a label space, the imaging runtime's options, the scope words of the page)."""
    served: bool = False
    """The server keeps a model of each of its tasks (``Task.served``'s default)."""
    serve_order: int = 0
    """Served tasks load by this order, then by name (triage's before the imaging models)."""
    names_findings: bool = True
    """Its labels are findings a page names (the red-flag rules have ids, not label names)."""
    export: Export | None = None
    """How a site's data of its tasks is exported for training (``lifecycle.dataset``)."""


_LOCK = threading.Lock()
_KINDS: dict[str, TaskKind] = {}


def register_kind(kind: TaskKind) -> TaskKind:
    """Add ``kind`` (or replace the kind of its name)."""
    with _LOCK:
        _KINDS[kind.name] = kind
    return kind


def kind_of(name: str) -> TaskKind:
    """The kind named ``name``; one nobody registered is a plain kind of that name."""
    with _LOCK:
        return _KINDS.get(name) or TaskKind(name)


def kinds() -> list[str]:
    with _LOCK:
        return sorted(_KINDS)


IMAGING = register_kind(
    TaskKind("imaging", reads_images=True, served=True, serve_order=1, export="images")
)
TRIAGE = register_kind(TaskKind("triage", export="texts"))
RED_FLAGS = register_kind(TaskKind("red_flags", names_findings=False))
CAPTION = register_kind(TaskKind("caption"))
