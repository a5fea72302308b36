"""A study read whole (issue 67): every series a task can read is read, each to its own
decision (``imaging.series.read_series``), and the study gets one decision across them: the
most severe decided finding wins and its key slices come from the series that showed it; with
none decided an undecided series leaves the study undecided; else it reads as normal. Every
series is accounted for in ``read.series``: read, with its decision, or named with why not
(a localizer, refused by the model, unreadable, beyond ``MAX_SERIES``). A study used to be
read from its longest series alone: a 10-slice glioma series beside a 12-slice normal one read
"no tumour" without a word of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from medai.core.task_registry import Task
from medai.imaging.io import Refusal
from medai.imaging.limits import ImageInputError
from medai.imaging.results import SeriesAccount, SeriesChoice
from medai.imaging.series import Loader, SeriesRead, SliceRef, distinct, order, read_series

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
