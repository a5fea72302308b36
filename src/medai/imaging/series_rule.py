"""How the probabilities of a series' slices become one decision: the aggregation rules
(``SeriesRule``: mean, max, top-k, a run of neighbouring slices) chosen on validation series
(``imaging.series_fit``), the small-lesion rule (``SuspectRule``) and the key slices that
carry a decision (``decide_series``). Pure functions of the slices' probabilities in
anatomical order: no model, no pixels (``imaging.series`` reads the slices).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from medai.core.task_registry import Task
from medai.imaging.decision import Decision, OperatingPolicy, decide

RuleName = Literal["mean", "max", "top_k", "run"]
RULE_NAMES: tuple[str, ...] = get_args(RuleName)


class SuspectRule(BaseModel):
    """When slices that suggest a tumour, too few for the rule to decide it, keep a series
    from reading "no tumour" (a small lesion, issue 67): a slice *suggests* a tumour class when
    it is its most probable class with at least ``min_probability``; ``min_slices``
    neighbouring such slices leave the series undecided (``small_lesion``) with them as its
    key slices. Chosen on validation series for a stated cost (``docs/benchmarks/
    small_lesion.md``): a missed lesion against a normal series left for the radiologist."""

    model_config = ConfigDict(frozen=True)

    min_probability: float = Field(..., ge=0.0, le=1.0)
    min_slices: int = Field(default=1, ge=1)


class SeriesRule(BaseModel):
    """How the probabilities of a series' slices become one study's probabilities.

    - ``mean``: the mean over the slices;
    - ``max``: the most suspicious slice alone (the highest probability of any finding);
    - ``top_k``: the mean of the ``k`` most suspicious slices;
    - ``run``: a finding needs support on ``k`` neighbouring slices. In a one-class task (brain
      MRI) the tumour class with the longest contiguous run of slices whose most probable class
      it is, when that run has at least ``k`` slices, gives the mean of that run; with no such
      run the mean of the slices read as normal does (of all slices when none is). In a
      multi-label task a finding's study probability is the best, over windows of ``k``
      neighbouring slices, of the lowest probability in the window (it passes its threshold
      exactly when ``k`` neighbouring slices do), and the normal label's the lowest over the
      slices. ``k`` is never more than the slices read.

    For the normal label of a multi-label task ``max`` and ``top_k`` take the least normal
    slices. Every rule is a function of the slices in anatomical order, ties broken by it."""

    model_config = ConfigDict(frozen=True)

    name: RuleName
    k: int = Field(default=1, ge=1, description="top_k: slices averaged; run: neighbouring slices")
    suspect: SuspectRule | None = Field(
        default=None,
        description="one-class tasks: slices too few to decide still keep 'normal' away",
    )

    @property
    def tag(self) -> str:
        """The name recorded in a result's ``read.rule`` (``run:3``, ``mean``)."""
        return self.name if self.name in ("mean", "max") else f"{self.name}:{self.k}"

    @classmethod
    def parse(cls, tag: str) -> SeriesRule:
        name, _, k = tag.partition(":")
        return cls.model_validate({"name": name, "k": int(k) if k else 1})


DEFAULT_SUSPECT = SuspectRule(min_probability=0.95, min_slices=1)
"""The small-lesion rule of a model whose operating points record none: chosen on the bundled
brain MRI model's validation series (``benchmarks/small_lesion_benchmark.py``,
``docs/benchmarks/small_lesion.md``)."""

DEFAULT_RULE = SeriesRule(name="run", k=3, suspect=DEFAULT_SUSPECT)
"""The rule of a model whose operating points record none (fitted before series reading): a
finding needs three neighbouring slices, so one or two stray slices never decide a study. It is
the rule the bundled brain MRI model's validation series chose (macro-F1 0.95 against 0.77 for
the mean and 0.67 for the most suspicious slice: ``docs/benchmarks/series.md``); a model whose
slice errors differ should record its own (``medai imaging fit-series-rule``)."""


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of True, in order."""
    out, start = [], None
    for i, v in enumerate(mask.tolist() + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append((start, i - start))
            start = None
    return out


def _best_run(mask: np.ndarray, values: np.ndarray) -> tuple[int, int] | None:
    """The longest run of ``mask``; ties: the higher mean of ``values`` over it, then the
    earlier."""
    runs = _runs(mask)
    if not runs:
        return None
    return max(runs, key=lambda r: (r[1], float(values[r[0] : r[0] + r[1]].mean()), -r[0]))


def _normal_index(task: Task, labels: Sequence[str]) -> int | None:
    normal = task.normal
    return list(labels).index(normal) if normal is not None and normal in labels else None


def _suspicion(probs: np.ndarray, z: int | None) -> np.ndarray:
    """How strongly each slice suggests a finding: 1 - P(normal), else its top probability."""
    return 1.0 - probs[:, z] if z is not None else probs.max(axis=1)


def aggregate(
    probs: np.ndarray,
    rule: SeriesRule,
    task: Task,
    labels: Sequence[str],
) -> np.ndarray:
    """The study's probabilities (``labels`` order) from the slices' (rows, anatomical
    order) under ``rule`` (see ``SeriesRule``)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or not len(probs):
        raise ValueError("a series needs at least one slice's probabilities")
    n = len(probs)
    k = min(rule.k, n)
    z = _normal_index(task, labels)
    suspicion = _suspicion(probs, z)
    if rule.name == "mean":
        return probs.mean(axis=0)
    if not task.multilabel:
        if rule.name == "max":
            return probs[int(np.argmax(suspicion))].copy()
        if rule.name == "top_k":
            top = np.sort(np.argsort(-suspicion, kind="stable")[:k])
            return probs[top].mean(axis=0)
        top = probs.argmax(axis=1)
        best: tuple | None = None
        for j in range(probs.shape[1]):
            if j == z:
                continue
            run = _best_run(top == j, probs[:, j])
            if run is not None and run[1] >= k:
                score = (run[1], float(probs[run[0] : run[0] + run[1], j].mean()), -run[0], -j)
                if best is None or score > best[0]:
                    best = (score, run)
        if best is not None:
            start, length = best[1]
            return probs[start : start + length].mean(axis=0)
        normal = top == z if z is not None else np.zeros(n, dtype=bool)
        return probs[normal].mean(axis=0) if normal.any() else probs.mean(axis=0)
    if rule.name == "max":
        out, normal = probs.max(axis=0), probs[:, z].min() if z is not None else None
    elif rule.name == "top_k":
        out = -np.sort(-probs, axis=0)[:k].mean(axis=0)
        normal = np.sort(probs[:, z])[:k].mean() if z is not None else None
    else:
        windows = np.lib.stride_tricks.sliding_window_view(probs, k, axis=0)
        out, normal = windows.min(axis=2).max(axis=0), probs[:, z].min() if z is not None else None
    if z is not None:
        out[z] = normal
    return out


def _key_labels(decision: Decision, task: Task) -> list[str]:
    if decision.state == "abnormal":
        return list(decision.stated or [p for p in decision.positives if p != task.normal])
    if decision.state == "indeterminate":
        return [c for c in decision.candidates if c != task.normal][:1]
    return []


def key_slices(
    decision: Decision,
    probs: np.ndarray,
    task: Task,
    labels: Sequence[str],
    thresholds: Mapping[str, float],
) -> list[int]:
    """The slices (row indices, anatomical order) that carry ``decision``: for each finding it
    states, the longest contiguous run of slices that support it (one-class tasks: slices whose
    most probable class it is; multi-label: slices above its threshold), ties to the more
    probable run, then the earlier; a finding no single slice supports gets its most probable
    slice. An undecided result's key slices are those of its leading non-normal candidate. A
    series read as having none of the findings has no key slice: no slice carries an absence
    (the report says what was looked for on every slice read)."""
    probs = np.asarray(probs, dtype=np.float64)
    out: set[int] = set()
    top = probs.argmax(axis=1)
    for label in _key_labels(decision, task):
        j = list(labels).index(label)
        support = probs[:, j] >= thresholds.get(label, 0.5) if task.multilabel else top == j
        run = _best_run(support, probs[:, j])
        if run is None:
            out.add(int(np.argmax(probs[:, j])))
        else:
            out.update(range(run[0], run[0] + run[1]))
    return sorted(out)


def suspect_slices(
    probs: np.ndarray, rule: SeriesRule, task: Task, labels: Sequence[str]
) -> tuple[str, list[int]] | None:
    """(tumour class, its suggesting slices) when ``rule.suspect`` finds a run of at least
    ``min_slices`` neighbouring slices suggesting one class (``SuspectRule``): the class with
    the most suggesting slices, ties to the higher mean probability over them, then the
    label order. None for a multi-label task, or when no class has such a run."""
    suspect = rule.suspect
    if suspect is None or task.multilabel:
        return None
    probs = np.asarray(probs, dtype=np.float64)
    z = _normal_index(task, labels)
    top = probs.argmax(axis=1)
    best: tuple | None = None
    for j in range(probs.shape[1]):
        if j == z:
            continue
        support = (top == j) & (probs[:, j] >= suspect.min_probability)
        if not any(length >= suspect.min_slices for _, length in _runs(support)):
            continue
        rows = np.flatnonzero(support)
        score = (len(rows), float(probs[rows, j].mean()), -j)
        if best is None or score > best[0]:
            best = (score, labels[j], [int(i) for i in rows])
    return None if best is None else (best[1], best[2])


def _small_lesion(decision: Decision, label: str, normal: str | None) -> Decision:
    """``decision`` (normal) made undecided between ``label`` and the normal class: the AI
    did not decide, and says so, rather than read "no tumour" over slices that suggest one."""
    candidates = [label] + ([normal] if normal else [])
    rows = [
        row.model_copy(
            update={"positive": False, "state": "indeterminate", "basis": "candidate"}
            if row.label in candidates
            else {"positive": False, "state": "absent", "basis": "not_top"}
        )
        for row in decision.labels
    ]
    return decision.model_copy(
        update={
            "state": "indeterminate",
            "primary": None,
            "positives": [],
            "stated": [],
            "low_confidence": False,
            "indeterminate_reason": "small_lesion",
            "candidates": candidates,
            "labels": rows,
        }
    )


def decide_series(
    probs: np.ndarray, rule: SeriesRule, task: Task, labels: Sequence[str], policy: OperatingPolicy
) -> tuple[Decision, np.ndarray, list[int]]:
    """(decision, study probabilities, key slice indices) for slices' probabilities in
    anatomical order: ``aggregate``, then the task's own decision (``imaging.decision``). A
    series that would read normal while ``rule.suspect`` finds slices suggesting a tumour is
    undecided (``small_lesion``), keyed on those slices."""
    study = aggregate(probs, rule, task, labels)
    decision = decide(task, dict(zip(labels, map(float, study), strict=True)), policy)
    if decision.state == "normal" and (found := suspect_slices(probs, rule, task, labels)):
        return _small_lesion(decision, found[0], task.normal), study, found[1]
    return decision, study, key_slices(decision, probs, task, labels, policy.thresholds)
