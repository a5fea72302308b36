"""A study's report versions as everything reads them: the current one, the history, and one
version as the API, the exports and the outbox read it (``as_dict``).

The read side of the report state machine (``reading.review`` writes the versions); it sits
below the delivery so that what leaves the hospital reads a version the way the screen does.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from medai.platform.documents.words import disclosure
from medai.platform.documents.words.report_words import SECTIONS
from medai.platform.records.localtime import format_local
from medai.platform.records.tables import AIResultRow, ReportVersion, Study, User


def current(db: Session, study_id: int) -> ReportVersion | None:
    return db.scalar(
        select(ReportVersion)
        .where(ReportVersion.study_id == study_id)
        .order_by(ReportVersion.version.desc())
        .limit(1)
    )


def versions(db: Session, study_id: int) -> list[ReportVersion]:
    return list(
        db.scalars(
            select(ReportVersion)
            .where(ReportVersion.study_id == study_id)
            .order_by(ReportVersion.version)
        )
    )


def text_changed(before: ReportVersion | None, after: ReportVersion) -> bool:
    """Whether ``after`` carries other text than ``before`` (None: there was no report)."""
    return before is None or text_of(before) != text_of(after)


def text_of(row: ReportVersion) -> dict[str, str]:
    return {name: (row.sections or {}).get(name, "") for name in SECTIONS}


def ai_assisted(db: Session, study_id: int) -> bool:
    """Whether any version of the report started from an AI draft."""
    return any(v.source == "ai" or v.ai_result_id is not None for v in versions(db, study_id))


def ai_edited(db: Session, row: ReportVersion) -> bool | None:
    """Whether ``row``'s text differs from the AI's draft (None: the report has no AI draft)."""
    draft = db.scalar(
        select(ReportVersion)
        .where(ReportVersion.study_id == row.study_id, ReportVersion.source == "ai")
        .order_by(ReportVersion.version)
        .limit(1)
    )
    return None if draft is None else text_of(row) != text_of(draft)


def _signer_name(row: ReportVersion, signer: User | None) -> dict[str, str | None]:
    if signer is None:
        return {"signed_by_name": None, "signed_by_title": None}
    if row.signer_name:
        return {"signed_by_name": row.signer_name, "signed_by_title": row.signer_title}
    return {"signed_by_name": signer.full_name, "signed_by_title": signer.title}


def ai_note(db: Session, row: ReportVersion) -> list[str]:
    """The AI note of the draft the report was made from (``reporting.templates.ai_note``): the
    AI's account of itself, shown beside the editor and carried by the documents as the AI's
    disclosure, never part of the report's text; [] for a report made without an AI draft."""
    made_from = row.ai_result_id
    if made_from is None:  # a later person's version: the draft the report began from
        made_from = db.scalar(
            select(ReportVersion.ai_result_id)
            .where(
                ReportVersion.study_id == row.study_id,
                ReportVersion.ai_result_id.is_not(None),
                ReportVersion.version <= row.version,
            )
            .order_by(ReportVersion.version.desc())
            .limit(1)
        )
    draft = db.get(AIResultRow, made_from) if made_from is not None else None
    note = (draft.payload or {}).get("ai_note") if draft is not None else None
    return [str(line) for line in note] if isinstance(note, list) else []


def as_dict(db: Session, row: ReportVersion) -> dict[str, Any]:
    """A version as the API, the exports and the outbox read it; ``ai_disclosure`` in the
    study's report language (``disclosure.text``, the sentence the PDF and FHIR carry too)."""
    study = db.get(Study, row.study_id)
    lang = study.language if study is not None else "tr"
    signer = db.get(User, row.signed_by) if row.signed_by else None
    # a version signed before signatures named their text's author (an AI draft signed as it
    # was): the signer took the text as theirs
    author_id = row.author_id if row.author_id is not None else row.signed_by
    author = db.get(User, author_id) if author_id else None
    out = {
        "study_id": row.study_id,
        "version": row.version,
        "status": row.status,
        "source": row.source,
        "sections": text_of(row),  # every section, one not written as ""
        "citations": row.citations,
        "findings": row.findings,
        "author": author.username if author else None,
        "signed_by": signer.username if signer else None,
        # the signer's full name and title as signed (before names were kept with the
        # signature: the account's present ones); None: the documents name ``signed_by``
        **_signer_name(row, signer),
        "signed_at": row.signed_at.isoformat() + "Z" if row.signed_at else None,
        "created_at": row.created_at.isoformat() + "Z",
        # when, as people read it: the hospital's time zone, in the report's language
        "created_at_local": format_local(row.created_at, lang),
        "signed_at_local": format_local(row.signed_at, lang),
        "ai_assisted": ai_assisted(db, row.study_id),
        "ai_edited": ai_edited(db, row),
        "ai_note": ai_note(db, row),
    }
    # format_local's value, set above
    out["ai_disclosure"] = disclosure.text(out, lang, cast("str | None", out["signed_at_local"]))
    return out


def history(db: Session, study_id: int) -> list[dict[str, Any]]:
    """Every version (``as_dict``), oldest first, each with ``compare_to``: the version its
    differences are read against. A signed version is read against the previous signed one
    (what this signature changed in the signed report), the first signed one against the
    first version (what was signed of the AI draft or the first text); an unsigned version
    against the one before it; the first against none."""
    rows, out, last_signed = versions(db, study_id), [], None
    for k, row in enumerate(rows):
        if k == 0:
            base = None
        elif row.signed_by is not None:
            base = last_signed if last_signed is not None else rows[0].version
        else:
            base = rows[k - 1].version
        out.append({**as_dict(db, row), "compare_to": base})
        if row.signed_by is not None:
            last_signed = row.version
    return out
