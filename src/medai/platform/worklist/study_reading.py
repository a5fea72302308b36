"""Which of a study's instances its model reads (issue 58): the whole series, chosen openly.

A study is many instances — a 20-200 slice MRI series (often several series: localiser, T1,
T2, contrast), a PA and a lateral chest film — and it was read from whichever arrived first.
Here the choice is made from the stored instances and recorded with the result:

* a **chest** study is decided from its frontal film: by ViewPosition where the header has
  it (PA before AP, the projection the model's films mostly are); a film whose header says
  nothing is checked by its image when it is read (``imaging.views``); a lateral film is
  never the one read while a frontal one is there;
* an **MRI** study is read series by series: every image instance's header is read, and the
  series reader chooses the series (the most slices, localizers left out, ties to the lower
  series number: never the order of arrival) and reads every slice of it up to its cap
  (``imaging.series`` through ``services.series_reading``).

An upload (one file, no instances) is read as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from medai.platform.records.tables import DicomInstance, Study

# SOP classes that hold no image to read: structured reports (ours included), key object
# selections, presentation states, encapsulated documents
NOT_IMAGES = (
    "1.2.840.10008.5.1.4.1.1.88.",  # SR, KOS
    "1.2.840.10008.5.1.4.1.1.11.",  # presentation states
    "1.2.840.10008.5.1.4.1.1.104.",  # encapsulated PDF/CDA
    "1.2.840.10008.5.1.4.1.1.66",  # raw data, spatial registration
)
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


def is_image(sop_class: str | None) -> bool:
    return bool(sop_class) and not any(sop_class.startswith(p) for p in NOT_IMAGES)


def view_word(value: str | None) -> str:
    return (value or "").strip().upper()


def image_instances(db: Session, study: Study) -> list[Member]:
    """The study's stored image instances, in filing order (none for an upload)."""
    rows = db.scalars(
        select(DicomInstance).where(DicomInstance.study_id == study.id).order_by(DicomInstance.id)
    )
    return [
        Member(r.sop_uid, r.file_sha256, r.file_size, r.series_uid, r.view_position)
        for r in rows
        if is_image(r.sop_class)
    ]


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
