"""How the template drafter names each label, in English and Turkish (noun phrases): read from
the imaging tasks' definitions (``imaging/task_definitions.py``), the one place a label is
described, when asked — a task registered after this module was imported is named too."""

from __future__ import annotations

from collections.abc import Iterator, Set

from medai.imaging.labels import imaging_tasks


def phrases() -> dict[str, tuple[str, str]]:
    """label → (en, tr) of every imaging task registered now (the first task by name that
    describes a label, when two do)."""
    out: dict[str, tuple[str, str]] = {}
    for task in imaging_tasks().values():
        for lab, pair in task.phrases.items():
            out.setdefault(lab, pair)
    return out


class _NormalLabels(Set):
    """The normal label of every imaging task registered now (read on each use)."""

    @staticmethod
    def _now() -> set[str]:
        return {task.normal for task in imaging_tasks().values() if task.normal}

    def __contains__(self, label: object) -> bool:
        return label in self._now()

    def __iter__(self) -> Iterator[str]:
        return iter(self._now())

    def __len__(self) -> int:
        return len(self._now())

    @classmethod
    def _from_iterable(cls, it):  # what ``|``, ``&`` and ``-`` make: a plain set
        return set(it)

    def __repr__(self) -> str:
        return repr(self._now())


NORMAL: Set[str] = _NormalLabels()


def __getattr__(name: str):
    if name == "PHRASES":  # the table as it is now (an older reader's name for it)
        return phrases()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def phrase(label: str, lang: str, task: str | None = None) -> str:
    """``label`` in ``lang``: its task's phrase when ``task`` is given (two tasks may describe
    a label of one name differently), else the first that describes it, else the label."""
    pair = None
    if task is not None:
        pair = next(
            (t.phrases.get(label) for t in imaging_tasks().values() if t.name == task), None
        )
    en, tr = pair or phrases().get(label, (label.replace("_", " ").lower(),) * 2)
    return tr if lang == "tr" else en
