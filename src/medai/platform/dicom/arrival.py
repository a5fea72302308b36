"""An arrival: one file coming in to be filed as a study, whoever brings it.

Every way in makes one (``intake``: a C-STORE or STOW-RS instance, a DICOMweb pull, a browser
upload), and a quarantined instance gives its own back when a person reassigns it
(``identity_conflicts.arrival_of``). The filing (``worklist.filing.file_study``), a new study
(``filing.create``) and a conflict (``identity_conflicts.quarantine``) each read what they
need from it: before it, the same 8 to 13 values were passed as keyword arguments from
function to function, and a value added for one way in (the form's patient sex, say) had to
be threaded through all of them.

It lives here, below ``worklist`` and beside ``identity_conflicts``, because both read it and
``intake`` (above them) builds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from medai.platform.dicom.identity import DicomIdentity

SOURCES = ("upload", "dicom")
"""``upload``: a person's browser upload (one complete file, analysed at once); ``dicom``: a
modality or PACS (the node, STOW-RS, a DICOMweb pull: analysed once the study has settled)."""
NO_MODEL = "no AI model for this study"


@dataclass(frozen=True)
class Arrival:
    """Who brought which file, when, and what was asked of it.

    What: ``sha`` (the stored file, content-addressed), ``size``, ``content_type``, ``task``
    (the imaging task that reads it; None: no model does, and ``no_model_reason`` says why)
    and ``identity`` (its DICOM header's; None for an image without one).

    Who and when: ``uploaded_by`` (the user row's id: a person, or the DICOM node's account),
    ``source`` (``SOURCES``), ``calling_ae`` (the sender's AE title, for a DICOM instance)
    and ``received_at`` (None: the filing's own clock); ``stable_s``: how long a DICOM study
    waits after its latest instance before it is read (``MEDAI_STUDY_STABLE_S``, which the
    receiving face reads: ``filing.settled_at``).

    What was asked: the upload form's ``patient_ref`` (pseudonymous), ``question`` (the
    clinical question) and ``language`` (of the AI draft); ``urgent`` when the question raised
    a red flag, ``red_flags`` its rules (``reading_order.question_flags``; none: the rule is
    not known); ``patient_sex`` and ``birth_date`` (DICOM DA, checked) for an image whose
    header does not say."""

    sha: str
    size: int
    content_type: str
    task: str | None
    uploaded_by: int
    identity: DicomIdentity | None = None
    source: str = "upload"
    calling_ae: str | None = None
    received_at: datetime | None = None
    stable_s: float = 0.0
    no_model_reason: str = NO_MODEL
    patient_ref: str | None = None
    question: str | None = None
    language: str = "tr"
    urgent: bool = False
    red_flags: tuple[dict[str, Any], ...] = ()
    patient_sex: str | None = None
    birth_date: str | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"arrival source {self.source!r} is not one of {', '.join(SOURCES)}")
