"""Reading series with a model: every slice of a series (up to a cap) to one decision
(``read_series``), and every series of a study to one study decision (``read_study``).

A study used to be decided from whichever instance arrived first; a 20-slice glioma series whose
first slice happened to be normal read "No tumour". Here a series is read the way a radiologist
reads it:

1. its slices come from their headers alone (``imaging.slices``: ``slice_refs``, bounded like
   every image input), in anatomical order whatever the order of arrival, each plane once,
   every slice up to ``DEFAULT_CAP`` and beyond it evenly spaced ones with both ends;
2. ``read_series`` decodes only those slices, a batch at a time (never the whole series at
   once), runs them through the predictor, and turns the per-slice probabilities into one
   decision with an aggregation rule chosen on validation and recorded in the model's
   operating points (``rule_for``; the rules are ``imaging.series_rule``); the decision itself
   comes from the predictor's own decision logic (``imaging.decision``) on the aggregated
   probabilities;
3. the *key slices* are the ones that carry the decision (the contiguous run of slices
   supporting the decided finding), recorded in the result's ``read`` with every slice read;
   ``SeriesRead.explain`` names the slice whose Grad-CAM shows the finding;
4. ``read_study`` reads every series a task can read, each to its own decision (issue 67): the
   most severe decided finding wins and its key slices come from the series that showed it;
   with none decided an undecided series leaves the study undecided; else it reads as normal.
   Every series is accounted for in ``read.series``: read, with its decision, or named with why
   not (a localizer, refused by the model, unreadable, beyond ``MAX_SERIES``). A study used to
   be read from its longest series alone: a 10-slice glioma series beside a 12-slice normal one
   read "no tumour" without a word of it.

The decision is a function of the set of slices, not of their arrival: batches are formed
after ordering, and every tie is broken by anatomical order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from medai.core.task_registry import Task
from medai.imaging.decision import Decision
from medai.imaging.io import LoadedImage, Refusal
from medai.imaging.limits import ImageInputError
from medai.imaging.results import (
    Finding,
    ImageInfo,
    ImagingResult,
    ReadDuplicate,
    ReadExclusion,
    ReadInfo,
    SeriesAccount,
    SeriesChoice,
    UndecidedSlices,
)
from medai.imaging.scope import series_scope
from medai.imaging.series_rule import (
    DEFAULT_RULE,
    DEFAULT_SUSPECT,
    SeriesRule,
    SuspectRule,
    decide_series,
)
from medai.imaging.slices import (
    DEFAULT_CAP,
    Duplicate,
    SliceRef,
    apart,
    distinct,
    order,
    pixel_digest,
    sample,
)

BATCH = 16
"""Slices decoded and run through the network at once: what bounds the memory of a read (the
decoded pixels of one batch, never the series)."""

SINGLE_IMAGE = "single_image"


def rule_for(predictor) -> SeriesRule:
    """The model's recorded rule (its operating points), else ``DEFAULT_RULE``; its recorded
    small-lesion rule, else ``DEFAULT_SUSPECT``."""
    raw = getattr(predictor, "series_rule", None)
    if not raw:
        return DEFAULT_RULE
    try:
        suspect = raw.get("suspect")
        return SeriesRule(
            name=raw["name"],
            k=int(raw.get("k", 1)),
            suspect=SuspectRule(**suspect) if suspect else DEFAULT_SUSPECT,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(
            f"the model's recorded series rule is not valid ({raw!r}: {exc})"
        ) from None


@dataclass(eq=False)
class SliceRead:
    """One slice that was read: its probabilities (``None`` when it could not be decoded) and
    why it was left out of the decision, if it was."""

    ref: SliceRef
    probabilities: np.ndarray | None = None
    image: ImageInfo | None = None
    embedding: list[float] | None = None
    excluded: str | None = None  # an image refusal code
    message: str | None = None
    distance: float | None = None  # to the training images (the gate's), for the scope
    digest: str | None = None  # of the decoded pixels (``pixel_digest``)
    same_as: SliceRef | None = None  # identical pixels to this earlier slice: counts once


@dataclass(eq=False)
class SeriesRead:
    """A series read to one decision. ``slices``: every slice read, anatomical order;
    ``used``: the indices among them the decision was made from; ``key``: the indices of the
    key slices; ``probabilities``: the study's, from the rule."""

    series_uid: str | None
    labels: list[str]
    slices: list[SliceRead]
    instances_in_series: int
    cap: int
    rule: SeriesRule
    normal_label: str | None = None
    used: list[int] = field(default_factory=list)
    key: list[int] = field(default_factory=list)
    probabilities: np.ndarray | None = None
    decision: Decision | None = None
    refusal: Refusal | None = None
    choice: SeriesChoice | None = None
    duplicates: list[Duplicate] = field(default_factory=list)
    numbers: dict[str, int] = field(default_factory=dict)  # slice key -> viewer's 1-based number
    accounts: list[SeriesAccount] = field(default_factory=list)

    @property
    def sampled(self) -> bool:
        return self.instances_in_series > len(self.slices)

    @property
    def counted(self) -> list[SliceRead]:
        """The slices read that count: decoded, and not another's pixel-identical copy."""
        return [s for s in self.slices if s.probabilities is not None and s.same_as is None]

    @property
    def all_duplicates(self) -> list[Duplicate]:
        """Header duplicates (``distinct``) and pixel-identical slices, anatomical order."""
        pixel = [Duplicate(s.ref, s.same_as, "same_pixels") for s in self.slices if s.same_as]
        return self.duplicates + pixel

    @property
    def undecided_slices(self) -> UndecidedSlices | None:
        d = self.decision
        if d is None or d.indeterminate_reason != "small_lesion" or self.rule.suspect is None:
            return None
        refs = self.key_refs
        return UndecidedSlices(
            label=d.candidates[0],
            instances=[r.key for r in refs],
            numbers=[self.numbers.get(r.key, 0) for r in refs],
            needed=self.rule.k if self.rule.name == "run" else 1,
            min_probability=self.rule.suspect.min_probability,
        )

    @property
    def slice_probabilities(self) -> np.ndarray:
        """The used slices' probabilities, rows in anatomical order."""
        # the used slices are decoded ones: each has its probabilities
        rows = [cast(np.ndarray, self.slices[i].probabilities) for i in self.used]
        return np.stack(rows) if rows else np.zeros((0, len(self.labels)))

    @property
    def key_refs(self) -> list[SliceRef]:
        return [self.slices[i].ref for i in self.key]

    @property
    def read(self) -> ReadInfo:
        """The result's ``read`` (the agreed interface)."""
        return ReadInfo(
            series_uid=self.series_uid,
            instances_in_series=self.instances_in_series,
            instances_read=len(self.counted),
            key_instances=[r.key for r in self.key_refs],
            read_instances=[s.ref.key for s in self.counted],
            sampled=self.sampled,
            cap=self.cap,
            rule=self.rule.tag,
            series_choice=self.choice,
            excluded=[
                ReadExclusion(instance=s.ref.key, reason=s.excluded)
                for s in self.slices
                if s.excluded and s.same_as is None
            ],
            duplicates=[
                ReadDuplicate(instance=d.ref.key, same_as=d.same_as.key, reason=d.reason)
                for d in self.all_duplicates
            ],
            undecided_slices=self.undecided_slices,
            series=list(self.accounts),
        )

    @property
    def explain(self) -> tuple[SliceRef, str] | None:
        """Which slice to explain (Grad-CAM) and for which label: the key slice where the
        decided finding (an undecided result: its leading candidate) is most probable; for a
        series read as normal, the slice read as most confidently normal. None when refused.
        Decode it with the series' loader and pass it to the heatmap code."""
        index = self._explain_index()
        return None if index is None else (self.slices[index[0]].ref, index[1])

    def _explain_index(self) -> tuple[int, str] | None:
        if self.decision is None or not self.used:
            return None
        d = self.decision
        leading = [c for c in d.candidates if c != self.normal_label] or d.candidates
        label = d.primary or (leading[0] if leading else None)
        if label is None:
            # the study's probabilities are set with its decision
            label = self.labels[int(np.argmax(cast(np.ndarray, self.probabilities)))]
        j = self.labels.index(label)
        pool = self.key or self.used
        best = max(
            pool, key=lambda i: (float(cast(np.ndarray, self.slices[i].probabilities)[j]), -i)
        )  # key and used slices are decoded ones: each has its probabilities
        return best, label


Loader = Callable[[SliceRef], "LoadedImage | np.ndarray"]


def _loaded(value) -> LoadedImage:
    if isinstance(value, LoadedImage):
        return value
    return LoadedImage(np.asarray(value, dtype=np.float32), "array", {})


def _read_batch(
    predictor, batch: list[SliceRead], load: Loader, refusals: dict[int, Refusal], offset: int
) -> ImageInputError | None:
    """Decode one batch of slices, run it through the model and fill in each slice's
    probabilities, image information, embedding and any refusal (``refusals`` by index)."""
    from medai.imaging.predict import image_info

    images: list[tuple[int, LoadedImage]] = []
    first_error = None
    for j, s in enumerate(batch):
        try:
            images.append((j, _loaded(load(s.ref))))
        except ImageInputError as exc:
            first_error = first_error or exc
            s.excluded, s.message = exc.refusal_code, str(exc)
    if not images:
        return first_error
    probs, feats = predictor.proba_and_features(
        [image.pixels for _, image in images], batch_size=len(images)
    )
    embeddings = predictor.embedding(feats)
    for row, (j, image) in enumerate(images):
        s = batch[j]
        s.digest = pixel_digest(image.pixels)
        s.probabilities = probs[row]
        s.image = image_info(image)
        s.embedding = [float(f"{v:.6g}") for v in embeddings[row]]
        gate = getattr(predictor, "gate", None)
        if gate is not None:
            s.distance = float(gate.distance(feats[row : row + 1])[0])
        reason = predictor.refusal_reason(image, feats[row : row + 1])
        if reason is not None:
            refusals[offset + j] = reason
            s.excluded, s.message = reason.code, reason.message
    return first_error


def _numbers(kept: Sequence[SliceRef], slices: Sequence[SliceRead]) -> dict[str, int]:
    """Each counted slice's 1-based number in anatomical order, duplicates left out: the
    viewer's counter ("10 / 20"), which shows each slice once
    (``platform.reading.series_view``)."""
    copies = {s.ref.key for s in slices if s.same_as is not None}
    counted = [ref for ref in kept if ref.key not in copies]
    return {ref.key: i for i, ref in enumerate(counted, start=1)}


def read_series(
    predictor,
    refs: Iterable[SliceRef],
    load: Loader,
    *,
    rule: SeriesRule | None = None,
    cap: int = DEFAULT_CAP,
    batch_size: int = BATCH,
    series_uid: str | None = None,
    choice: SeriesChoice | None = None,
) -> SeriesRead:
    """Read a series to one decision (``imaging.predict.ImagingPredictor`` as ``predictor``).

    ``refs`` are the series' slices in any order (``slice_refs`` of each instance); ``load``
    decodes one of them (e.g. ``load_image(bytes_of(ref.sop_uid), frame=ref.frame)``) and is
    called once for each slice read, ``batch_size`` at a time, so that at most one batch of
    decoded slices is held. A slice that cannot be decoded (``ImageInputError``) or that the
    model refuses (another modality, unlike its training images) is left out and listed in
    ``read.excluded``; when no slice can be used, or more than half of the decodable ones are
    refused, the series is refused with the commonest reason (``refusal``). ``rule`` defaults to
    the model's recorded one (``rule_for``). Raises the first ``ImageInputError`` when no slice
    can be decoded at all."""

    ordered = order(refs)
    if not ordered:
        raise ImageInputError("the series has no slices to read")
    kept, duplicates = distinct(ordered)
    chosen = sample(kept, cap)
    rule = rule or rule_for(predictor)
    task = predictor.space
    labels = list(predictor.labels)
    slices = [SliceRead(ref) for ref in chosen]
    first_error: ImageInputError | None = None
    refusals: dict[int, Refusal] = {}
    for start in range(0, len(slices), max(1, batch_size)):
        # the decoded pixels live only inside this call: gone before the next batch is decoded
        error = _read_batch(predictor, slices[start : start + batch_size], load, refusals, start)
        first_error = first_error or error
    seen: dict[str, list[SliceRef]] = {}
    for s in slices:  # identical pixels count once, the first in anatomical order kept, unless
        # the headers place the two apart (two blank end slices of a volume)
        if s.digest is None:
            continue
        earlier = seen.setdefault(s.digest, [])
        s.same_as = next((r for r in earlier if not apart(r, s.ref)), None)
        earlier.append(s.ref)
    read = SeriesRead(
        series_uid=series_uid if series_uid is not None else ordered[0].series_uid,
        labels=labels,
        slices=slices,
        instances_in_series=len(kept) - sum(s.same_as is not None for s in slices),
        cap=cap,
        rule=rule,
        normal_label=task.normal,
        choice=choice,
        duplicates=duplicates,
        numbers=_numbers(kept, slices),
    )
    decoded = [i for i, s in enumerate(slices) if s.probabilities is not None and not s.same_as]
    if not decoded:
        assert first_error is not None
        raise first_error
    refusals = {i: r for i, r in refusals.items() if i in decoded}  # a copy counts once
    read.used = [i for i in decoded if i not in refusals]
    if not read.used or 2 * len(refusals) > len(decoded):
        common = Counter(r.code for r in refusals.values()).most_common(1)[0][0]
        read.refusal = next(refusals[i] for i in sorted(refusals) if refusals[i].code == common)
        return read
    decision, study, key = decide_series(
        read.slice_probabilities, rule, task, labels, predictor.policy
    )
    read.decision, read.probabilities = decision, study
    read.key = [read.used[i] for i in key]
    return read


def read_decoded(
    predictor, pairs: Iterable[tuple[SliceRef, LoadedImage | np.ndarray]], **options
) -> SeriesRead:
    """``read_series`` over slices already decoded, e.g. pixels the caller holds anyway (they
    are all in memory: for a series arriving as files prefer ``read_series`` with a loader)."""
    held: dict[str, LoadedImage | np.ndarray] = {}
    refs = []
    for ref, pixels in pairs:
        held[ref.key] = pixels
        refs.append(ref)
    return read_series(predictor, refs, lambda ref: held[ref.key], **options)


def series_result(predictor, read: SeriesRead) -> ImagingResult:
    """The series' ``ImagingResult``: findings and decision from the study probabilities
    through the predictor's decision (its operating points), the model's identity, the explained
    slice's image information and embedding, and ``read``. A refused series gives a refused
    result with the reason, and still says what was read."""

    refused = read.refusal is not None or read.decision is None
    refusal = read.refusal or Refusal("unreadable", "no slice of the series could be read")
    # a refused series is out of scope for its reason; a read one is flagged when most slices
    # it used are unlike the training images (their median)
    scope = (
        series_scope(predictor, refusal=refusal)
        if refused
        else series_scope(predictor, [read.slices[i].distance for i in read.used])
    )
    if refused:
        first = next((s for s in read.slices if s.image is not None), None)
        return ImagingResult(
            status="refused",
            task=predictor.cfg.task,
            refused=True,
            reason=refusal.message,
            reason_code=refusal.code,
            reason_params=refusal.params,
            model=predictor.identity,
            image=first.image if first else None,
            read=read.read,
            scope=scope,
        )
    decision = cast(Decision, read.decision)  # a read series has its decision
    index = read._explain_index()
    shown = read.slices[index[0]] if index else read.slices[read.used[0]]
    return ImagingResult(
        status="ai_suggestion",
        task=predictor.cfg.task,
        refused=False,
        findings=[Finding(**row.model_dump()) for row in decision.labels],
        primary=decision.primary,
        decision=decision,
        model=predictor.identity,
        image=shown.image,
        embedding=shown.embedding,
        read=read.read,
        scope=scope,
    )


def explain_slice(read: SeriesRead, load: Loader) -> tuple[SliceRef, LoadedImage, str] | None:
    """The slice to explain (``SeriesRead.explain``) decoded again with the series' loader (one
    slice: the read kept no pixels), and the label to explain: hand both to the Grad-CAM code
    (``imaging.explain.explain`` / ``services.imaging.heatmap``). None for a refused series."""
    target = read.explain
    if target is None:
        return None
    ref, label = target
    return ref, _loaded(load(ref)), label


def single_image_read(cap: int = DEFAULT_CAP) -> ReadInfo:
    """``read`` of a result decided from one image without a series (a PNG upload)."""
    return ReadInfo(
        series_uid=None,
        instances_in_series=1,
        instances_read=1,
        key_instances=[],
        read_instances=[],
        sampled=False,
        cap=cap,
        rule=SINGLE_IMAGE,
    )


MAX_SERIES = 16
"""The most series of one study read (a brain MRI study has 4–10: localizer, T1, T2, FLAIR,
DWI, post-contrast): beyond it the series with the fewest slices are named, not read, so the
cost of a study stays bounded."""


def _localizer(refs: Sequence[SliceRef]) -> bool:
    return bool(refs) and all(r.localizer for r in refs)


def _number(refs: Sequence[SliceRef]) -> int | None:
    return min((r.series_number for r in refs if r.series_number is not None), default=None)


def _account(uid: str, refs: Sequence[SliceRef], **fields) -> SeriesAccount:
    return SeriesAccount(
        series_uid=uid or None,
        series_number=_number(refs),
        description=next((r.series_description for r in refs if r.series_description), None),
        slices=len(distinct(order(refs))[0]),
        **fields,
    )


def plan_series(
    series: Mapping[str, Sequence[SliceRef]], max_series: int = MAX_SERIES
) -> tuple[list[str], list[SeriesAccount]]:
    """Which series of a study to read, and every other one named with why not: all of them
    but localizers (ImageType LOCALIZER; read only when nothing else is there) and, beyond
    ``max_series``, those with the fewest slices. Series in Series Number order, then UID."""
    if not series:
        raise ValueError("a study with no series has nothing to read")

    def rank(uid: str) -> tuple:
        number = _number(series[uid])
        return (number if number is not None else float("inf"), uid)

    pool = [uid for uid in series if not _localizer(series[uid])] or list(series)
    skipped = [
        _account(
            uid,
            series[uid],
            reason="localizer",
            message="a localizer (scout) series: planning images, not read by the AI",
        )
        for uid in sorted(set(series) - set(pool), key=rank)
    ]
    by_size = sorted(pool, key=lambda uid: (-len(series[uid]), rank(uid)))
    beyond = set(by_size[max_series:])
    skipped += [
        _account(
            uid,
            series[uid],
            reason="too_many_series",
            message=f"the study has more than {max_series} series; the largest were read",
        )
        for uid in sorted(beyond, key=rank)
    ]
    return sorted(set(pool) - beyond, key=rank), skipped


def _severity(task: Task, label: str | None) -> int:
    """A finding's rank, most severe first: the task's urgent labels, then its classes in the
    order the task defines them (brain MRI: glioma, meningioma, pituitary)."""
    ranked = list(dict.fromkeys([*task.urgent, *task.exclusive, *task.labels]))
    return ranked.index(label) if label in ranked else len(ranked)


def _deciding(read: SeriesRead, task: Task) -> tuple:
    """How strongly a read series decides the study (smaller first): a decided finding, the
    most severe first, then an undecided one (its leading finding's severity), then a series
    read as normal (the one with the most slices); ties to the more key slices, then the UID."""
    d = read.decision
    assert d is not None
    if d.state == "abnormal":
        return (0, _severity(task, d.primary), -len(read.key), read.series_uid or "")
    if d.state == "indeterminate":
        lead = next((c for c in d.candidates if c != task.normal), None)
        return (1, _severity(task, lead), -len(read.key), read.series_uid or "")
    return (2, -len(read.used), read.series_uid or "")


def _why(read: SeriesRead, reads: int) -> str:
    d = read.decision
    if reads == 1:
        return f"the only series read ({len(read.used)} slices)"
    assert d is not None  # only decided reads come here
    if d.state == "abnormal":
        return f"the series showing {d.primary}, the most severe finding decided in the {reads} series read"
    if d.state == "indeterminate":
        return f"an undecided series: no series of the {reads} read decided a finding"
    return f"all {reads} series read have none of the findings; the one with the most slices"


def read_study(
    predictor,
    series: Mapping[str, Sequence[SliceRef]],
    load: Loader,
    *,
    max_series: int = MAX_SERIES,
    **options,
) -> SeriesRead:
    """Every series of a study a task can read, read to one study decision (issue 67): each
    series is read whole (``read_series``); the most severe decided finding wins and its key
    slices come from the series that showed it; with none decided an undecided series leaves
    the study undecided; else the study is read as normal. Every series is accounted for in
    the result's ``read.series`` (read, with its own decision, or named with why not:
    localizer, refused by the model, unreadable, beyond ``max_series``). A study whose every
    series was refused is refused (the largest's reason); ``ImageInputError`` when none could
    be decoded at all."""
    to_read, accounts = plan_series(series, max_series)
    task = predictor.space
    reads: dict[str, SeriesRead] = {}
    first_error: ImageInputError | None = None
    for uid in to_read:
        try:
            reads[uid] = read_series(
                predictor, series[uid], load, series_uid=uid or None, **options
            )
        except ImageInputError as exc:
            first_error = first_error or exc
            accounts.append(_account(uid, series[uid], reason=exc.refusal_code, message=str(exc)))
    if not reads:
        assert first_error is not None
        raise first_error
    decided = {uid: r for uid, r in reads.items() if r.refusal is None and r.decision is not None}
    for uid, r in reads.items():
        if uid not in decided:
            refusal = r.refusal or Refusal("unreadable", "no slice of the series could be read")
            accounts.append(
                _account(uid, series[uid], reason=refusal.code, message=refusal.message)
            )
    if decided:
        chosen = min(decided, key=lambda uid: _deciding(decided[uid], task))
        why = _why(decided[chosen], len(decided))
    else:
        chosen = max(reads, key=lambda uid: (len(reads[uid].slices), uid))
        why = "no series could be read by the model; the largest one's reason is given"
    for uid, r in decided.items():
        d = r.decision
        assert d is not None  # decided: each has one
        accounts.append(
            _account(
                uid,
                series[uid],
                read=True,
                state=d.state,
                primary=d.primary,
                candidates=list(d.candidates),
                decides=uid == chosen,
            )
        )
    rank = {
        uid: i for i, uid in enumerate(sorted(series, key=lambda u: (_number(series[u]) or 0, u)))
    }
    accounts.sort(key=lambda a: rank.get(a.series_uid or "", len(rank)))
    read = reads[chosen]
    read.choice = SeriesChoice(chosen=chosen or None, considered=len(series), why=why)
    read.accounts = accounts
    return read
