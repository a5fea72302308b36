"""The report state machine: immutable versions, optimistic concurrency, sign-off.

Every change makes a new version row (the old ones stay readable); the caller names the version
it edited, and a stale one is a ``Conflict`` (409), never a silent merge. Two signatures of one
version race for the same next version number, which the database lets exactly one insert.

    (AI draft) v1 preliminary ──edit──► preliminary ──sign──► final
    final ──edit──► amended ──sign──► amended (signed) ──edit──► amended …
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medai.platform.db import utcnow
from medai.platform.integration import outbox
from medai.platform.studies import set_status
from medai.platform.tables import ReportVersion, Study, User

SECTIONS = ("technique", "findings", "impression", "recommendation")
MAX_SECTION_CHARS = 20_000
AI_DISCLOSURE = ("Drafted with AI assistance (medai); reviewed, edited and signed by the "
                 "radiologist named. AI output is a suggestion, not a diagnosis.")


HAND_DISCLOSURE = ("Written by the radiologist named without an AI draft (the AI analysis did "
                   "not produce one for this study).")


class Conflict(Exception):
    """The request is about a version that is no longer current, or already signed (409)."""


class ReviewError(ValueError):
    """A request that can never succeed as written (422)."""


def current(db: Session, study_id: int) -> ReportVersion | None:
    return db.scalar(select(ReportVersion).where(ReportVersion.study_id == study_id)
                     .order_by(ReportVersion.version.desc()).limit(1))


def versions(db: Session, study_id: int) -> list[ReportVersion]:
    return list(db.scalars(select(ReportVersion).where(ReportVersion.study_id == study_id)
                           .order_by(ReportVersion.version)))


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


def ai_draft(db: Session, study: Study, sections: dict[str, str], citations: list,
             findings: list, ai_result_id: int | None) -> ReportVersion | None:
    """Version 1 from the AI draft, unless the study already has a report (idempotent)."""
    if current(db, study.id) is not None:
        return None
    row = ReportVersion(study_id=study.id, version=1, status="preliminary", source="ai",
                        sections=sections, citations=citations, findings=findings,
                        ai_result_id=ai_result_id)
    return _insert(db, row)


def _expect(cur: ReportVersion | None, version: int) -> None:
    have = cur.version if cur else 0
    if version != have:
        raise Conflict(f"the report is at version {have}, not {version}; reload and retry")


def edit(db: Session, study: Study, version: int, sections: dict[str, Any],
         user: User) -> ReportVersion:
    """A new version with the user's sections. Editing a signed report makes an amendment."""
    cur = current(db, study.id)
    _expect(cur, version)
    clean = check_sections(sections)
    was_signed = any(v.signed_by is not None for v in versions(db, study.id))
    row = ReportVersion(study_id=study.id, version=version + 1,
                        status="amended" if was_signed else "preliminary", source="human",
                        sections=clean, citations=cur.citations if cur else [],
                        findings=cur.findings if cur else [], author_id=user.id,
                        ai_result_id=cur.ai_result_id if cur else None)
    _insert(db, row)
    set_status(study, row.status)
    return row


def sign(db: Session, study: Study, version: int, user: User,
         sections: dict[str, Any] | None = None) -> ReportVersion:
    """Sign the current version: a new version carrying the signature (``final``, or
    ``amended`` for a signed amendment).

    ``sections`` is the text on the signer's screen: when it differs from version ``version``
    (or there is no report yet: ``version`` 0, a report written by hand), it is saved as a new
    version (an amendment of a signed one) and that one is signed, in the caller's one
    transaction (an unsaved edit is never lost, and never signed without being stored)."""
    cur = current(db, study.id)
    _expect(cur, version)
    if sections is not None and (cur is None or check_sections(sections) != _text_of(cur)):
        # a first report written by hand, an edit, or an amendment of a signed report
        cur = edit(db, study, version, sections, user)
        version = cur.version
    if cur is None:
        raise Conflict("there is no report to sign")
    if cur.signed_by is not None:
        raise Conflict(f"version {version} is already signed")
    if not any(text.strip() for text in _text_of(cur).values()):
        raise ReviewError("the report is empty: there is nothing to sign")
    row = ReportVersion(study_id=study.id, version=version + 1,
                        status="final" if cur.status == "preliminary" else "amended",
                        source="human", sections=cur.sections, citations=cur.citations,
                        findings=cur.findings, author_id=cur.author_id, signed_by=user.id,
                        signed_at=utcnow(), ai_result_id=cur.ai_result_id)
    _insert(db, row)
    set_status(study, row.status)
    outbox.on_signed(db, study, row)  # the signed version goes out, in this transaction
    return row


def _local(db: Session, row: ReportVersion) -> dict[str, str | None]:
    """When, as people read it: the hospital's time zone, in the study's report language."""
    from medai.platform.localtime import format_local

    study = db.get(Study, row.study_id)
    lang = study.language if study is not None else "tr"
    return {"created_at_local": format_local(row.created_at, lang),
            "signed_at_local": format_local(row.signed_at, lang)}


def _text_of(row: ReportVersion) -> dict[str, str]:
    return {name: (row.sections or {}).get(name, "") for name in SECTIONS}


def ai_assisted(db: Session, study_id: int) -> bool:
    """Whether any version of the report started from an AI draft."""
    return any(v.source == "ai" or v.ai_result_id is not None for v in versions(db, study_id))


def as_dict(db: Session, row: ReportVersion) -> dict[str, Any]:
    signer = db.get(User, row.signed_by) if row.signed_by else None
    author = db.get(User, row.author_id) if row.author_id else None
    return {"study_id": row.study_id, "version": row.version, "status": row.status,
            "source": row.source, "sections": row.sections, "citations": row.citations,
            "findings": row.findings, "author": author.username if author else None,
            "signed_by": signer.username if signer else None,
            "signed_at": row.signed_at.isoformat() + "Z" if row.signed_at else None,
            "created_at": row.created_at.isoformat() + "Z",
            **_local(db, row),
            "ai_assisted": (assisted := ai_assisted(db, row.study_id)),
            "ai_disclosure": AI_DISCLOSURE if assisted else HAND_DISCLOSURE}
