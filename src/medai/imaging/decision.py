"""One decision per imaging result, owned by the task: which findings the study has.

Every view reads this object (findings table, draft, default heatmap, urgency, FHIR, PDF,
worklist); nothing else compares a probability with a threshold. What the labels mean comes
from the task registry:

- an **exclusive** task (brain MRI: one tumour class) is answered with exactly one class, the
  most probable, or *indeterminate* when the top class is too unlikely or too close to the
  runner-up (``min_confidence`` / ``min_margin``, chosen on validation);
- a **multi-label** task with a normal label (chest X-ray: "No Finding") never has the normal
  label beside a disease. When both pass their thresholds the model contradicts itself: a
  *conflict*, never settled silently. The policy's ``normal_conflict`` (chosen on validation,
  ``operating.choose_conflict``) makes it either ``indeterminate`` (the normal label and the
  passing findings are the candidates) or ``finding`` (the findings are present, the normal
  label is absent *because of the conflict*, and the decision carries ``conflict``). A normal
  label that leads every passing finding by ``normal_lead`` (log-odds above the thresholds,
  chosen on validation for a stated cost, ``operating.choose_normal_lead``) is no conflict:
  the film is normal and those findings are absent, ``outweighed``. When neither passes, the
  most likely of them is taken and marked ``low_confidence``;
- a label hierarchy (COVID-19 ⇒ viral pneumonia ⇒ pneumonia) is kept closed upwards, and
  mutually exclusive siblings (bacterial vs viral pneumonia) keep only the stronger branch.

Only labels in real doubt are questions for the signer (``questions``): an undecided label
that is undecided only because a sub-finding is (viral pneumonia at 0.1 % beside an undecided
COVID-19) carries that sub-finding as ``implied_by`` and is settled by the answer about it
(``follow``), never asked on its own.

Each label carries its one ``state`` (present, absent, indeterminate) and ``basis`` (why). Every
output reads ``state``; a stored result is turned back into a ``Decision`` by ``read`` (results
stored before states existed included), never re-derived from probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, cast, get_args

import numpy as np
from pydantic import BaseModel, Field

from medai.core import label_rules
from medai.core.task_registry import Task

# why a label has its state: passed its threshold, implied by a present sub-finding, the most
# likely when nothing passed, below its threshold, the weaker of exclusive siblings, not the top
# class, among the candidates of an undecided result, one side of a normal-vs-finding
# conflict, or a passing finding the normal label outweighed by ``normal_lead``
# ("indeterminate" is what results stored before "candidate" said)
Basis = Literal[
    "above_threshold",
    "implied",
    "most_likely",
    "below_threshold",
    "excluded",
    "not_top",
    "candidate",
    "conflict",
    "indeterminate",
    "outweighed",
]
BASES: tuple[str, ...] = get_args(Basis)
State = Literal["normal", "abnormal", "indeterminate", "none"]
LabelState = Literal["present", "absent", "indeterminate"]
LABEL_STATES: tuple[str, ...] = ("present", "absent", "indeterminate")
Conflict = Literal["indeterminate", "finding"]


class OperatingPolicy(BaseModel):
    """How probabilities become a decision; stored in the model directory (hashed)."""

    thresholds: dict[str, float] = Field(default_factory=dict)
    min_confidence: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="exclusive tasks: the top class needs at least this",
    )
    min_margin: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="exclusive tasks: top minus runner-up at least this",
    )
    fragile: list[str] = Field(
        default_factory=list,
        description="labels whose operating point a handful of validation images decided",
    )
    normal_conflict: Conflict = Field(
        default="indeterminate",
        description="multi-label tasks: what a "
        "normal label passing beside a passing finding becomes "
        "(chosen on validation)",
    )
    normal_lead: float | None = Field(
        default=None,
        ge=0.0,
        description="multi-label tasks: a normal label passing beside passing findings settles "
        "the film as normal (those findings absent, 'outweighed') when its log-odds margin over "
        "its threshold leads each finding's by at least this; None: never (chosen on "
        "validation for a stated cost, operating.choose_normal_lead)",
    )


class LabelDecision(BaseModel):
    label: str
    probability: float = Field(..., ge=0.0, le=1.0)
    threshold: float
    positive: bool = Field(..., description="decided present (state == 'present')")
    state: LabelState = Field(default="absent", description="the one state every view reads")
    basis: Basis
    implied_by: str | None = Field(
        default=None,
        description="present: the sub-finding that implies it; indeterminate: the undecided "
        "sub-finding it follows (its doubt is that one's: not a question of its own)",
    )
    fragile: bool = Field(
        default=False,
        description="its operating point rests on few validation "
        "images (shown, never served silently)",
    )


class Decision(BaseModel):
    kind: Literal["exclusive", "multilabel"]
    state: State
    primary: str | None = Field(
        default=None, description="the leading decided label (normal included)"
    )
    positives: list[str] = Field(
        default_factory=list,
        description="every decided label, "
        "parents included, most probable first; never the normal one "
        "beside a disease",
    )
    stated: list[str] = Field(
        default_factory=list,
        description="what a report states: the most "
        "specific decided findings (parents implied by them left out)",
    )
    low_confidence: bool = False
    indeterminate_reason: (
        Literal["low_confidence", "close_call", "conflict", "small_lesion"] | None
    ) = Field(
        default=None,
        description="why undecided; small_lesion: a series whose tumour-suggesting slices are "
        "too few for its decision rule (``imaging.series``), never read as no tumour",
    )
    candidates: list[str] = Field(
        default_factory=list,
        description="indeterminate: the labels the model could not separate, most probable first",
    )
    conflict: list[str] = Field(
        default_factory=list,
        description="the normal label and the "
        "findings that all passed their thresholds (shown on every "
        "face, whichever way the policy settled it)",
    )
    labels: list[LabelDecision] = Field(default_factory=list)

    def decided(self, label: str) -> bool:
        return label in self.positives

    def state_of(self, label: str) -> LabelState | None:
        return next((row.state for row in self.labels if row.label == label), None)


def _margin(p: float, t: float) -> float:
    p, t = min(max(p, 1e-6), 1 - 1e-6), min(max(t, 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)) - np.log(t / (1 - t)))


def ancestors(task: Task, label: str) -> list[str]:
    out: list[str] = []
    seen = {label}
    parent = task.parents.get(label)
    while parent and parent not in seen:
        out.append(parent)
        seen.add(parent)
        parent = task.parents.get(parent)
    return out


def most_specific(task: Task, labels: Sequence[str]) -> list[str]:
    """The labels none of the others implies as a descendant (COVID-19, not the pneumonia)."""
    return [lab for lab in labels if not any(lab in ancestors(task, o) for o in labels if o != lab)]


def decide(task: Task, probs: Mapping[str, float], policy: OperatingPolicy) -> Decision:
    """The decision for one image's probabilities (labels the model lacks are ignored)."""
    labels = [lab for lab in task.labels if lab in probs] or list(probs)
    p = {lab: float(probs[lab]) for lab in labels}
    if not task.multilabel:
        return _exclusive(task, labels, p, policy)
    return _multilabel(task, labels, p, policy)


def _exclusive(
    task: Task, labels: list[str], p: dict[str, float], policy: OperatingPolicy
) -> Decision:
    order = sorted(labels, key=lambda lab: -p[lab])
    top = order[0]
    runner = p[order[1]] if len(order) > 1 else 0.0
    reason: Literal["low_confidence", "close_call"] | None = None
    if p[top] < policy.min_confidence:
        reason = "low_confidence"
    elif p[top] - runner < policy.min_margin:
        reason = "close_call"
    candidates = order[:2] if reason is not None else []
    rows = []
    for lab in order:
        won = reason is None and lab == top
        state: LabelState = (
            "present" if won else ("indeterminate" if lab in candidates else "absent")
        )
        basis: Basis = (
            "above_threshold" if won else ("candidate" if lab in candidates else "not_top")
        )
        rows.append(
            LabelDecision(
                label=lab,
                probability=p[lab],
                threshold=policy.min_confidence,
                positive=won,
                state=state,
                basis=basis,
                fragile=lab in policy.fragile,
            )
        )
    if reason is not None:
        return Decision(
            kind="exclusive",
            state="indeterminate",
            indeterminate_reason=reason,
            candidates=candidates,
            labels=rows,
        )
    overall: State = "normal" if top == task.normal else "abnormal"
    return Decision(
        kind="exclusive",
        state=overall,
        primary=top,
        positives=[top],
        stated=[top] if overall == "abnormal" else [],
        labels=rows,
    )


def _branch_strength(
    task: Task, member: str, margins: dict[str, float], candidates: set[str]
) -> float | None:
    """The strongest passing margin within a sibling's branch (itself or a descendant)."""
    inside = [lab for lab in candidates if lab == member or member in ancestors(task, lab)]
    return max((margins[lab] for lab in inside), default=None)


def _multilabel(
    task: Task, labels: list[str], p: dict[str, float], policy: OperatingPolicy
) -> Decision:
    thr = {lab: float(policy.thresholds.get(lab, 0.5)) for lab in labels}
    margins = {lab: _margin(p[lab], thr[lab]) for lab in labels}
    # ties (findings a person named are all 1.0) fall to the task's label order, never to a
    # set's: the same findings give the same draft in every process
    rank = {lab: i for i, lab in enumerate(labels)}
    normal = task.normal if task.normal in labels else None
    cand = {lab for lab in labels if p[lab] >= thr[lab]}
    basis: dict[str, Basis] = {lab: "above_threshold" for lab in cand}
    excluded: set[str] = set()
    for group in task.siblings:  # keep only the stronger branch of exclusive siblings
        strength = {m: _branch_strength(task, m, margins, cand) for m in group}
        passing = {m: s for m, s in strength.items() if s is not None}
        if len(passing) > 1:
            keep = max(passing, key=lambda m: passing[m])
            for m in passing:
                if m != keep:
                    branch = {lab for lab in cand if lab == m or m in ancestors(task, lab)}
                    excluded |= branch
    cand -= excluded
    diseases = {lab for lab in cand if lab != normal}
    low_confidence = False
    conflict: list[str] = []
    undecided: set[str] = set()
    follows: dict[str, str] = {}  # an undecided parent -> the undecided sub-finding it follows
    outweighed: set[str] = set()
    if normal is not None:
        lead = (
            margins[normal] - max(margins[d] for d in diseases)
            if normal in cand and diseases
            else None
        )
        if lead is not None and policy.normal_lead is not None and lead >= policy.normal_lead:
            outweighed, diseases = set(diseases), set()  # the normal label far ahead: normal
            cand = {normal}
            basis.update({lab: "outweighed" for lab in outweighed})
        elif normal in cand and diseases:  # the model says normal and a finding: a conflict
            conflict = sorted({normal} | diseases, key=lambda lab: (-p[lab], rank[lab]))
            basis.update({lab: "conflict" for lab in conflict})
            if policy.normal_conflict == "indeterminate":
                undecided = set(conflict)
                # a candidate finding's parents are undecided with it, settled by its answer
                for d in sorted(diseases, key=lambda lab: (-margins[lab], rank[lab])):
                    for a in ancestors(task, d):
                        if a in labels and a not in undecided:
                            follows.setdefault(a, d)
                undecided |= set(follows)
                diseases = set()
            cand.discard(normal)
        elif normal not in cand and not diseases:  # neither: the most likely, said to be unsure
            pool = [lab for lab in labels if lab not in excluded]
            best = max(pool, key=lambda lab: margins[lab])
            low_confidence = True
            basis[best] = "most_likely"
            if best == normal:
                cand = {normal}
            else:
                diseases = {best}
    implied_by: dict[str, str] = {}
    for d in sorted(diseases, key=lambda lab: (-margins[lab], rank[lab])):
        for parent in ancestors(task, d):
            if parent in labels and parent not in diseases and parent not in implied_by:
                implied_by[parent] = d
    positives_set = (
        diseases | set(implied_by)
        if diseases
        else ({normal} if normal is not None and normal in cand else set())
    )
    positives = sorted(positives_set, key=lambda lab: (-p[lab], rank[lab]))
    rows = []
    for lab in sorted(labels, key=lambda lab: -p[lab]):
        state: LabelState = (
            "present"
            if lab in positives_set
            else ("indeterminate" if lab in undecided else "absent")
        )
        if lab in implied_by:
            b: Basis = "implied"
        elif lab in positives_set:
            b = basis.get(lab, "above_threshold")
        elif lab in undecided or lab in conflict:  # a candidate, or the normal label overruled
            b = "conflict" if lab in conflict else "candidate"
        elif lab in outweighed:
            b = "outweighed"
        else:
            b = "excluded" if lab in excluded else "below_threshold"
        rows.append(
            LabelDecision(
                label=lab,
                probability=p[lab],
                threshold=thr[lab],
                positive=lab in positives_set,
                state=state,
                basis=b,
                implied_by=implied_by.get(lab) or follows.get(lab),
                fragile=lab in policy.fragile,
            )
        )
    stated = most_specific(task, [lab for lab in positives if lab != normal])
    if undecided:
        return Decision(
            kind="multilabel",
            state="indeterminate",
            indeterminate_reason="conflict",
            candidates=conflict,
            conflict=conflict,
            labels=rows,
        )
    if diseases:  # the leading finding is the strongest of the most specific ones
        overall: State = "abnormal"
        primary = min(stated or diseases, key=lambda lab: (-margins[lab], rank[lab]))
    elif normal is not None and normal in positives_set:
        overall, primary = "normal", normal
    else:
        overall, primary = "none", None
    return Decision(
        kind="multilabel",
        state=overall,
        primary=primary,
        positives=positives,
        stated=stated,
        low_confidence=low_confidence,
        conflict=conflict,
        labels=rows,
    )


def decide_array(
    task: Task, labels: Sequence[str], probs: np.ndarray, policy: OperatingPolicy
) -> list[Decision]:
    """Decisions for a batch (rows of ``probs`` in ``labels`` order)."""
    return [
        decide(task, dict(zip(labels, map(float, row), strict=True)), policy)
        for row in np.atleast_2d(probs)
    ]


def from_labels(task: Task, positives: Sequence[str]) -> Decision:
    """A decision from findings a person named (all present): the hierarchy is closed, and a
    set the label space makes contradictory (a normal label beside a disease, exclusive
    siblings, two classes of a one-class task: ``core.label_rules``) is refused (ValueError)."""
    chosen = set(positives)
    found = label_rules.contradictions(task, dict.fromkeys(chosen, True))
    if found:  # the one rule a signature's labels are checked by (core.label_rules)
        raise ValueError("; ".join(c.message() for c in found))
    probs = {lab: (1.0 if lab in chosen else 0.0) for lab in task.labels}
    policy = OperatingPolicy(thresholds={lab: 0.5 for lab in task.labels}, min_confidence=0.5)
    if not chosen:
        return Decision(
            kind="exclusive" if not task.multilabel else "multilabel",
            state="none",
            labels=[
                LabelDecision(
                    label=lab,
                    probability=0.0,
                    threshold=0.5,
                    positive=False,
                    basis="below_threshold",
                )
                for lab in task.labels
            ],
        )
    return decide(task, probs, policy)


def _row(row: LabelDecision | Mapping) -> Mapping:
    return row.model_dump() if isinstance(row, LabelDecision) else row


def questions(rows: Sequence[LabelDecision | Mapping]) -> list[str]:
    """The labels a signer must answer (Var / Yok) before signing: those the AI left undecided
    whose doubt is their own. An undecided label that follows an undecided sub-finding
    (``implied_by``: viral pneumonia at 0.1 % beside an undecided COVID-19) is no question:
    the answer about the sub-finding settles it (``follow``). Labels the AI decided, however
    close to their thresholds, are endorsed or clicked, never asked. The one rule the sign-off,
    the labels API and the sign dialog share."""
    out = []
    for row in map(_row, rows):
        if row.get("label") and stored_state(row) == "indeterminate" and not row.get("implied_by"):
            out.append(str(row["label"]))
    return out


def follow(
    task: Task, rows: Sequence[LabelDecision | Mapping], said: Mapping[str, bool | None]
) -> dict[str, bool | None]:
    """Each undecided label that follows a sub-finding (not one of ``questions``), settled by
    what ``said`` (label -> present, absent, or None: not answered yet) holds of the undecided
    labels below it: present when one of them, or any label below it, is present (the
    hierarchy is closed upwards; a present sub-finding beside an absent parent is a
    contradiction a signature is refused for, ``core.label_rules``),
    absent when every one of them is absent (it did not pass its own threshold, or it would be
    a candidate itself), None while one is unanswered."""
    stored = [_row(r) for r in rows]
    asked = set(questions(stored))
    out: dict[str, bool | None] = {}
    for row in stored:
        lab = str(row.get("label") or "")
        if not lab or lab in asked or stored_state(row) != "indeterminate":
            continue
        below = [q for q in asked if lab in ancestors(task, q)] or [str(row["implied_by"])]
        answers = [said.get(q) for q in below]
        # a sub-finding the signer marked present (bacterial pneumonia added beside an
        # undecided COVID-19 answered absent) implies it as much as an answer does
        marked = any(v is True and lab in ancestors(task, q) for q, v in said.items())
        out[lab] = (
            True
            if marked or any(a is True for a in answers)
            else (False if all(a is False for a in answers) else None)
        )
    return out


def stored_state(row: Mapping, undecided: set[str] | frozenset[str] = frozenset()) -> LabelState:
    """One stored label row's state: its ``state`` when it has one, else what it said then
    (``positive``; undecided when among ``undecided`` or its basis says so), never its
    probability."""
    if row.get("state") in LABEL_STATES:
        return row["state"]
    if row.get("positive"):
        return "present"
    undecided_row = row.get("label") in undecided or row.get("basis") in (
        "indeterminate",
        "candidate",
    )
    return "indeterminate" if undecided_row else "absent"


def read(payload: Mapping | None, task: Task | None = None) -> Decision | None:
    """The decision of a stored imaging result (``ImagingResult`` as JSON): the one way back
    from a stored row to states, for every output. A refused result has none. Results stored
    before labels carried a ``state`` get it from what they said then (``positive``, and the
    undecided candidates of an indeterminate decision), never from their probabilities: an
    undecided MRI's runner-up stays undecided, not absent."""
    if not payload or payload.get("refused"):
        return None
    raw = payload.get("decision") if isinstance(payload.get("decision"), Mapping) else None
    rows = [
        r
        for r in ((raw or {}).get("labels") or payload.get("findings") or [])
        if isinstance(r, Mapping) and r.get("label")
    ]
    if raw is None and not rows:
        return None
    undecided = (
        set((raw or {}).get("candidates") or [])
        if (raw or {}).get("state") == "indeterminate"
        else set()
    )
    labels = []
    for r in rows:
        state = stored_state(r, undecided)
        basis: Basis = (
            cast(Basis, r.get("basis"))  # one of BASES
            if r.get("basis") in BASES
            else ("above_threshold" if state == "present" else "below_threshold")
        )
        if basis == "indeterminate":
            basis = "candidate"
        labels.append(
            LabelDecision(
                label=str(r["label"]),
                probability=min(max(float(r.get("probability") or 0.0), 0.0), 1.0),
                threshold=float(t if (t := r.get("threshold")) is not None else 0.5),
                positive=state == "present",
                state=state,
                basis=basis,
                implied_by=r.get("implied_by"),
                fragile=bool(r.get("fragile")),
            )
        )
    if raw is not None:
        return Decision.model_validate({**raw, "labels": [x.model_dump() for x in labels]})
    positives = [
        x.label for x in sorted(labels, key=lambda x: -x.probability) if x.state == "present"
    ]
    normal = task.normal if task is not None else None
    stated = [lab for lab in positives if lab != normal]
    if task is not None:
        stated = most_specific(task, stated)
    overall: State = "abnormal" if stated else ("normal" if positives else "none")
    kind: Literal["exclusive", "multilabel"] = (
        "multilabel" if task is None or task.multilabel else "exclusive"
    )
    return Decision(
        kind=kind,
        state=overall,
        primary=stated[0] if stated else (positives[0] if positives else None),
        positives=positives,
        stated=stated,
        labels=labels,
    )
