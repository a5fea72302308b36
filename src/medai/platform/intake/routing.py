"""Which model reads a study that arrived over DICOM, from its attributes alone (Modality,
BodyPartExamined, ViewPosition, the series/study descriptions and protocol name).

The rules are the tasks' own (``Task.reads_dicom``, declared in each job's task registration:
``imaging/task_definitions.py`` for CXR and MRI), so a hospital's task package routes its studies by
registering. A study no task claims, or that two tasks claim equally, is given to no model:
it is stored and marked ``no_model``, and a radiologist reports it by hand. Nothing is ever
forced through a model that was not made for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from medai.core import task_registry as registry
from medai.platform.dicom.identity import DicomIdentity

STRENGTH = {"body_part": 3, "description": 2, "modality": 1}


@dataclass(frozen=True)
class Route:
    task: str | None
    basis: str  # body_part | description | modality | none | ambiguous

    @property
    def reason(self) -> str:
        """An English sentence for a study that gets no model (the faces translate the
        status; this is for the CLI and the study's ``reason``)."""
        if self.task is not None:
            return ""
        why = (
            "two models claim it equally"
            if self.basis == "ambiguous"
            else "no model reads this kind of study"
        )
        return f"no AI model for this study: {why}"


def route(identity: DicomIdentity) -> Route:
    """The imaging task whose routing rule matches most specifically, or none."""
    claims: list[tuple[int, str, str]] = []
    for task in registry.all_tasks("imaging"):
        basis = task.reads_dicom(
            identity.modality, identity.body_part, identity.view_position, identity.descriptions
        )
        if basis is not None:
            claims.append((STRENGTH[basis], task.name, basis))
    if not claims:
        return Route(None, "none")
    claims.sort(reverse=True)
    if len(claims) > 1 and claims[0][0] == claims[1][0]:
        return Route(None, "ambiguous")
    return Route(claims[0][1], claims[0][2])
