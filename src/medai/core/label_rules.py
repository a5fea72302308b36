"""What a task's label space makes contradictory: the one rule a signature's labels, the API's
refusal and the web sign dialog share (issue 67, item 8).

A set of labels said of one image (``{"No Finding": False, "Effusion": True}``: present or
absent; a label not in the set is not said, None is not decided yet) contradicts itself when

- ``normal_with_finding``: the normal label is present beside a finding that is present;
- ``nothing_present``: the normal label is absent and no label is present — the image is
  neither normal nor shows anything (mark the normal label present, or the finding it shows);
- ``exclusive_branches``: two of a group of siblings (bacterial vs viral pneumonia; a
  subtype counts for its branch: COVID-19 is viral) are present;
- ``one_class``: a task with one class per image (brain MRI) has two findings present;
- ``parent_absent``: a finding is present and a finding it implies is absent (COVID-19
  present, viral pneumonia absent: the hierarchy is closed upwards).

A signature stores its labels exactly as given, or is refused naming these; the AI's own
decided states never contradict each other (``imaging.decision`` keeps them so), so only the
signer's choices can make a set contradictory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from medai.core.task_registry import Task

KINDS = (
    "normal_with_finding",
    "nothing_present",
    "exclusive_branches",
    "one_class",
    "parent_absent",
)


@dataclass(frozen=True)
class Contradiction:
    """One contradiction: its ``kind`` (one of ``KINDS``) and the labels involved, the label
    that is ruled out first (the normal label, or the finding present; for ``parent_absent``
    the finding present, then the implied one stated absent)."""

    kind: str
    labels: tuple[str, ...]
    # ``exclusive_branches``: the siblings whose branches the labels are in
    branches: tuple[str, ...] = ()

    def message(self) -> str:
        """One English sentence naming what contradicts what (the API's ``detail``)."""
        first, rest = self.labels[0], ", ".join(self.labels[1:])
        if self.kind == "normal_with_finding":
            return f"{first} is present together with findings present ({rest})"
        if self.kind == "nothing_present":
            return (
                f"{first} is absent and no finding is present: mark {first} present, "
                "or the finding the image shows present"
            )
        if self.kind == "exclusive_branches":
            return (
                f"{' and '.join(self.labels)} are all present, but "
                f"{' and '.join(self.branches)} exclude each other"
            )
        if self.kind == "one_class":
            return f"{' and '.join(self.labels)} are all present: the image has one class"
        return f"{first} is present but {rest}, which it implies, is absent"

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "labels": list(self.labels),
            "branches": list(self.branches),
            "detail": self.message(),
        }


def ancestors(task: Task, label: str) -> list[str]:
    """The labels ``label`` implies, nearest first (COVID-19 → Viral_Pneumonia → Pneumonia)."""
    out: list[str] = []
    parent = task.parents.get(label)
    while parent is not None and parent not in out:
        out.append(parent)
        parent = task.parents.get(parent)
    return out


def contradictions(task: Task, said: Mapping[str, bool | None]) -> list[Contradiction]:
    """Every contradiction in ``said`` (label → present; None: not decided yet, so "nothing
    present" is not said while one is open), in a stable order; [] when the set is
    consistent. Labels the task does not have are the caller's to refuse."""
    order = {lab: i for i, lab in enumerate(task.labels)}

    def ordered(labels) -> tuple[str, ...]:
        return tuple(sorted(labels, key=lambda lab: (order.get(lab, len(order)), lab)))

    present = {lab for lab, v in said.items() if v is True}
    open_ = any(v is None for v in said.values())
    normal = task.normal
    findings = present - {normal}
    out: list[Contradiction] = []
    if normal is not None and normal in present and findings:
        out.append(Contradiction("normal_with_finding", (normal, *ordered(findings))))
    if normal is not None and said.get(normal) is False and not present and not open_:
        out.append(Contradiction("nothing_present", (normal,)))
    for group in task.siblings:
        branches = [
            m for m in group if any(lab == m or m in ancestors(task, lab) for lab in findings)
        ]
        if len(branches) > 1:
            inside = {
                lab
                for lab in findings
                if any(lab == m or m in ancestors(task, lab) for m in branches)
            }
            out.append(Contradiction("exclusive_branches", ordered(inside), ordered(branches)))
    if not task.multilabel and len(findings) > 1:
        out.append(Contradiction("one_class", ordered(findings)))
    for lab in ordered(findings):
        for implied in ancestors(task, lab):
            if said.get(implied) is False:
                out.append(Contradiction("parent_absent", (lab, implied)))
    return out
