"""Which of a study's instances its model reads (issue 58): the whole series, chosen openly.

A study is many instances — a 20-200 slice MRI series (often several series: localiser, T1,
T2, contrast), a PA and a lateral chest film — and it was read from whichever arrived first.
Here are the stored instances the choice is made from (``image_instances``); the choice itself
is the model's side (``services.study_read``), recorded with the result:

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

from sqlalchemy import select
from sqlalchemy.orm import Session

from medai.platform.records.tables import DicomInstance, Study
from medai.services.study_read import Member

# SOP classes that hold no image to read: structured reports (ours included), key object
# selections, presentation states, encapsulated documents
NOT_IMAGES = (
    "1.2.840.10008.5.1.4.1.1.88.",  # SR, KOS
    "1.2.840.10008.5.1.4.1.1.11.",  # presentation states
    "1.2.840.10008.5.1.4.1.1.104.",  # encapsulated PDF/CDA
    "1.2.840.10008.5.1.4.1.1.66",  # raw data, spatial registration
)


def is_image(sop_class: str | None) -> bool:
    if not sop_class:
        return False
    return not any(sop_class.startswith(p) for p in NOT_IMAGES)


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
