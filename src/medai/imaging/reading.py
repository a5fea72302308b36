"""A study's images read by one model: which film or series is read, its findings and heatmap,
or why none. No database, no store and no metrics here: the caller (``services.study_read``)
hands the study's image instances, a function reading a stored file by its hash, and a
``Timer`` that observes each model call; it keeps what comes back.

Which instances are read (issue 58), chosen openly and recorded in the result's ``read``:

* a task that reads **series** (a brain MRI) reads every series of the study, the most severe
  decided finding winning, one decision (``imaging.series.read_study``); the heatmap is the key
  slice's, and the key slice's instance becomes the study's image (what its report names and
  shows: the series read, not whichever file was filed first);
* a **film** task (a chest X-ray) is decided from one film: the frontal one by the headers'
  ViewPosition (PA before AP); where no header names a view, by each film's image view check
  (``imaging.views``); a lateral only when there is nothing else (the reader then refuses it by
  name). A film that holds no image (a header filed first) gives way to the next film;
* an upload (one file, no instances) is read as it is.

A film is decoded by ``decoded`` (the heap a large image used is handed back), predicted by
``findings`` and explained by ``heatmap``, the functions the API's image routes call too
(``services.imaging``); a series' slices are decoded and predicted by ``imaging.series``.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from medai.core.heap import release_memory
from medai.imaging.io import WORKING_SIDE, ImageRefused, LoadedImage, Refusal, load_image
from medai.imaging.limits import ImageInputError
from medai.imaging.results import HeatmapResult, ImagingResult, ReadInfo, SeriesChoice
from medai.imaging.series import explain_slice, read_study, series_result, single_image_read
from medai.imaging.slices import SliceRef, slice_refs
from medai.imaging.views import preference
from medai.imaging.views import view_of as header_or_image

NO_IMAGE = "no_image"
"""The refusal code of a file without pixel data (``imaging.io``'s ``NoPixelData``)."""
FRONTAL = ("PA", "AP")  # in order of preference
LARGE_IMAGE_PIXELS = 4_000_000  # above this, freed decode buffers are handed back to the OS
DISPLAY_SIDE = 2048
"""The stored display rendition (8-bit gray PNG) is at most this many pixels a side: viewers
and reports read it instead of decoding the original on every request."""

Timer = Callable[[str], contextlib.AbstractContextManager[Any]]
"""Observes one model call by its name (``predict``: one film; ``series``: a study's series,
every slice read to one decision; ``heatmap``); what it yields has an
``outcome`` the reader sets to ``refused`` when the model answers with a refusal
(``services.model_metrics.timer_for``: the Prometheus histogram)."""


@dataclass
class _Untimed:
    outcome: str = "ok"


@contextlib.contextmanager
def untimed(call: str) -> Iterator[_Untimed]:
    """A ``Timer`` that observes nothing (a script, a test)."""
    yield _Untimed()


@contextlib.contextmanager
def decoded(data: bytes, frame: int | None = None) -> Iterator[LoadedImage]:
    """One decode for several uses (rendition, findings, heatmap); the decoder's freed
    buffers go back to the OS afterwards when the image was large. ``frame``: one frame of a
    multi-frame DICOM (1-based; a viewer's slice), decoded alone."""
    image = load_image(data, frame=frame)
    try:
        yield image
    finally:
        meta = image.metadata
        if (meta.get("width") or 0) * (meta.get("height") or 0) > LARGE_IMAGE_PIXELS:
            release_memory()


def findings(predictor, image: LoadedImage, timer: Timer = untimed) -> ImagingResult:
    """The model's findings for a decoded image; ``ImageRefused`` when the model refuses it
    (its scope or view check), with the scope it covers."""
    with timer("predict") as call:
        result = predictor.predict(image)
        if result.refused:
            call.outcome = "refused"
    if result.refused:
        raise ImageRefused(result.refusal(), scope=result.scope)
    return result


def heatmap(
    predictor,
    image: LoadedImage,
    label: str | None = None,
    max_side: int = WORKING_SIDE,
    timer: Timer = untimed,
) -> tuple[HeatmapResult, bytes]:
    """Grad-CAM overlay PNG for ``label`` (default: the most probable) and what it shows."""
    from medai.imaging.explain import explain  # torch: imported by the first heatmap only

    buf = io.BytesIO()
    with timer("heatmap"):
        shown = explain(predictor, image, buf, label, max_side=max_side)
    return HeatmapResult(
        task=predictor.cfg.task,
        label=shown["label"],
        probability=shown["probability"],
        width=shown["width"],
        height=shown["height"],
        model=predictor.identity,
    ), buf.getvalue()


def display_png(image: LoadedImage, max_side: int = DISPLAY_SIDE) -> bytes:
    """An 8-bit grayscale PNG of a decoded image (browsers and PDFs cannot show DICOM), at
    most ``max_side`` pixels on its longer side: the display rendition a study stores once."""
    import numpy as np
    from PIL import Image

    pixels = np.clip(image.pixels * 255.0, 0, 255).astype(np.uint8)
    pil = Image.fromarray(pixels, mode="L")
    pil.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    # zlib level 1: on a 2,500 px radiograph 2.5 × faster than the default level 6 for a file
    # about a third larger (lossless either way); it is on every study's analysis path
    pil.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


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
class ImagesRead:
    """What the model made of a study's images. ``result`` is None when the image was refused
    before a result (``refusal`` then says why, ``scope`` what the model covers); a refused
    series result is a result with ``refused`` set. ``image``: the decoded image the draft
    reads its size and view from (the film, or the key slice); ``data``: the read instance's
    bytes; ``member``: the instance read when it is not the study's own file, a chest study's
    frontal film or a series' key slice (the platform files it as the study's: the image its
    report names and shows); ``display_png``: a display rendition, when one was asked for or
    the study's image changed."""

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


def film_read(film: Film) -> ReadInfo:
    """``read`` of a study decided from one film (a chest study's frontal view): the film is
    its key instance; the choice among the study's films is recorded."""
    sop_uid, series_uid = film.member.sop_uid, film.member.series_uid
    return ReadInfo(
        series_uid=series_uid,
        instances_in_series=film.in_series,
        instances_read=1,
        key_instances=[sop_uid] if sop_uid else [],
        read_instances=[sop_uid] if sop_uid else [],
        sampled=False,
        cap=1,
        rule="single_image",
        series_choice=SeriesChoice(chosen=series_uid, considered=film.considered, why=film.why),
    )


def read_images(
    predictor,
    *,
    members: list[Member],
    study_sha: str,
    read_bytes: Callable[[str], bytes],
    reads_series: bool,
    want_display: bool,
    stored: dict | None = None,
    timer: Timer = untimed,
) -> ImagesRead:
    """Read the study's images (see the module). ``members``: its image instances in filing
    order (none for an upload, whose file is ``study_sha``); ``read_bytes``: a stored file's
    bytes by its hash. ``stored``: the payload of a result this reading already stored (a
    repeated job): nothing is inferred again, only what the draft and a missing display
    rendition need is decoded. Raises nothing for an image: a refusal is returned."""
    if members and reads_series:
        return _series(predictor, members, study_sha, read_bytes, want_display, stored, timer)
    return _film(predictor, members, study_sha, read_bytes, want_display, stored, timer)


def _series(predictor, members, study_sha, read_bytes, want_display, stored, timer) -> ImagesRead:
    files = {m.sop_uid: m.sha for m in members}

    def load(slice_ref):
        return load_image(read_bytes(files[slice_ref.sop_uid]), frame=slice_ref.frame)

    if stored is not None and not want_display:  # a repeated job: the key slice for the draft
        keys = stored.get("read", {}).get("read_instances") or []
        key = stored.get("heatmap_instance") or (keys[0] if keys else None)
        if stored.get("refused") or key is None:
            return ImagesRead()
        sop, _, frame = key.partition("#")
        data = read_bytes(files[sop])
        return ImagesRead(image=load_image(data, frame=int(frame) if frame else None), data=data)
    groups: dict[str, list] = {}
    for m in members:
        try:
            refs = slice_refs(read_bytes(m.sha))
        except ImageInputError:
            continue  # an instance that holds no image (or no readable one): not a slice
        for slice_ref in refs:
            groups.setdefault(slice_ref.series_uid or m.series_uid or "", []).append(slice_ref)
    if not groups:
        return ImagesRead(refusal=Refusal("unreadable", "no instance of the study holds an image"))
    start = time.perf_counter()
    try:  # the whole study's series are one call of the model's: "series" beside "predict"
        with timer("series") as call:
            result = series_result(predictor, series := read_study(predictor, groups, load))
            if result.refused:
                call.outcome = "refused"
    except ImageInputError as exc:
        return ImagesRead(refusal=Refusal(exc.refusal_code, str(exc), exc.params))
    latency_ms = (time.perf_counter() - start) * 1000
    if result.refused:
        return ImagesRead(result=result, refusal=result.refusal())
    # explain is None only for a refused read, answered above
    shown, image, label = cast("tuple[SliceRef, LoadedImage, str]", explain_slice(series, load))
    heat, png = heatmap(predictor, image, label, timer=timer)
    # the key slice's instance is the study's image from now on, as a chest study's frontal
    # film is: what the report names and shows, and what the AI's objects for a PACS refer to
    # (a frame of a multi-frame instance: its picture is made again, the key frame may differ)
    key = next(m for m in members if m.sha == files[shown.sop_uid])  # the file decoded
    member = key if key.sha != study_sha or shown.frame is not None else None
    return ImagesRead(
        result=result,
        heatmap=(png, heat.label),
        heatmap_instance=shown.key,
        image=image,
        data=read_bytes(key.sha),
        member=member,
        display_png=display_png(image) if want_display or member is not None else None,
        latency_ms=latency_ms,
        embedding=result.embedding,
    )


def _film(predictor, members, study_sha, read_bytes, want_display, stored, timer) -> ImagesRead:
    read = single_image_read()
    films, sha, chosen = list(members), study_sha, None
    while True:
        if films:  # a chest study is decided from its frontal film
            film = frontal(films, _image_rank(predictor, films, read_bytes))
            read = film_read(film)
            if film.member.sha != sha:
                sha, chosen, want_display = film.member.sha, film.member, True
        data = read_bytes(sha)
        out = ImagesRead(image=data, data=data, member=chosen)
        if stored is not None and not want_display:  # the draft reads size and view from bytes
            return out
        try:  # one decode for the rendition, the findings, the heatmap and the draft
            with decoded(data) as image:
                out.image = image
                if want_display:
                    out.display_png = display_png(image)
                if stored is None:
                    _findings(predictor, image, read, out, timer)
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


def _findings(predictor, image, read: ReadInfo, out: ImagesRead, timer: Timer) -> None:
    """The findings of one film and the leading finding's heatmap, into ``out`` (a refusal
    by the model's scope there too, with the time it took)."""
    start = time.perf_counter()
    try:
        result = findings(predictor, image, timer)
    except ImageRefused as exc:
        out.refusal, out.scope, out.judged = exc.refusal, exc.scope, True
        out.latency_ms = (time.perf_counter() - start) * 1000
        return
    out.latency_ms = (time.perf_counter() - start) * 1000
    out.result = result.model_copy(update={"read": read})
    heat, png = heatmap(predictor, image, heatmap_label(result), timer=timer)
    out.heatmap, out.embedding = (png, heat.label), result.embedding


def _image_rank(predictor, members: list[Member], read_bytes: Callable[[str], bytes]):
    """A film → sort key from its image's view check (frontal first), for the films of a chest
    study whose headers name no view; each film decoded once, only when asked."""
    seen: dict[str, tuple[int, int]] = {}

    def rank(member: Member) -> tuple[int, int]:
        if member.sha not in seen:
            try:
                with decoded(read_bytes(member.sha)) as image:
                    check = view_of(image, predictor)
                seen[member.sha] = preference(check)
            except ImageInputError:
                seen[member.sha] = (9, 9)  # unreadable: last
        return seen[member.sha]

    return rank


def view_of(image: LoadedImage, predictor=None):
    """The view of a film (``imaging.views.ViewCheck``: ``view`` frontal | lateral | unknown,
    ``source`` header | image, ``score``): its DICOM header's, else ``predictor``'s image check
    (the task's model; one forward pass), else unknown. ``imaging.views.preference`` orders
    the films of a chest study (frontal first)."""
    if predictor is not None and hasattr(predictor, "view"):
        return predictor.view(image)
    return header_or_image(image)


def heatmap_label(result: ImagingResult) -> str | None:
    """The default heatmap shows the decision's leading finding (the one a reader most wants
    to see); for an undecided one, its most probable candidate that is a finding (a map of
    "no finding" shows a reader nothing to check); for a normal one, the most probable label."""
    from medai.core.task_registry import get as get_task

    d = result.decision
    if d is not None and d.state == "abnormal" and d.primary:
        return d.primary
    if d is not None and d.state == "indeterminate":
        normal = get_task(result.task).normal
        candidates = [c for c in d.candidates if c != normal]
        if candidates:
            return candidates[0]
    return max(result.findings, key=lambda f: f.probability).label if result.findings else None
