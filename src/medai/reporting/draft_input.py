"""What a draft is made from: findings parsed from any accepted form, and the context of one
draft (findings, task, language, question, caption, retrieved passages)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medai.core.errors import MedaiError
from medai.core.task_registry import default_task
from medai.core.text import excerpt
from medai.imaging.decision import Decision, OperatingPolicy, decide, from_labels
from medai.imaging.labels import resolve, space
from medai.imaging.scope import Scope
from medai.reporting.phrases import NORMAL
from medai.reporting.retrieve import Hit


class FindingsInputError(MedaiError, ValueError):
    """Findings that cannot be drafted from (empty, unknown labels, bad numbers)."""

    status, code = 422, "invalid"


@dataclass
class Finding:
    label: str
    positive: bool
    probability: float | None = None
    threshold: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "positive": self.positive,
            "probability": self.probability,
            "threshold": self.threshold,
        }


MAX_FINDINGS = 100


def imaging_task(task: str | None = None) -> str:
    """``task``, or when none is named the task registry's default imaging task
    (``Task.default``): the one place a draft's task defaults."""

    return default_task("imaging").name if task is None else task


def decide_findings(spec, findings: list[Finding]) -> Decision:
    """The task's decision for findings given without one: label names as a person's findings
    (all present, checked), probabilities against their thresholds (0.5 when none)."""
    if all(f.probability is None for f in findings):
        return from_labels(spec, [f.label for f in findings if f.positive])
    probs = {
        f.label: f.probability if f.probability is not None else float(f.positive) for f in findings
    }
    thr = {f.label: f.threshold if f.threshold is not None else 0.5 for f in findings}
    return decide(spec, probs, OperatingPolicy(thresholds=thr))


def parse_decided(raw: Any, task: str | None = None) -> tuple[list[Finding], Decision]:
    """Findings and the task's one decision about them.

    ``medai imaging predict`` output carries its decision, which is used as it is (never
    re-derived); findings given another way are decided here by the same rules
    (``imaging.decision``): probabilities against their thresholds, label names as a person's
    findings (all present, checked for consistency)."""
    task = imaging_task(task)
    spec = space(task)
    if isinstance(raw, dict) and isinstance(raw.get("decision"), dict) and not raw.get("refused"):
        try:
            decision = Decision.model_validate(raw["decision"])
        except ValueError as exc:
            raise FindingsInputError(f"unreadable decision: {excerpt(str(exc))}") from None
        findings = [
            Finding(r.label, r.positive, r.probability, r.threshold) for r in decision.labels
        ]
        return findings, decision
    findings = parse_findings(raw, task)
    try:
        decision = decide_findings(spec, findings)
    except ValueError as exc:
        raise FindingsInputError(str(exc)) from None
    by_label = {r.label: r for r in decision.labels}
    out = [
        Finding(
            f.label,
            by_label[f.label].positive if f.label in by_label else f.positive,
            f.probability,
            f.threshold,
        )
        for f in findings
    ]
    return out, decision


def parse_findings(raw: Any, task: str | None = None) -> list[Finding]:
    """Accepts ``medai imaging predict`` output, a list of finding dicts, a list of label names
    (all positive: a radiologist's own findings) or ``{label: probability}``."""
    task = imaging_task(task)
    space(task)
    if isinstance(raw, dict) and "findings" in raw:
        if raw.get("refused"):
            raise FindingsInputError(f"the image was refused: {raw.get('reason')}")
        raw = raw["findings"]
    items: list[dict] = []
    if isinstance(raw, dict):
        items = [{"label": k, "probability": v} for k, v in raw.items()]
    elif isinstance(raw, list):
        for x in raw:
            items.append({"label": x, "positive": True} if isinstance(x, str) else x)
    else:
        raise FindingsInputError("findings must be a list or an object")
    if not items:
        raise FindingsInputError("no findings given: nothing to draft from")
    if len(items) > MAX_FINDINGS:
        raise FindingsInputError(f"too many findings ({len(items)}; limit {MAX_FINDINGS})")
    out, unknown = [], []
    for item in items:
        if not isinstance(item, dict) or "label" not in item:
            raise FindingsInputError(f"each finding needs a label: {excerpt(item)}")
        label = resolve(task, str(item["label"]))
        if label is None:
            unknown.append(excerpt(str(item["label"]), 40))
            continue
        prob, thr = item.get("probability"), item.get("threshold")
        try:
            prob = None if prob is None else float(prob)
            thr = None if thr is None else float(thr)
        except (TypeError, ValueError):
            raise FindingsInputError(f"{label}: probability/threshold must be numbers") from None
        if prob is not None and not 0.0 <= prob <= 1.0:
            raise FindingsInputError(f"{label}: probability {prob} is outside [0, 1]")
        if thr is not None and not 0.0 <= thr <= 1.0:
            raise FindingsInputError(f"{label}: threshold {thr} is outside [0, 1]")
        positive = item.get("positive")
        if positive is None:
            positive = prob is not None and prob >= (thr if thr is not None else 0.5)
        out.append(Finding(label, bool(positive), prob, thr))
    if unknown:
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise FindingsInputError(
            f"unknown {task} label(s): {', '.join(sorted(unknown)[:5])}"
            f"{more}; "
            f"known: {', '.join(space(task).labels)}"
        )
    return out


@dataclass
class DraftContext:
    findings: list[Finding]
    task: str = field(default_factory=imaging_task)
    lang: str = "en"
    question: str | None = None
    caption: str | None = None
    image: dict | None = None
    model: str | None = None
    hits: list[Hit] = field(default_factory=list)
    decision: Decision | None = None
    # what the model detects and cannot, and whether the image is out of its scope
    # (``imaging.scope.Scope``); None: not known (findings typed by a person)
    scope: Scope | None = None

    def __post_init__(self) -> None:
        if self.decision is None:  # findings typed in code: decided by the same rules
            self.decision = decide_findings(space(self.task), self.findings)

    @property
    def decided(self) -> Decision:
        """``decision``, which ``__post_init__`` sets when none was given."""
        if self.decision is None:
            raise ValueError("the draft context has no decision")
        return self.decision

    @property
    def positives(self) -> list[Finding]:
        """What the draft states: the decision's most specific findings."""
        by_label = {f.label: f for f in self.findings}
        return [by_label.get(lab) or Finding(lab, True) for lab in self.decided.stated]

    @property
    def negatives(self) -> list[Finding]:
        """Labels decided absent (never one implied by, or excluded in favour of, a finding)."""
        decided = {r.label: r for r in self.decided.labels}
        if self.decided.state == "indeterminate":
            return []  # nothing is said to be absent when the model could not decide
        return [
            f
            for f in self.findings
            if f.label not in NORMAL
            and f.label in decided
            and not decided[f.label].positive
            and decided[f.label].basis in ("below_threshold", "not_top")
        ]
