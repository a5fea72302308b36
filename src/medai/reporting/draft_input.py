"""What a draft is made from: findings parsed from any accepted form, and the context of one
draft (findings, task, language, question, caption, retrieved passages)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medai.core.text import excerpt
from medai.imaging.labels import resolve, space
from medai.reporting.phrases import NORMAL
from medai.reporting.retrieve import Hit


class FindingsInputError(ValueError):
    """Findings that cannot be drafted from (empty, unknown labels, bad numbers)."""


@dataclass
class Finding:
    label: str
    positive: bool
    probability: float | None = None
    threshold: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "positive": self.positive,
                "probability": self.probability, "threshold": self.threshold}


MAX_FINDINGS = 100


def parse_findings(raw: Any, task: str = "cxr") -> list[Finding]:
    """Accepts ``medai imaging predict`` output, a list of finding dicts, a list of label names
    (all positive: a radiologist's own findings) or ``{label: probability}``."""
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
        raise FindingsInputError(f"unknown {task} label(s): {', '.join(sorted(unknown)[:5])}"
                                 f"{more}; "
                                 f"known: {', '.join(space(task).labels)}")
    return out


@dataclass
class DraftContext:
    findings: list[Finding]
    task: str = "cxr"
    lang: str = "en"
    question: str | None = None
    caption: str | None = None
    image: dict | None = None
    model: str | None = None
    hits: list[Hit] = field(default_factory=list)

    @property
    def positives(self) -> list[Finding]:
        return [f for f in self.findings if f.positive and f.label not in NORMAL]

    @property
    def negatives(self) -> list[Finding]:
        return [f for f in self.findings if not f.positive and f.label not in NORMAL]

