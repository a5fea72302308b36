"""The model's side of a study, in one call (``read_study``): which film or series is read, the
decision, its key instances, the heatmap, a refusal, the latency, and the draft made from them.
No database, no store: the platform hands the study's image instances and a function reading a
stored file, and keeps and sends what comes back (``platform.reading.analysis``).

The images are read below, in one call (``imaging.reading.read_images``: which instances, the
findings, the heatmap); here each model call is timed for ``/metrics``, the result is put as it
is stored with its decision, and the report draft is made from it (``services.reports``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

from medai.core.limited_read import read_limited
from medai.core.task_registry import get as get_task
from medai.imaging.decision import read as read_decision
from medai.imaging.limits import MAX_BYTES, ImageInputError
from medai.imaging.reading import NO_IMAGE, ImagesRead, Member, heatmap_label, read_images
from medai.imaging.series import MAX_SERIES
from medai.imaging.slices import DEFAULT_CAP, slice_refs
from medai.services.imaging import ImagingResult
from medai.services.model_metrics import timer_for
from medai.services.reports import shared_drafter
from medai.services.runtime import tune_allocator

__all__ = [
    "MAX_FILES",
    "NO_IMAGE",
    "Ask",
    "FilesRead",
    "Member",
    "StudyRead",
    "heatmap_label",
    "read_files",
    "read_study",
]

MAX_FILES = MAX_SERIES * DEFAULT_CAP
"""The most files one study read from a folder may have (checked before any is read): as
many series as a study's reading takes, each of as many slices as one series' reading."""


@dataclass(frozen=True)
class Ask:
    """What the draft is made for: the study's task, language, clinical question and the
    patient's signed prior (None: none), and the knowledge base the drafter cites."""

    task: str
    lang: str
    question: str | None
    prior: dict | None
    knowledge_dir: Any = None


@dataclass
class StudyRead(ImagesRead):
    """``ImagesRead``, with ``payload``: the result as it is stored (a series: with its
    heatmap's slice; a refusal: the refused result naming the model), ``decision``: the
    decision every output reads (``decision_of``), and ``draft``: the report draft made from
    them (None when refused, when the draft was made before, or when the drafter failed:
    ``draft_failure``)."""

    payload: dict | None = None
    decision: dict | None = None
    draft: dict | None = None
    # why the draft could not be made (the drafter's error): the caller keeps the read first,
    # then raises it, so a failing drafter never loses the findings
    draft_failure: Exception | None = None


def read_study(
    predictor,
    *,
    members: list[Member],
    study_sha: str,
    read_bytes: Callable[[str], bytes],
    reads_series: bool,
    want_display: bool,
    stored: dict | None = None,
    ask: Ask | None = None,
) -> StudyRead:
    """Read the study (see the module). ``members``: its image instances in filing order
    (none for an upload, whose file is ``study_sha``); ``read_bytes``: a stored file's bytes
    by its hash. ``stored``: the payload of a result this reading already stored (a repeated
    job): nothing is inferred again, only what the draft and a missing display rendition
    need is decoded, and the stored result's decision (or refusal) is read back. ``ask``: the
    draft to make from the read (None: it was made before). Raises nothing for an image: a
    refusal is returned, with ``payload`` the refused result to keep (naming the model that
    refused), and no draft. The drafter's error is returned too (``draft_failure``), for the
    caller to raise once it has kept the read."""
    tune_allocator()  # a job worker or the CLI, which build no server (where it is done)
    timer = timer_for(predictor)  # each model call, for /metrics
    images = read_images(
        predictor,
        members=members,
        study_sha=study_sha,
        read_bytes=read_bytes,
        reads_series=reads_series,
        want_display=want_display,
        stored=stored,
        timer=timer,
    )
    got = StudyRead(**{f.name: getattr(images, f.name) for f in fields(ImagesRead)})
    if stored is not None:  # what this reading stored is the study's, whatever a re-read says
        got.payload = stored
        got.refusal = (
            ImagingResult.model_validate(stored).refusal() if stored.get("refused") else None
        )
    elif got.result is not None:
        got.payload = got.result.model_dump(mode="json")
        if got.heatmap_instance is not None:
            got.payload["heatmap_instance"] = got.heatmap_instance
    elif got.refusal is not None:  # refused before a result: kept as a refused result
        ref = predictor.identity
        got.payload = ImagingResult(
            status="refused",
            task=ref.task,
            refused=True,
            reason=got.refusal.message,
            reason_code=got.refusal.code,
            reason_params=got.refusal.params,
            model=ref,
            scope=got.scope,
        ).model_dump(mode="json")
    decision = read_decision(got.payload, predictor.space)
    got.decision = None if decision is None else decision.model_dump(mode="json")
    if ask is not None and got.refusal is None:
        try:
            got.draft = (
                shared_drafter(ask.knowledge_dir)
                .draft(
                    got.image,
                    got.payload,
                    task=ask.task,
                    lang=ask.lang,
                    question=ask.question,
                    findings_model=predictor.identity,
                    prior=ask.prior,
                )
                .model_dump(mode="json")
            )
        except Exception as exc:  # broad: the read is kept before the drafter's error is raised
            got.draft_failure = exc
    return got


class FilesRead(NamedTuple):
    """``read_files``' answer: the read, each file that is no slice of a series with why (not
    DICOM, no pixel data, ...), and each read instance's file (SOP Instance UID → path)."""

    read: StudyRead
    skipped: list[dict[str, str]]
    files: dict[str, str]


def read_files(predictor, paths: Sequence[Path]) -> FilesRead:
    """A study's DICOM files read the way the platform reads a study that arrived from a
    modality (``read_study``: every series of a series task, a chest task's frontal film; an
    ML engineer's check of a model on a study before it serves one). ``ValueError`` beyond
    ``MAX_FILES`` (checked before any file is read); ``ImageInputError`` when no file is a
    slice, and when two files that differ
    carry one SOP Instance UID (an export that gave every slice the same one: reading one of
    them for all would decide the study from a single slice)."""
    if len(paths) > MAX_FILES:
        raise ValueError(f"{len(paths):,} files: a study read here has at most {MAX_FILES:,}")
    members: list[Member] = []
    skipped: list[dict[str, str]] = []
    by_uid: dict[str, tuple[Member, str]] = {}
    clashes: list[str] = []
    for path in paths:
        try:
            data = read_limited(path, MAX_BYTES)
            first = slice_refs(data)[0]
        except (ImageInputError, ValueError) as exc:  # InputFileError is a ValueError
            skipped.append({"file": path.name, "reason": str(exc)})
            continue
        digest = hashlib.sha256(data).hexdigest()
        if first.sop_uid in by_uid:
            earlier, earlier_digest = by_uid[first.sop_uid]
            if earlier_digest != digest:
                clashes.append(f"{Path(earlier.sha).name} and {path.name}")
            else:  # the same instance twice (a copy, a link): read once
                skipped.append({"file": path.name, "reason": f"a copy of {Path(earlier.sha).name}"})
            continue
        member = Member(first.sop_uid, str(path), len(data), first.series_uid, first.view_position)
        by_uid[first.sop_uid] = (member, digest)
        members.append(member)
    if clashes:
        raise ImageInputError(
            f"{len(clashes)} pair(s) of different files share a SOP Instance UID (e.g. "
            f"{clashes[0]}): each instance needs its own UID to be read as a slice"
        )
    if not members:
        raise ImageInputError("no file is a DICOM slice of a series")
    got = read_study(
        predictor,
        members=members,
        study_sha=members[0].sha,
        read_bytes=lambda name: read_limited(name, MAX_BYTES),
        # a chest task reads its study's frontal film, as the platform does
        reads_series=get_task(predictor.cfg.task).reads_series,
        want_display=False,
    )
    return FilesRead(got, skipped, {m.sop_uid: m.sha for m in members})
