"""The report state machine: immutable versions, optimistic concurrency, sign-off.

Every change makes a new version row (the old ones stay readable); the caller names the version
it edited, and a stale one is a ``Conflict`` (409), never a silent merge. Two signatures of one
version race for the same next version number, which the database lets exactly one insert.

    (AI draft) v1 preliminary ──edit──► preliminary ──sign──► final
    final ──edit──► amended ──sign──► amended (signed) ──edit──► amended …

A signature with the text on the signer's screen, when it differs, is one version carrying that
text and the signature (``final``, or ``amended`` after an earlier signature): never a draft
and a signed copy of it. A signed version's author is the person who wrote the text it carries
(the signer, for an AI draft signed as it was).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medai.core.errors import MedaiError
from medai.platform.delivery import outbox
from medai.platform.documents.words.finding_states import version_labels
from medai.platform.records.db import utcnow
from medai.platform.records.tables import ReportVersion, Study, User
from medai.platform.worklist.ai_results import ai_label_rows
from medai.platform.worklist.study_state import refuse_retracted, set_status
from medai.platform.worklist.versions import SECTIONS, current, text_of, versions
from medai.services.imaging import label_questions

MAX_SECTION_CHARS = 20_000


class Conflict(MedaiError, Exception):
    """The request is about a version that is no longer current, or already signed (409)."""

    status, code = 409, "conflict"


class UndecidedLabels(MedaiError, Exception):
    """A signature that leaves labels the AI could not decide undecided (409): each must be
    chosen present or absent first (``labels`` lists them)."""

    status, code = 409, "undecided_labels"

    def __init__(self, labels: list[str]) -> None:
        super().__init__(
            f"the AI could not decide {', '.join(labels)}: choose present or absent for each "
            "before signing"
        )
        self.labels = labels
        self.errors = [
            {"loc": ["body", "labels", lab], "msg": "choose present or absent", "type": "undecided"}
            for lab in labels
        ]


class ReviewError(MedaiError, ValueError):
    """A request that can never succeed as written (422)."""

    status, code = 422, "invalid"


def check_sections(sections: dict[str, Any]) -> dict[str, str]:
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise ReviewError(f"unknown sections {sorted(unknown)}; valid: {', '.join(SECTIONS)}")
    out = {}
    for name in SECTIONS:
        value = sections.get(name, "")
        if not isinstance(value, str):
            raise ReviewError(f"section {name!r} must be text")
        if len(value) > MAX_SECTION_CHARS:
            raise ReviewError(f"section {name!r} is longer than {MAX_SECTION_CHARS} characters")
        out[name] = value
    return out


def _insert(db: Session, row: ReportVersion) -> ReportVersion:
    """Insert a version; losing the race for its number rolls the whole change back."""
    db.add(row)
    try:
        db.flush()
    except IntegrityError:
        db.rollback()
        raise Conflict(f"version {row.version - 1} was changed by someone else; reload") from None
    return row


def ai_draft(
    db: Session,
    study: Study,
    sections: dict[str, str],
    citations: list,
    findings: list,
    ai_result_id: int | None,
) -> ReportVersion | None:
    """Version 1 from the AI draft, unless the study already has a report (idempotent)."""
    if current(db, study.id) is not None:
        return None
    row = ReportVersion(
        study_id=study.id,
        version=1,
        status="preliminary",
        source="ai",
        sections=sections,
        citations=citations,
        findings=findings,
        ai_result_id=ai_result_id,
    )
    return _insert(db, row)


def ai_redraft(
    db: Session,
    study: Study,
    sections: dict[str, str],
    citations: list,
    findings: list,
    ai_result_id: int | None,
) -> tuple[ReportVersion | None, str]:
    """The study was read again after a late instance (``analysis``): a new AI version
    replaces the current one only while the report is the AI's own, unsigned draft — a
    person's edit is never overwritten and a signed report never changes behind its signer.
    Returns (the new version or None, why: ``replaced`` | ``unchanged`` (the same text of the
    same reading) | ``kept_edited`` | ``kept_signed`` | ``no_report``)."""
    cur = current(db, study.id)
    if cur is None:
        return ai_draft(db, study, sections, citations, findings, ai_result_id), "no_report"
    if any(v.signed_by is not None for v in versions(db, study.id)):
        return None, "kept_signed"
    if cur.source != "ai":
        return None, "kept_edited"
    # the same text of another reading is a new version: the report, its AI note and what is
    # sent (the PACS's SR, FHIR, HL7) follow the newest reading, never the one it replaced
    if cur.sections == sections and cur.findings == findings and cur.ai_result_id == ai_result_id:
        return None, "unchanged"
    row = ReportVersion(
        study_id=study.id,
        version=cur.version + 1,
        status="preliminary",
        source="ai",
        sections=sections,
        citations=citations,
        findings=findings,
        ai_result_id=ai_result_id,
    )
    return _insert(db, row), "replaced"


def withdraw_ai_draft(db: Session, study: Study) -> bool:
    """The study is re-analysed as another type (``platform.reading.reanalysis``): when the current
    report is the AI's own unsigned draft, a version with no text takes its place (the history
    keeps the old type's draft), so a chest film's text is never the signable report of a study
    now read as a brain MRI, whatever the new reading gives (its draft, or its refusal and a
    report written by hand). False: a person's report, kept."""
    cur = current(db, study.id)
    if cur is None or cur.source != "ai" or cur.signed_by is not None:
        return False
    if not any((cur.sections or {}).get(name) for name in SECTIONS):
        return True  # withdrawn already (A -> B refused, then B -> C)
    row = ReportVersion(
        study_id=study.id,
        version=cur.version + 1,
        status="preliminary",
        source="ai",
        sections={},
        citations=[],
        findings=[],
        ai_result_id=None,
    )
    _insert(db, row)
    return True


def _expect(cur: ReportVersion | None, version: int) -> None:
    have = cur.version if cur else 0
    if version != have:
        raise Conflict(f"the report is at version {have}, not {version}; reload and retry")


def edit(
    db: Session, study: Study, version: int, sections: dict[str, Any], user: User
) -> ReportVersion:
    """A new version with the user's sections. Editing a signed report makes an amendment."""
    refuse_retracted(db, study, "edited")
    cur = current(db, study.id)
    _expect(cur, version)
    clean = check_sections(sections)
    was_signed = any(v.signed_by is not None for v in versions(db, study.id))
    row = ReportVersion(
        study_id=study.id,
        version=version + 1,
        status="amended" if was_signed else "preliminary",
        source="human",
        sections=clean,
        citations=cur.citations if cur else [],
        findings=cur.findings if cur else [],
        author_id=user.id,
        ai_result_id=cur.ai_result_id if cur else None,
    )
    _insert(db, row)
    set_status(study, row.status)
    return row


def undecided(db: Session, study: Study, choices: dict[str, bool] | None) -> list[str]:
    """The labels in real doubt in the study's latest result's decision (the signer's questions,
    ``services.imaging.label_questions``: an undecided label that only follows an undecided
    sub-finding is settled by that one's answer) that neither ``choices`` nor the latest
    signature's labels decide."""
    rows, _ = ai_label_rows(db, study)
    open_ = label_questions(rows)
    if not open_:
        return []
    last = db.scalar(
        select(ReportVersion.version)
        .where(ReportVersion.study_id == study.id, ReportVersion.signed_by.is_not(None))
        .order_by(ReportVersion.version.desc())
        .limit(1)
    )
    said = {i["label"] for i in version_labels(db, study.id, last)} if last else set()
    return [lab for lab in open_ if lab not in (choices or {}) and lab not in said]


def sign(
    db: Session,
    study: Study,
    version: int,
    user: User,
    sections: dict[str, Any] | None = None,
    choices: dict[str, bool] | None = None,
    *,
    destinations: Iterable[Any],
) -> ReportVersion:
    """Sign the current version: a new version carrying the signature (``final``, or
    ``amended`` once the report has been signed before).

    ``sections`` is the text on the signer's screen: when it differs from version ``version``
    (or there is no report yet: ``version`` 0, a report written by hand), that text is the
    signed version, the signer its author (an unsaved edit is never lost, and never signed
    without being stored): one version, so the history shows the change where it was signed.
    Without new text, the signed version carries version ``version``'s text and its author (the
    signer, when that text is the AI's draft).

    Signing endorses the AI's decided findings as the signer's own (``lifecycle.labels``): a
    label the AI left undecided needs the signer's choice in ``choices`` (their label clicks)
    first, else ``UndecidedLabels`` (409 ``undecided_labels``) and nothing is signed."""
    refuse_retracted(db, study, "signed")
    cur = current(db, study.id)
    _expect(cur, version)
    if cur is not None and cur.signed_by is not None and sections is None:
        raise Conflict(f"version {version} is already signed")
    left = undecided(db, study, choices)
    if left:
        raise UndecidedLabels(left)
    clean = check_sections(sections) if sections is not None else None
    if clean is not None and (cur is None or clean != text_of(cur)):
        # a first report written by hand, an edit, or an amendment of a signed report
        text, author_id = clean, user.id
    elif cur is None:
        raise Conflict("there is no report to sign")
    elif cur.signed_by is not None:
        raise Conflict(f"version {version} is already signed")
    else:
        text, author_id = cur.sections, cur.author_id or user.id
    if not any((text.get(name) or "").strip() for name in SECTIONS):
        raise ReviewError("the report is empty: there is nothing to sign")
    was_signed = any(v.signed_by is not None for v in versions(db, study.id))
    row = ReportVersion(
        study_id=study.id,
        version=version + 1,
        status="amended" if was_signed else "final",
        source="human",
        sections=text,
        citations=cur.citations if cur else [],
        findings=cur.findings if cur else [],
        author_id=author_id,
        signed_by=user.id,
        signed_at=utcnow(),
        # the name and title the signature was given under (a later change rewrites no copy)
        signer_name=user.full_name,
        signer_title=user.title if user.full_name else None,
        ai_result_id=cur.ai_result_id if cur else None,
    )
    _insert(db, row)
    set_status(study, row.status)
    # the signed version goes out to the configured destinations, in this transaction
    outbox.on_signed(db, study, row, destinations)
    return row
