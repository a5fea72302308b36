"""The model's side of a study, in one call (``read_study``): which film or series is read, the
decision, its key instances, the heatmap, a refusal, the latency. No database, no store: the
platform hands the study's image instances and a function reading a stored file, and keeps,
drafts and sends what comes back (``platform.reading.analysis``).

Which instances are read (issue 58), chosen openly and recorded in the result's ``read``:

* a task that reads **series** (a brain MRI) reads every series of the study, the most severe
  decided finding winning, one decision (``imaging.series_study``); the
  heatmap is the key slice's;
* a **film** task (a chest X-ray) is decided from one film: the frontal one by the headers'
  ViewPosition (PA before AP); where no header names a view, by each film's image view check
  (``imaging.views``); a lateral only when there is nothing else (the reader then refuses it by
  name). A film that holds no image (a header filed first) gives way to the next film;
* an upload (one file, no instances) is read as it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from medai.imaging.decision import read as read_decision
from medai.imaging.io import LoadedImage
from medai.imaging.series import SliceRef, explain_slice, series_result, slice_refs
from medai.imaging.series_study import read_study as read_series_study
from medai.services import imaging as imaging_service
from medai.services import series_reading
from medai.services.imaging import ImageInputError, ImageRefused, ImagingResult, Refusal

NO_IMAGE = "no_image"
"""The refusal code of a file without pixel data (``imaging.io``'s ``NoPixelData``)."""
FRONTAL = ("PA", "AP")  # in order of preference


@dataclass(frozen=True)
class Member:
    """One stored image instance of the study (plain values: used outside the session)."""

    sop_uid: str
    sha: str
    size: int
    series_uid: str | None
    view: str | None


@dataclass(frozen=True)
class Film:
    """The film a one-film study is decided from, and why."""

    member: Member
    why: str
    considered: int
    in_series: int


@dataclass
class StudyRead:
    """What the model made of a study. ``result`` is None when the image was refused before a
    result (``refusal`` then says why, ``scope`` what the model covers); a refused series
    result is a result with ``refused`` set. ``image``: the decoded image the draft reads its
    size and view from (the film, or the key slice); ``data``: the read instance's bytes;
    ``member``: the film read when it is not the study's own file (the platform files it as
    the study's); ``display_png``: a display rendition, when one was asked for."""

    result: ImagingResult | None = None
    refusal: Refusal | None = None
    scope: Any = None
    heatmap: tuple[bytes, str] | None = None
    heatmap_instance: str | None = None  # a series: the key slice the heatmap is of
    image: Any = None
    data: bytes = b""
    member: Member | None = None
    display_png: bytes | None = None
    latency_ms: float = 0.0
    judged: bool = False  # refused by the model itself (its scope or view check), not unreadable
    embedding: Any = field(default=None, repr=False)
    payload: dict | None = None  # ``result`` as it is stored (a series: with its heatmap's slice)
    decision: dict | None = None  # the decision every output reads (``decision_of``)


def view_word(value: str | None) -> str:
    return (value or "").strip().upper()


def header_rank(member: Member) -> int:
    """PA first, then AP, then a film whose header names no view, then a lateral."""
    view = view_word(member.view)
    if view in FRONTAL:
        return FRONTAL.index(view)
    return len(FRONTAL) if not view else len(FRONTAL) + 1


def frontal(members: list[Member], image_rank=None) -> Film:
    """The film a chest study is decided from: by the headers' ViewPosition (PA, then AP);
    where the best film's header names no view, ``image_rank`` (a film → sort key, from its
    image's view check) ranks the films that say nothing; a lateral only when there is
    nothing else (the reader then refuses it by name). Ties: the first filed."""
    ranked = sorted(range(len(members)), key=lambda i: (header_rank(members[i]), i))
    best = members[ranked[0]]
    why = f"the {view_word(best.view)} film" if header_rank(best) < len(FRONTAL) else ""
    if not why and header_rank(best) == len(FRONTAL) and image_rank is not None:
        silent = [i for i in ranked if header_rank(members[i]) == len(FRONTAL)]
        best = members[min(silent, key=lambda i: (image_rank(members[i]), i))]
        why = "no header names a view: chosen by the image's view check"
    elif not why:
        why = (
            "no header names a view"
            if header_rank(best) == len(FRONTAL)
            else "no frontal film: only a lateral view"
        )
    in_series = sum(m.series_uid == best.series_uid for m in members)
    return Film(best, why, len(members), in_series)


def read_study(
    predictor,
    *,
    members: list[Member],
    study_sha: str,
    read_bytes: Callable[[str], bytes],
    reads_series: bool,
    want_display: bool,
    stored: dict | None = None,
) -> StudyRead:
    """Read the study (see the module). ``members``: its image instances in filing order
    (none for an upload, whose file is ``study_sha``); ``read_bytes``: a stored file's bytes
    by its hash. ``stored``: the payload of a result this reading already stored (a repeated
    job): nothing is inferred again, only what the draft and a missing display rendition
    need is decoded, and the stored result's decision (or refusal) is read back. Raises
    nothing for an image: a refusal is returned, with ``payload`` the refused result to keep
    (naming the model that refused)."""
    if members and reads_series:
        got = _series(predictor, members, read_bytes, want_display, stored)
    else:  # a film, or an upload
        got = _film(predictor, members, study_sha, read_bytes, want_display, stored)
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
    return got


def _series(predictor, members, read_bytes, want_display, stored) -> StudyRead:
    files = {m.sop_uid: m.sha for m in members}

    def load(slice_ref):
        return imaging_service.read_image(read_bytes(files[slice_ref.sop_uid]), slice_ref.frame)

    if stored is not None and not want_display:  # a repeated job: the key slice for the draft
        keys = stored.get("read", {}).get("read_instances") or []
        key = stored.get("heatmap_instance") or (keys[0] if keys else None)
        if stored.get("refused") or key is None:
            return StudyRead(image=None, data=b"")
        sop, _, frame = key.partition("#")
        data = read_bytes(files[sop])
        return StudyRead(
            image=imaging_service.read_image(data, int(frame) if frame else None), data=data
        )
    groups: dict[str, list] = {}
    for m in members:
        try:
            refs = slice_refs(read_bytes(m.sha))
        except ImageInputError:
            continue  # an instance that holds no image (or no readable one): not a slice
        for slice_ref in refs:
            groups.setdefault(slice_ref.series_uid or m.series_uid or "", []).append(slice_ref)
    if not groups:
        return StudyRead(refusal=Refusal("unreadable", "no instance of the study holds an image"))
    start = time.perf_counter()
    try:
        series = read_series_study(predictor, groups, load)
    except ImageInputError as exc:
        return StudyRead(refusal=Refusal(exc.refusal_code, str(exc), exc.params))
    result = series_result(predictor, series)
    latency_ms = (time.perf_counter() - start) * 1000
    if result.refused:
        return StudyRead(result=result, refusal=result.refusal())
    # explain is None only for a refused read, answered above
    shown, image, label = cast("tuple[SliceRef, LoadedImage, str]", explain_slice(series, load))
    heat, png = imaging_service.heatmap(predictor, image, label)
    return StudyRead(
        result=result,
        heatmap=(png, heat.label),
        heatmap_instance=shown.key,
        image=image,
        data=read_bytes(files[shown.sop_uid]),
        display_png=imaging_service.display_png(image) if want_display else None,
        latency_ms=latency_ms,
        embedding=result.embedding,
    )


def _film(predictor, members, study_sha, read_bytes, want_display, stored) -> StudyRead:
    read = series_reading.single_image_read()
    films, sha, chosen = list(members), study_sha, None
    while True:
        if films:  # a chest study is decided from its frontal film
            film = frontal(films, _image_rank(predictor, films, read_bytes))
            read = series_reading.film_read(
                film.member.sop_uid,
                film.member.series_uid,
                film.in_series,
                film.considered,
                film.why,
            )
            if film.member.sha != sha:
                sha, chosen, want_display = film.member.sha, film.member, True
        data = read_bytes(sha)
        out = StudyRead(image=data, data=data, member=chosen)
        if stored is not None and not want_display:  # the draft reads size and view from bytes
            return out
        try:  # one decode for the rendition, the findings, the heatmap and the draft
            with imaging_service.decoded(data) as image:
                out.image = image
                if want_display:
                    out.display_png = imaging_service.display_png(image)
                if stored is None:
                    _findings(predictor, image, read, out)
        except ImageInputError as exc:
            if exc.refusal_code == NO_IMAGE and len(films) > 1:
                films = [m for m in films if m.sha != sha]  # a header without a film: the next
                continue
            if stored is None:  # refused, whatever step refused it: no result beside it
                out.result, out.heatmap = None, None
                if isinstance(exc, ImageRefused):  # the model's own check, with its scope
                    out.refusal, out.scope, out.judged = exc.refusal, exc.scope, True
                else:
                    out.refusal = Refusal(exc.refusal_code, str(exc), exc.params)
        return out


def _findings(predictor, image, read, out: StudyRead) -> None:
    """The findings of one film and the leading finding's heatmap, into ``out`` (a refusal
    by the model's scope there too, with the time it took)."""
    start = time.perf_counter()
    try:
        result = imaging_service.analyse(predictor, image)
    except ImageRefused as exc:
        out.refusal, out.scope, out.judged = exc.refusal, exc.scope, True
        out.latency_ms = (time.perf_counter() - start) * 1000
        return
    out.latency_ms = (time.perf_counter() - start) * 1000
    out.result = result.model_copy(update={"read": read})
    heat, png = imaging_service.heatmap(predictor, image, heatmap_label(result))
    out.heatmap, out.embedding = (png, heat.label), result.embedding


def _image_rank(predictor, members: list[Member], read_bytes: Callable[[str], bytes]):
    """A film → sort key from its image's view check (frontal first), for the films of a chest
    study whose headers name no view; each film decoded once, only when asked."""
    seen: dict[str, tuple[int, int]] = {}

    def rank(member: Member) -> tuple[int, int]:
        if member.sha not in seen:
            try:
                with imaging_service.decoded(read_bytes(member.sha)) as image:
                    check = imaging_service.view_of(image, predictor)
                seen[member.sha] = imaging_service.view_preference(check)
            except ImageInputError:
                seen[member.sha] = (9, 9)  # unreadable: last
        return seen[member.sha]

    return rank


def heatmap_label(result) -> str | None:
    """The default heatmap shows the decision's leading finding (the one a reader most wants
    to see); for an undecided one, its most probable candidate that is a finding (a map of
    "no finding" shows a reader nothing to check); for a normal one, the most probable label."""
    from medai.core.task_registry import get as get_task

    d = result.decision
    if d is not None and d.state == "abnormal" and d.primary:
        return d.primary
    if d is not None and d.state == "indeterminate":
        normal = get_task(result.task).normal
        findings = [c for c in d.candidates if c != normal]
        if findings:
            return findings[0]
    return max(result.findings, key=lambda f: f.probability).label if result.findings else None
