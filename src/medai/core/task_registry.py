"""The task registry: every task medai knows, defined in one place by the job that owns it.

A task says what its labels are (with the synonyms real datasets use), its modality, which
labels are mutually exclusive, its normal class, the finding-extractor patterns and report
phrases for every label (the draft safety check reads them), the names people read (the
task's and each label's, in Turkish and English, as a findings table writes them), the code
a DICOM SR or FHIR resource gives each label, the sentences a template draft writes of its
examination, whether training may mirror its images, whether it is the default task of its kind,
the loader that turns a model directory of the task into a predictor, and how a server serves
it (whether it does, the engine its loader takes, its warm-up, the outcomes staff record of
it), so that no caller compares a task's name. Adding a task or a label touches its
definition only; a label without patterns or phrases is refused when the task registers, so
the safety check can never be switched off silently for it.

``core`` imports no job, not even by a string: jobs (and a hospital's own packages) announce
their tasks through the ``medai.tasks`` entry-point group (see ``pyproject.toml``); each entry
point is a function that calls ``register``.
"""

from __future__ import annotations

import hashlib
import importlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from medai.core.errors import MedaiError
from medai.core.task_kinds import kind_of

ENTRY_POINT_GROUP = "medai.tasks"
# the coding scheme of labels no standard concept fits (DICOM PS3.3 C.12.1.1.2.1: a private
# scheme designator starts with "99"; a document using it declares it)
PRIVATE_SCHEME = "99MEDAI"


class TaskError(MedaiError, ValueError):
    """An unknown task, or a task definition that would leave a label unchecked."""

    code = "invalid"


def _key(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", label.lower().replace("ı", "i")).strip()


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


@dataclass(frozen=True)
class DraftWords:
    """What a template draft says of a task's examination, each as (en, tr); a sentence left
    empty gets the generic one (``reporting.templates``), so a task needs none of them.

    ``technique``: the examination as a radiologist names it ("Brain MRI (single slice).");
    ``technique_with_view``: the same when the DICOM file names its view, with ``{view}``
    ("{view} chest radiograph."); ``normal``: the findings' first sentence of a study in which
    the model found none of its labels, never calling the film normal: the findings it looked
    for named as not seen, the labels it decided absent as ``{findings}`` ("{findings}
    izlenmedi."); the AI's account of itself is never a report sentence
    (``reporting.templates.ai_note``);
    ``normal_impression``: its impression, ending in "(AI suggestion)" / "(YZ önerisi)" (a
    low-confidence result says so there); ``indeterminate``: the sentence of an undecided
    result, with ``{candidates}``, keeping "could not decide" / "karar veremedi" in it."""

    technique: tuple[str, str] = ("", "")
    technique_with_view: tuple[str, str] = ("", "")
    # a study read as a series (how much of it the AI read is the AI note's, not the report's)
    technique_series: tuple[str, str] = ("", "")
    normal: tuple[str, str] = ("", "")
    normal_impression: tuple[str, str] = ("", "")
    indeterminate: tuple[str, str] = ("", "")

    def get(self, what: str, lang: str) -> str:
        """The sentence ``what`` in ``lang`` ("tr" or "en"); '' when the task gives none."""
        en, tr = getattr(self, what)
        return tr if lang == "tr" else en


Limits = tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]
"""(key, groups of labels covering it) pairs: a task's scope limits (``Task.cannot_detect``)."""


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # "triage" | "imaging" | "caption" | a hospital's own
    loader: Callable[..., Any]  # (directory, card, **options) -> predictor
    labels: tuple[str, ...] = ()
    modality: str = ""
    multilabel: bool = False
    synonyms: dict[str, str] = field(default_factory=dict)
    exclusive: tuple[str, ...] = ()  # one and only one of these is true of an image
    normal: str | None = None
    urgent: tuple[str, ...] = ()  # a positive one puts the study at the top of the worklist
    # label hierarchy (child -> parent: COVID-19 -> Viral_Pneumonia -> Pneumonia), kept closed
    # upwards by the decision, and groups of siblings of which one branch at most is present
    parents: dict[str, str] = field(default_factory=dict)
    siblings: tuple[tuple[str, ...], ...] = ()
    dicom_modalities: tuple[str, ...] = ()
    # DICOM routing (``reads_dicom``): which studies of those modalities are this task's, by
    # anatomy — BodyPartExamined among ``dicom_body_parts`` or matching ``dicom_description``
    # (a regex on lowercase text, also tried on the series/study description and protocol
    # when no body part is given) — and, when the image names its ViewPosition, one of
    # ``dicom_views``; a task that declares no anatomy reads every study of its modalities
    dicom_body_parts: tuple[str, ...] = ()
    dicom_views: tuple[str, ...] = ()
    dicom_description: str = ""
    mentions_en: dict[str, str] = field(default_factory=dict)  # label -> regex (lowercase text)
    mentions_tr: dict[str, str] = field(default_factory=dict)
    phrases: dict[str, tuple[str, str]] = field(default_factory=dict)  # label -> (en, tr)
    display: dict[str, str] = field(default_factory=dict)  # lang -> the task's name for people
    label_names: dict[str, tuple[str, str]] = field(default_factory=dict)  # label -> (en, tr)
    # label -> (coding scheme designator, code value, code meaning) for DICOM SR and FHIR:
    # SNOMED CT ("SCT") or DICOM ("DCM") where a standard concept fits, else PRIVATE_SCHEME
    codes: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    draft: DraftWords = field(default_factory=DraftWords)  # a template draft's own sentences
    # training may mirror images left-right: only for a task whose labels do not depend on
    # the side (a flipped chest radiograph shows the heart on the right); off by default, as
    # a wrong "on" silently teaches a model mirrored anatomy while a wrong "off" only costs
    # some augmentation
    flip_augment: bool = False
    # a study of this task is a series of slices read together (a brain MRI), not one film
    # (a chest radiograph, decided from its frontal view): ``platform.worklist.study_reading``
    reads_series: bool = False
    # the task of its kind a caller that names none gets (the upload form's, the CLI's); one
    # per kind (``default_task``)
    default: bool = False
    # the server keeps a model of this task loaded and answers with it
    # (``services.model_handles``); None: an imaging task is served, a task of another kind
    # only when it says so (a captioner or the red-flag engine's own tasks are not)
    served: bool | None = None
    # its predictor carries the red-flag engine (``flag_engine``): its loader takes the
    # configured engine as ``flag_options``, and a study's clinical question is read for
    # urgent signs by the served task that has one (triage)
    reads_red_flags: bool = False
    # run on a freshly loaded predictor before its first request, so that the first answer is
    # as fast as the hundredth (triage loads its red-flag engine and e5 there); None: nothing
    warm: Callable[[Any], None] | None = None
    # staff record the outcome of each of its answers against the answer's record (where a
    # triaged patient was actually sent: ``platform.lifecycle.triage_labels``); monitoring
    # compares the model with those records as well as with signed reports' labels
    recorded_outcomes: bool = False
    # what a model of this task may be unable to detect, said with every result
    # (``imaging.scope``): (key, groups of labels that cover it: a model with every label of one
    # group detects it; no group: no label covers it); None: the generic limits (findings
    # outside its labels, other body parts). A key's words: ``imaging.scope.CANNOT_DETECT_WORDS``
    cannot_detect: Limits | None = None
    # patterns outside the labels that look like some of them (key, groups of labels that tell
    # it apart), said only of a model that has one of the labels in ``look_alike_of``
    look_alikes: Limits = ()
    look_alike_of: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.served is None:  # frozen: set once, as the field's documented default
            object.__setattr__(self, "served", kind_of(self.kind).served)

    @property
    def task(self) -> str:  # the name, as the label-space API called it
        return self.name

    def display_name(self, lang: str = "tr") -> str:
        """The task's name for people (the registry name when none is given)."""
        return self.display.get(lang) or self.display.get("en") or self.name

    def label_name(self, label: str, lang: str = "tr") -> str:
        """How a findings table names ``label`` in ``lang`` ("tr" or "en"); the label itself
        when the task gives no name for it."""
        names = self.label_names.get(label)
        if not names:
            return label
        return names[1] if lang == "tr" else names[0]

    def missing_names(self) -> list[str]:
        """What lacks a Turkish or English name (the web UI's test wants nothing)."""
        out = [
            f"{self.name}: task name in {lang}"
            for lang in ("tr", "en")
            if not self.display.get(lang)
        ]
        for lab in self.labels:
            en, tr = self.label_names.get(lab, ("", ""))
            out += [
                f"{self.name}: {lang} name of {lab!r}"
                for lang, name in (("en", en), ("tr", tr))
                if not name
            ]
        return out

    def reads_dicom(
        self, modality: str, body_part: str = "", view: str = "", descriptions: tuple[str, ...] = ()
    ) -> str | None:
        """How this task recognises a DICOM series as its own — ``"body_part"``,
        ``"description"`` or ``"modality"`` (a task declaring no anatomy), strongest first —
        or None. Anatomy must be positive: a chest X-ray model is not given a radiograph
        that says nothing about what it shows, nor a lateral view."""
        if not self.dicom_modalities or modality.strip().upper() not in self.dicom_modalities:
            return None
        view = view.strip().upper()
        if view and self.dicom_views and view not in self.dicom_views:
            return None
        if not self.dicom_body_parts and not self.dicom_description:
            return "modality"
        pattern = re.compile(self.dicom_description) if self.dicom_description else None
        part = body_part.strip().upper()
        if part:  # a body part, when given, decides (one the task lists is the surer sign)
            if part in self.dicom_body_parts:
                return "body_part"
            if pattern and pattern.search(part.lower().replace("ı", "i")):
                return "description"
            return None
        if pattern and any(pattern.search(d.lower().replace("ı", "i")) for d in descriptions if d):
            return "description"
        return None

    def finding_code(self, label: str) -> tuple[str, str, str]:
        """The label's (scheme, value, meaning); a label the task gives no code gets a stable
        private one (a hash of task and label: the same on every site and every run)."""
        if label in self.codes:
            return self.codes[label]
        digest = hashlib.sha256(f"{self.name}/{label}".encode()).hexdigest()[:12].upper()
        return PRIVATE_SCHEME, f"L{digest}", self.label_name(label, "en")[:64]

    def index(self, label: str) -> int:
        return self.labels.index(label)

    def ancestors(self, label: str) -> list[str]:
        """The labels ``label`` implies in the hierarchy (``parents``), nearest first:
        COVID-19 → Viral_Pneumonia, Pneumonia."""
        out: list[str] = []
        parent = self.parents.get(label)
        while parent is not None and parent not in out:
            out.append(parent)
            parent = self.parents.get(parent)
        return out

    def subtypes(self, label: str) -> list[str]:
        """The labels below ``label`` in the hierarchy, at any depth, in label order."""
        return [lab for lab in self.labels if label in self.ancestors(lab)]

    def resolve(self, raw: str) -> str | None:
        """Canonical label for any known spelling, else None."""
        if not isinstance(raw, str) or not raw.strip():
            return None
        return self._lookup().get(_key(raw))

    def _lookup(self) -> dict[str, str]:
        return {
            **{_key(lab): lab for lab in self.labels},
            **{_key(k): v for k, v in self.synonyms.items()},
        }

    def validate(self) -> None:
        unknown = {v for v in self.synonyms.values() if v not in self.labels}
        unknown |= {
            lab
            for lab in (*self.exclusive, *self.urgent, *self.label_names, *self.codes)
            if lab not in self.labels
        }
        unknown |= {lab for pair in self.parents.items() for lab in pair if lab not in self.labels}
        unknown |= {lab for group in self.siblings for lab in group if lab not in self.labels}
        if self.normal is not None and self.normal not in self.labels:
            unknown.add(self.normal)
        if unknown:
            raise TaskError(f"task {self.name!r}: {sorted(unknown)} are not among its labels")
        for child in self.parents:
            seen = {child}
            lab = self.parents.get(child)
            while lab is not None:
                if lab in seen:
                    raise TaskError(
                        f"task {self.name!r}: the label hierarchy has a cycle through {lab!r}"
                    )
                seen.add(lab)
                lab = self.parents.get(lab)
        if self.normal is not None and (
            self.normal in self.parents or self.normal in self.parents.values()
        ):
            raise TaskError(
                f"task {self.name!r}: the normal label {self.normal!r} cannot be "
                "part of the label hierarchy"
            )
        if self.dicom_description and (
            not _compiles(self.dicom_description) or re.compile(self.dicom_description).search("")
        ):
            raise TaskError(
                f"task {self.name!r}: dicom_description is not a regular "
                "expression, or it matches everything"
            )
        _check_codes(self)
        for what in ("technique_with_view", "indeterminate"):
            placeholder = "{view}" if what == "technique_with_view" else "{candidates}"
            if any(text and placeholder not in text for text in getattr(self.draft, what)):
                raise TaskError(f"task {self.name!r}: draft.{what} needs {placeholder}")
        if not kind_of(self.kind).reads_images:  # the finding patterns below are an image task's
            return
        findings = [lab for lab in self.labels if lab != self.normal]
        for what, table in (
            ("English mention pattern", self.mentions_en),
            ("Turkish mention pattern", self.mentions_tr),
            ("report phrase", self.phrases),
        ):
            missing = [lab for lab in findings if lab not in table]
            if missing:
                raise TaskError(
                    f"task {self.name!r}: no {what} for {missing}; the draft "
                    "safety check would not see these findings"
                )
        for table in (self.mentions_en, self.mentions_tr):
            for lab, pattern in table.items():
                if not pattern or re.compile(pattern).search(""):
                    raise TaskError(
                        f"task {self.name!r}: the pattern of {lab!r} is empty or matches everything"
                    )


def _check_codes(task: Task) -> None:
    """Codes fit their DICOM attributes (CodeValue SH ≤ 16, meaning LO ≤ 64 characters) and
    no two labels share one (a reader could not tell them apart)."""
    seen: dict[tuple[str, str], str] = {}
    for label in task.labels:
        scheme, value, meaning = task.finding_code(label)
        if (
            not (scheme and value and meaning)
            or len(value) > 16
            or len(meaning) > 64
            or len(scheme) > 16
        ):
            raise TaskError(
                f"task {task.name!r}: the code of {label!r} needs a scheme, a value "
                "of at most 16 characters and a meaning of at most 64"
            )
        if (scheme, value) in seen:
            raise TaskError(
                f"task {task.name!r}: {label!r} and {seen[scheme, value]!r} have "
                f"the same code {scheme} {value}"
            )
        seen[scheme, value] = label


_TASKS: dict[str, Task] = {}
_LOCK = threading.RLock()
_discovered = False


def register(task: Task) -> Task:
    """Add ``task`` (or replace the task of its name); a second default task of one kind is
    refused."""
    task.validate()
    with _LOCK:
        if task.default:
            other = next(
                (
                    t.name
                    for t in _TASKS.values()
                    if t.default and t.kind == task.kind and t.name != task.name
                ),
                None,
            )
            if other is not None:
                raise TaskError(
                    f"task {task.name!r}: {other!r} is already the default {task.kind} task"
                )
        _TASKS[task.name] = task
    return task


def unregister(name: str) -> None:
    """Remove a task (a test's, or a hospital package's that is withdrawn); no error when it
    is not registered."""
    with _LOCK:
        _TASKS.pop(name, None)


def discover() -> None:
    """Run every ``medai.tasks`` entry point once (each registers its tasks)."""
    global _discovered
    with _LOCK:
        if _discovered:
            return
        _discovered = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            target = ep.load()
            if callable(target):
                target()


def get(name: str) -> Task:
    discover()
    try:
        return _TASKS[name]
    except KeyError:
        raise TaskError(f"unknown task {name!r}; known tasks: {', '.join(names())}") from None


def names(kind: str | None = None) -> list[str]:
    discover()
    return sorted(n for n, t in _TASKS.items() if kind is None or t.kind == kind)


def all_tasks(kind: str | None = None) -> list[Task]:
    return [_TASKS[n] for n in names(kind)]


def default_task(kind: str = "imaging") -> Task:
    """The task of ``kind`` a caller that names none gets: the one marked ``default``, else
    the only task of that kind; TaskError when there is none to choose or no way to choose."""
    tasks = all_tasks(kind)
    marked = [t for t in tasks if t.default]
    if marked:
        return marked[0]
    if len(tasks) == 1:
        return tasks[0]
    raise TaskError(
        f"no default {kind} task: mark one of {[t.name for t in tasks]} default=True"
        if tasks
        else f"no {kind} task is registered"
    )


def loader_from(path: str) -> Callable[..., Any]:
    """A lazy loader ``module:function`` (the job's own module, named by the job itself), so
    registering a task imports no model code."""
    module, _, attr = path.partition(":")

    def load(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), attr)(*args, **kwargs)

    load.__qualname__ = path
    return load
